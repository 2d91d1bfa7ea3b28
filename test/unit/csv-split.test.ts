import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCsv, type CsvReadOptions, type CsvRecord } from '../../src/campaign/csv-reader.js';
import { splitCsv, type CsvPart } from '../../src/campaign/csv-split.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-split-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function write(content: string | Buffer): string {
  const file = path.join(dir, `f${n++}.csv`);
  fs.writeFileSync(file, content);
  return file;
}

async function records(file: string, options: CsvReadOptions = {}): Promise<CsvRecord[]> {
  const out: CsvRecord[] = [];
  for await (const r of (await openCsv(file, options)).records()) out.push(r);
  return out;
}

async function split(file: string, parts: number, options: CsvReadOptions = {}): Promise<CsvPart[]> {
  return (await splitCsv(file, (await openCsv(file, options)).layout, parts)).parts;
}

/** Reading every part on its own gives exactly what one reader gives: same records, same lines. */
async function expectSameAsWhole(file: string, parts: readonly CsvPart[], options: CsvReadOptions = {}): Promise<void> {
  const pieces: CsvRecord[] = [];
  for (const range of parts) pieces.push(...(await records(file, { ...options, range })));
  expect(pieces).toEqual(await records(file, options));
}

/** A deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

describe('splitCsv', () => {
  it('cuts a plain file into contiguous parts at line starts, with their line numbers', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `u${i}@example.com,Name ${i}\n`);
    const file = write(`email,name\n${lines.join('')}`);
    const parts = await split(file, 4);
    expect(parts).toHaveLength(4);
    const size = fs.statSync(file).size;
    expect(parts[0]?.start).toBe('email,name\n'.length);
    expect(parts.at(-1)?.end).toBe(size);
    const text = fs.readFileSync(file, 'latin1');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as CsvPart;
      if (i > 0) expect(p.start).toBe(parts[i - 1]?.end);
      expect(text[p.start - 1]).toBe('\n');
      // The line number is 1 + the newlines before the part.
      expect(p.line).toBe(text.slice(0, p.start).split('\n').length);
    }
    await expectSameAsWhole(file, parts);
  });

  it('cuts the last parts again into pieces: whole parts first, then smaller ones to the end', async () => {
    const lines = Array.from({ length: 8000 }, (_, i) => `u${i}@example.com,Name ${i}\n`);
    const file = write(`email,name\n${lines.join('')}`);
    const layout = (await openCsv(file)).layout;
    const { parts } = await splitCsv(file, layout, 6, { parts: 2, pieces: 4 });
    // 4 whole parts and 2 × 4 pieces.
    expect(parts).toHaveLength(12);
    const sizes = parts.map((p) => p.end - p.start);
    const whole = (fs.statSync(file).size - layout.dataStart) / 6;
    for (const s of sizes.slice(0, 4)) expect(Math.abs(s - whole)).toBeLessThan(100);
    for (const s of sizes.slice(4)) expect(Math.abs(s - whole / 4)).toBeLessThan(100);
    await expectSameAsWhole(file, parts);
  });

  it('never cuts inside a quoted field that spans lines, whatever the targets hit', async () => {
    const random = rng(7);
    let body = '';
    for (let i = 0; i < 3000; i++) {
      const r = random();
      const note = r < 0.3 ? `"line one\nline ""two""\nthree, with comma"` : r < 0.4 ? `"quoted, no newline"` : `plain ${i}`;
      body += `u${i}@example.com,${note},x\n`;
    }
    const file = write(`email,note,z\n${body}`);
    for (const parts of [2, 3, 7, 16, 50]) {
      const cut = await split(file, parts);
      expect(cut.length).toBeGreaterThan(1);
      await expectSameAsWhole(file, cut);
    }
  });

  it('handles CRLF files and counts their lines', async () => {
    const body = Array.from({ length: 500 }, (_, i) => `u${i}@example.com,"a\r\nb",${i}\r\n`).join('');
    const file = write(`email,note,n\r\n${body}`);
    const parts = await split(file, 5);
    expect(parts).toHaveLength(5);
    // Every record takes two lines: the part starting at record k starts on line 2 + 2k.
    for (const p of parts) expect((p.line - 2) % 2).toBe(0);
    await expectSameAsWhole(file, parts);
  });

  it('reads a bare-CR file (old Mac) in parts', async () => {
    const body = Array.from({ length: 400 }, (_, i) => `u${i}@example.com,${i}\r`).join('');
    const file = write(`email,n\r${body}`);
    const parts = await split(file, 3);
    expect(parts).toHaveLength(3);
    await expectSameAsWhole(file, parts);
  });

  it('gives fewer parts when the quote count stays odd to the end (a stray quote)', async () => {
    const good = Array.from({ length: 200 }, (_, i) => `u${i}@example.com,${i}\n`).join('');
    const file = write(`email,n\n${good}bad@example.com,"never closed\n${good}`);
    const parts = await split(file, 4);
    // Only cuts before the stray quote are possible.
    const stray = fs.readFileSync(file, 'latin1').indexOf('"never');
    for (const p of parts.slice(1)) expect(p.start).toBeLessThan(stray);
    expect(parts.length).toBeLessThan(4);
    // The part holding the stray quote fails as the whole file does, naming the same line.
    const whole = await records(file).catch((err: unknown) => err);
    const last = parts.at(-1) as CsvPart;
    const partErr = await records(file, { range: last }).catch((err: unknown) => err);
    expect(String(partErr)).toBe(String(whole));
    expect(String(whole)).toMatch(/:202:/);
  });

  it('splits Latin-1 files on the same bytes', async () => {
    const body = Array.from({ length: 300 }, (_, i) => `u${i}@example.com,Jos\xe9 "${i}"\n`).join('').replace(/"(\d+)"/g, '$1');
    const file = write(Buffer.from(`email,name\n${body}`, 'latin1'));
    const parts = await split(file, 3, { encoding: 'latin1' });
    expect(parts).toHaveLength(3);
    await expectSameAsWhole(file, parts, { encoding: 'latin1' });
  });

  it('gives one part for a file with no data rows or a single row', async () => {
    expect(await split(write('email\nonly@example.com\n'), 4)).toHaveLength(1);
    expect(await split(write('email\n'), 4)).toEqual([{ start: 6, end: 6, line: 2 }]);
  });

  it('finds a CR anywhere after the header, past the last cut and across read blocks', async () => {
    const carriageReturn = async (file: string, parts = 4): Promise<boolean> =>
      (await splitCsv(file, (await openCsv(file)).layout, parts)).carriageReturn;
    // 1.4 MB: two read blocks; the last cut falls in the first.
    const lf = `email\n${'u@example.com\n'.repeat(100_000)}`;
    expect(await carriageReturn(write(lf))).toBe(false);
    expect(await carriageReturn(write(`${lf}last@example.com\r\n`))).toBe(true);
    expect(await carriageReturn(write(`${lf}last@example.com\r\n`), 1)).toBe(true);
    const middle = write(`email\n${'u@example.com\n'.repeat(50_000)}x@example.com\r\n${'u@example.com\n'.repeat(50_000)}`);
    expect(await carriageReturn(middle)).toBe(true);
    // The header's CR does not count.
    expect(await carriageReturn(write(`email\r\n${'u@example.com\n'.repeat(10)}`))).toBe(false);
  });
});
