import { describe, expect, it } from 'vitest';
import { RowPacker, jsonArray, unpackRows } from '../../src/campaign/import-protocol.js';

describe('jsonArray', () => {
  const cases: (string | null)[][] = [
    [],
    [null],
    ['plain', 'City 7', ''],
    [null, 'say "hi"', 'back\\slash', 'tab\there', 'line\nbreak', 'cr\rlf', 'nul\u0000', 'bell\u0007', 'esc\u001b', 'unit\u001f'],
    ['Zoë', '€ ünïcödé', 'emoji 🎉', 'line sep \u2028 para \u2029', 'del \u007f', 'nbsp\u00a0'],
    ['lone high \ud800', 'lone low \udc00 end', 'pair 😀'],
    [null, '"', '\\', '\u0000', '</script>', "it's"],
  ];
  it.each(cases.map((c) => [c]))('writes what JSON.stringify writes: %j', (fields) => {
    expect(jsonArray(fields)).toBe(JSON.stringify(fields));
  });
});

describe('RowPacker and unpackRows', () => {
  it('gives back each row: line, address, and the columns as JSON with the address column null', () => {
    const packer = new RowPacker(64);
    packer.add(2, 'a@x.com', ['a@x.com', 'Zoë', 'say "hi"\n'], 0);
    packer.add(17, 'b@y.org', ['🎉', 'b@y.org'], 1);
    const { rows, bytes } = packer.take();
    expect([...unpackRows(rows, bytes)]).toEqual([
      { line: 2, address: 'a@x.com', varsJson: JSON.stringify([null, 'Zoë', 'say "hi"\n']) },
      { line: 17, address: 'b@y.org', varsJson: JSON.stringify(['🎉', null]) },
    ]);
  });
});
