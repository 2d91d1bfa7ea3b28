import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, afterAll, afterEach } from 'vitest';
import { Parser } from 'csv-parse';
import { decodeFieldsInPlace, openCsv, parseDelimiter, readerTuning, type CsvReadOptions, type CsvRecord, type CsvSource } from '../../src/campaign/csv-reader.js';
import { InputError } from '../../src/errors.js';

const DEFAULT_CHUNK = readerTuning.chunkBytes;

const dirs: string[] = [];

afterEach(() => {
  readerTuning.chunkBytes = DEFAULT_CHUNK;
});

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-'));
  dirs.push(dir);
  return dir;
}

/** Writes a fixture into a fresh temp folder and returns its path. */
function fixture(content: string | Buffer, name = 'recipients.csv'): string {
  const file = path.join(tempDir(), name);
  fs.writeFileSync(file, content);
  return file;
}

async function collect(source: CsvSource): Promise<CsvRecord[]> {
  const out: CsvRecord[] = [];
  for await (const record of source.records()) out.push(record);
  return out;
}

async function read(content: string | Buffer, options?: CsvReadOptions): Promise<{ source: CsvSource; records: CsvRecord[] }> {
  const source = await openCsv(fixture(content), options);
  return { source, records: await collect(source) };
}

/** [line, fields] of each record, ragged ones as [line, 'ragged', got]. */
function summary(records: readonly CsvRecord[]): unknown[] {
  return records.map((r) => (r.kind === 'row' ? [r.line, r.fields] : [r.line, 'ragged', r.got]));
}

/** The InputError a promise rejects with; fails the test on success or on any other error. */
async function inputError(promise: Promise<unknown>): Promise<InputError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    const e = err as InputError;
    expect(e.exitCode).toBe(2);
    // No csv-parse codes or internals reach the operator.
    expect(e.message).not.toMatch(/CSV_|INVALID_OPENING|\n/);
    return e;
  }
  throw new Error('expected an InputError, got success');
}

const HEADER = 'email,first_name,last_name,plan,city';

describe('openCsv: dialects', () => {
  it('strips a UTF-8 BOM from the first column name', async () => {
    const { source, records } = await read(`\uFEFF${HEADER}\na@x.com,Ann,Lee,pro,Oslo\n`);
    expect(source.columns).toEqual(['email', 'first_name', 'last_name', 'plan', 'city']);
    expect(summary(records)).toEqual([[2, ['a@x.com', 'Ann', 'Lee', 'pro', 'Oslo']]]);
  });

  it('reads CRLF files without leaving CR in the last field', async () => {
    const { records } = await read(`${HEADER}\r\na@x.com,Ann,Lee,pro,Oslo\r\nb@x.com,Bo,Ek,free,Rome\r\n`);
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'Ann', 'Lee', 'pro', 'Oslo']],
      [3, ['b@x.com', 'Bo', 'Ek', 'free', 'Rome']],
    ]);
  });

  it('reads LF files, with or without a final line break', async () => {
    const { records } = await read(`${HEADER}\na@x.com,Ann,Lee,pro,Oslo\nb@x.com,Bo,Ek,free,Rome`);
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'Ann', 'Lee', 'pro', 'Oslo']],
      [3, ['b@x.com', 'Bo', 'Ek', 'free', 'Rome']],
    ]);
  });

  it('treats CRLF and LF mixed in one file (rows appended by another tool) as line ends', async () => {
    const { records } = await read('email,name\r\na@x.com,Ann\r\nb@x.com,Bo\nc@x.com,Cy\r\n');
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'Ann']],
      [3, ['b@x.com', 'Bo']],
      [4, ['c@x.com', 'Cy']],
    ]);
  });

  it('reads classic-Mac files whose lines end in a bare CR', async () => {
    const { records } = await read('email,name\ra@x.com,Ann\r\rb@x.com,Bo\r');
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'Ann']],
      [4, ['b@x.com', 'Bo']],
    ]);
  });

  it.each([
    ['semicolon', ';'],
    ['tab', '\t'],
    ['pipe', '|'],
    ['comma', ','],
  ] as const)('detects a %s delimiter from the header', async (_name, d) => {
    // The row holds commas in a quoted field: only the header decides.
    const { source, records } = await read(`email${d}name${d}city\na@x.com${d}"Lee, Ann"${d}Oslo\n`);
    expect(source.delimiter).toBe(d);
    expect(source.columns).toEqual(['email', 'name', 'city']);
    expect(summary(records)).toEqual([[2, ['a@x.com', 'Lee, Ann', 'Oslo']]]);
  });

  it('ignores delimiters inside quotes when detecting, and falls back to a comma', async () => {
    const quoted = await read('"a;b;c";"d;e";email,x\n1;2,3\n');
    expect(quoted.source.delimiter).toBe(';'); // 2 semicolons outside quotes beat 1 comma
    const single = await read('email\na@x.com\n');
    expect(single.source.delimiter).toBe(',');
    expect(summary(single.records)).toEqual([[2, ['a@x.com']]]);
  });

  it('uses an explicit delimiter over the detected one', async () => {
    const { source, records } = await read('email;notes,more,commas\na@x.com;x,y,z\n', { delimiter: ';' });
    expect(source.delimiter).toBe(';');
    expect(source.columns).toEqual(['email', 'notes,more,commas']);
    expect(summary(records)).toEqual([[2, ['a@x.com', 'x,y,z']]]);
  });

  it('keeps newlines inside quoted fields and numbers the next record by physical line', async () => {
    const content = 'email,notes\na@x.com,"line one\nline two\nline three"\nb@x.com,plain\n';
    const { records } = await read(content);
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'line one\nline two\nline three']],
      [5, ['b@x.com', 'plain']],
    ]);
  });

  // The reader parses 64 KiB at a time and searches fields for newlines only
  // where that input holds a quote, or in the first record it completes.
  it('numbers lines after a quoted newline whose record ends in later, quote-free input', async () => {
    const filler = Array.from({ length: 1000 }, (_, i) => `f${i}@x.com,n,t\n`).join('');
    // Opens and closes its quotes in the first 64 KiB, ends ~10 KB into the second.
    const spanning = `a@x.com,"one\ntwo\nthree",${'x'.repeat(60_000)}\n`;
    const after = Array.from({ length: 100 }, (_, i) => `b${i}@x.com,n,t\n`).join('');
    const header = 'email,note,tail\n';
    expect(header.length + filler.length + spanning.length).toBeGreaterThan(64 * 1024 + 1000);
    const { records } = await read(header + filler + spanning + after);
    expect(records).toHaveLength(1101);
    expect(records[1000]).toMatchObject({ line: 1002 });
    expect(records[1001]).toMatchObject({ line: 1005, fields: ['b0@x.com', 'n', 't'] });
    expect(records[1100]).toMatchObject({ line: 1104, fields: ['b99@x.com', 'n', 't'] });
  });

  it('numbers lines after quoted newlines in many records of one 64 KiB of input', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => (i % 7 === 3 ? `q${i}@x.com,"a\nb",t\n` : `r${i}@x.com,n,t\n`)).join('');
    const { records } = await read(`email,note,tail\n${rows}`);
    let line = 2;
    const expected = Array.from({ length: 3000 }, (_, i) => {
      const at = line;
      line += i % 7 === 3 ? 2 : 1;
      return at;
    });
    expect(records.map((r) => r.line)).toEqual(expected);
  });

  it('counts a CRLF inside a quoted field as one line in a CRLF file', async () => {
    const { records } = await read('email,notes\r\na@x.com,"one\r\ntwo"\r\nb@x.com,x\r\n');
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'one\r\ntwo']],
      [4, ['b@x.com', 'x']],
    ]);
  });

  it('counts quoted newlines in the header too', async () => {
    const { source, records } = await read('email,"first\nname"\na@x.com,Ann\n');
    expect(source.columns).toEqual(['email', 'first\nname']);
    expect(summary(records)).toEqual([[3, ['a@x.com', 'Ann']]]);
  });

  it('unescapes doubled quotes', async () => {
    const { records } = await read('email,quote\na@x.com,"She said ""hi"", twice"\nb@x.com,""""\n');
    expect(summary(records)).toEqual([
      [2, ['a@x.com', 'She said "hi", twice']],
      [3, ['b@x.com', '"']],
    ]);
  });

  it('skips blank lines, counting them in line numbers', async () => {
    const { source, records } = await read('\n\r\nemail,name\n\na@x.com,Ann\n\n\nb@x.com,Bo\r\n\r\nc@x.com,Cy\n\n');
    expect(source.columns).toEqual(['email', 'name']);
    expect(summary(records)).toEqual([
      [5, ['a@x.com', 'Ann']],
      [8, ['b@x.com', 'Bo']],
      [10, ['c@x.com', 'Cy']],
    ]);
  });

  it('trims header names', async () => {
    const { source } = await read(' email ,\tFirst Name \na@x.com,Ann\n', { delimiter: ',' });
    expect(source.columns).toEqual(['email', 'First Name']);
  });
});

describe('csv-parse field decoding', () => {
  // A csv-parse upgrade that changes its parser state would silently make
  // every import slower (the fallback); this says so instead.
  it("still reaches csv-parse's field buffer, and decodes what csv-parse would", () => {
    const text = 'a@x.com,"Zoë, ""quoted""",€ ünïcödé 🎉\nb@x.com,,plain\n';
    const parse = (patch: boolean): string[][] => {
      const parser = new Parser({ relax_column_count: true });
      if (patch) expect(decodeFieldsInPlace(parser)).toBe(true);
      const out: string[][] = [];
      parser.on('data', (r: string[]) => out.push(r));
      parser.write(Buffer.from(text));
      parser.end();
      return out;
    };
    const plain = parse(false);
    expect(plain).toEqual([
      ['a@x.com', 'Zoë, "quoted"', '€ ünïcödé 🎉'],
      ['b@x.com', '', 'plain'],
    ]);
    expect(parse(true)).toEqual(plain);
  });
});

describe('openCsv: header problems', () => {
  it('refuses duplicate names compared case-insensitively after trimming, naming both', async () => {
    const file = fixture('email,Name,city, name \na@x.com,A,B,C\n');
    const e = await inputError(openCsv(file));
    expect(e.message).toBe(`${file}:1: duplicate column name: column 2 "Name" and column 4 "name"`);
    expect(e.hint).toMatch(/ignoring case/);
  });

  it('refuses an empty column name, e.g. from a trailing delimiter', async () => {
    const inner = fixture('email,,name\n');
    expect((await inputError(openCsv(inner))).message).toBe(`${inner}:1: column 2 of the header has no name`);
    const trailing = fixture('\nemail,name,  \n');
    const e = await inputError(openCsv(trailing));
    expect(e.message).toBe(`${trailing}:2: column 3 of the header has no name`);
    expect(e.hint).toMatch(/delimiter at the end/);
  });

  it('refuses an empty file, and one with only a BOM and blank lines', async () => {
    const empty = fixture('');
    expect((await inputError(openCsv(empty))).message).toBe(`${empty}: is empty`);
    const blank = fixture('\uFEFF\r\n\n');
    expect((await inputError(openCsv(blank))).message).toBe(`${blank}: is empty`);
  });

  it('yields no records for a header-only file, with or without a final line break', async () => {
    for (const content of [`${HEADER}\n`, HEADER, `${HEADER}\r\n\r\n`]) {
      const { source, records } = await read(content);
      expect(source.columns).toHaveLength(5);
      expect(records).toEqual([]);
    }
  });

  it('refuses a missing file', async () => {
    const file = path.join(tempDir(), 'nope.csv');
    expect((await inputError(openCsv(file))).message).toBe(`${file}: no such file`);
  });

  it('refuses a directory', async () => {
    const dir = tempDir();
    expect((await inputError(openCsv(dir))).message).toBe(`${dir}: is a directory, not a CSV file`);
  });

  it('refuses an unclosed quote in the header, naming the line', async () => {
    const file = fixture('\nemail,"name\na@x.com,Ann\n');
    expect((await inputError(openCsv(file))).message).toMatch(new RegExp(`^${escape(file)}:2: .*quote \\(\\"\\) that is never closed`));
  });

  it('names what a spreadsheet or UTF-16 file is instead of calling it bad UTF-8', async () => {
    const xlsx = fixture(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00]));
    expect((await inputError(openCsv(xlsx))).message).toMatch(/ZIP archive/);
    const utf16 = fixture(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('email\n', 'utf16le')]));
    expect((await inputError(openCsv(utf16))).message).toMatch(/is UTF-16/);
  });
});

describe('records: ragged rows', () => {
  it('reports rows with too few and too many fields with their line, raw text and counts', async () => {
    const { records } = await read(`${HEADER}\na@x.com,A,B,pro,X\nb@x.com,B,pro\nc@x.com,C,C,pro,X,extra\n\nd@x.com,D,D,pro,X\n`);
    expect(records).toEqual([
      { kind: 'row', line: 2, fields: ['a@x.com', 'A', 'B', 'pro', 'X'] },
      { kind: 'ragged', line: 3, raw: 'b@x.com,B,pro', expected: 5, got: 3 },
      { kind: 'ragged', line: 4, raw: 'c@x.com,C,C,pro,X,extra', expected: 5, got: 6 },
      { kind: 'row', line: 6, fields: ['d@x.com', 'D', 'D', 'pro', 'X'] },
    ]);
  });

  it('caps the raw text of a ragged row at 1,000 characters and joins with the file delimiter', async () => {
    const { records } = await read(`email;notes\na@x.com;${'n'.repeat(3000)};extra\n`);
    const r = records[0];
    expect(r?.kind).toBe('ragged');
    if (r?.kind !== 'ragged') return;
    expect(r.raw).toHaveLength(1000);
    expect(r.raw.startsWith('a@x.com;nnn')).toBe(true);
    expect(r.raw.endsWith('…')).toBe(true);
  });
});

describe('records: encodings', () => {
  it('decodes Latin-1 (0xFC is ü)', async () => {
    const bytes = Buffer.from('email;name;city\r\njana@example.de;M\xfcller;K\xf6ln\r\n', 'latin1');
    const { records } = await read(bytes, { encoding: 'latin1' });
    expect(summary(records)).toEqual([[2, ['jana@example.de', 'Müller', 'Köln']]]);
  });

  it('decodes windows-1252 where it differs from Latin-1 (0x80 is €)', async () => {
    const bytes = Buffer.from('email,price,quote\na@x.com,\x80 5,\x93hi\x94\n', 'latin1');
    const cp = await read(bytes, { encoding: 'windows-1252' });
    expect(summary(cp.records)).toEqual([[2, ['a@x.com', '€ 5', '\u201Chi\u201D']]]);
    const latin = await read(bytes, { encoding: 'latin1' });
    expect(summary(latin.records)).toEqual([[2, ['a@x.com', '\u0080 5', '\u0093hi\u0094']]]);
  });

  it('refuses a byte windows-1252 leaves undefined instead of producing U+FFFD', async () => {
    const file = fixture(Buffer.from('email,name\na@x.com,ok\nb@x.com,ab\x81c\n', 'latin1'));
    const source = await openCsv(file, { encoding: 'windows-1252' });
    const e = await inputError(collect(source));
    expect(e.message).toMatch(new RegExp(`^${escape(file)}:3: byte 0x81 at column 11 is not a character in windows-1252`));
  });

  it('refuses invalid UTF-8 naming the line, column and byte', async () => {
    const bytes = Buffer.concat([Buffer.from('email,name\na@x.com,Zoë\n\nb@x.com,Ren'), Buffer.from([0xe9]), Buffer.from('e\n')]);
    const file = fixture(bytes);
    const source = await openCsv(file);
    const e = await inputError(collect(source));
    expect(e.message).toBe(`${file}:4: invalid UTF-8 (byte 0xE9 at column 12); the file may be Latin-1: try --encoding latin1`);
  });

  it('counts columns in characters, after valid multi-byte characters', async () => {
    const bytes = Buffer.concat([Buffer.from('email,name\nzoë@x.com,Zoë '), Buffer.from([0xff]), Buffer.from('\n')]);
    const file = fixture(bytes);
    const e = await inputError(collect(await openCsv(file)));
    expect(e.message).toMatch(/:2: invalid UTF-8 \(byte 0xFF at column 15\)/);
  });

  it('refuses invalid UTF-8 in the header, before any row is read', async () => {
    const file = fixture(Buffer.concat([Buffer.from('\uFEFFemail,nom_'), Buffer.from([0xe9]), Buffer.from('\n')]));
    expect((await inputError(openCsv(file))).message).toBe(
      `${file}:1: invalid UTF-8 (byte 0xE9 at column 11); the file may be Latin-1: try --encoding latin1`,
    );
  });

  it('refuses a UTF-8 sequence cut short by the end of the file', async () => {
    const file = fixture(Buffer.concat([Buffer.from('email,name\na@x.com,ab'), Buffer.from([0xe2, 0x82])]));
    expect((await inputError(collect(await openCsv(file)))).message).toMatch(/:2: invalid UTF-8 \(byte 0xE2 at column 11\)/);
  });

  it('accepts U+FFFD when the file really contains it, correctly encoded', async () => {
    const { records } = await read('email,name\na@x.com,bad \uFFFD char\n');
    expect(summary(records)).toEqual([[2, ['a@x.com', 'bad \uFFFD char']]]);
  });

  it('decodes a 2-byte character cut by the 256 KiB read boundary', async () => {
    const header = 'email,name\n';
    const chunk = readerTuning.chunkBytes;
    const filler: string[] = [];
    // 60-byte ASCII rows up to ~500 bytes before the boundary.
    for (let i = 0; (i + 1) * 60 < chunk - 500; i++) filler.push(`u${String(i).padStart(6, '0')}@example.com,${'n'.repeat(39)}\n`);
    let body = filler.join('');
    const lead = 'z@example.com,';
    // Put é's first byte on the last byte of the first chunk of rows.
    const pad = 'y'.repeat(chunk - 1 - Buffer.byteLength(body) - lead.length);
    body += `${lead}${pad}é€😀\nlast@example.com,Zoë\n`;
    const bytes = Buffer.from(header + body);
    expect(bytes.subarray(header.length + chunk - 1, header.length + chunk + 1)).toEqual(Buffer.from('é'));
    const { records } = await read(bytes);
    const rows = records.length;
    expect(records[rows - 2]).toEqual({ kind: 'row', line: rows, fields: ['z@example.com', `${pad}é€😀`] });
    expect(records[rows - 1]).toEqual({ kind: 'row', line: rows + 1, fields: ['last@example.com', 'Zoë'] });
  });

  it('decodes 2-, 3- and 4-byte characters at every chunk boundary position', async () => {
    const content = 'email,name,city\na@x.com,Zoë Müller,Zürich\nb@x.com,€uro ✓,😀🎉\nc@x.com,"quoted, ñ\nline",São Paulo\n';
    for (const size of [1, 2, 3, 5, 7, 11]) {
      readerTuning.chunkBytes = size;
      const { records } = await read(content);
      expect(summary(records)).toEqual([
        [2, ['a@x.com', 'Zoë Müller', 'Zürich']],
        [3, ['b@x.com', '€uro ✓', '😀🎉']],
        [4, ['c@x.com', 'quoted, ñ\nline', 'São Paulo']],
      ]);
    }
  });

  it('finds invalid UTF-8 whose lead byte ends one chunk and the bad byte starts the next', async () => {
    // 'Ren' + E9 + 'e': the lead byte 0xE9 is carried over, then 'e' cannot continue it.
    // The ë before it spans chunks too, and counts as one column.
    const bytes = Buffer.concat([Buffer.from('email,name\na@x.com,Zoë\nb@x.com,Zoë Ren'), Buffer.from([0xe9]), Buffer.from('e\n')]);
    for (let size = 1; size <= 40; size++) {
      readerTuning.chunkBytes = size;
      const file = fixture(bytes);
      const e = await inputError(collect(await openCsv(file)));
      expect(e.message).toBe(`${file}:3: invalid UTF-8 (byte 0xE9 at column 16); the file may be Latin-1: try --encoding latin1`);
    }
  });

  it('refuses a UTF-8 BOM when another encoding was given', async () => {
    const file = fixture(`\uFEFF${HEADER}\n`);
    expect((await inputError(openCsv(file, { encoding: 'latin1' }))).message).toMatch(/UTF-8 byte-order mark/);
  });
});

describe('records: size cap and broken quoting', () => {
  it('refuses a field over the cap, naming line, field and size', async () => {
    const file = fixture(`email,notes,city\na@x.com,short,Oslo\nb@x.com,${'x'.repeat(70_000)},Rome\nc@x.com,short,Rome\n`);
    const source = await openCsv(file);
    const seen: number[] = [];
    const e = await inputError(
      (async () => {
        for await (const r of source.records()) seen.push(r.line);
      })(),
    );
    expect(seen).toEqual([2]); // the records before the bad one still come out first
    expect(e.message).toBe(`${file}:3: field 2 ("notes") is 70,000 bytes, over the 65,536-byte cap`);
    expect(e.hint).toMatch(/--max-field-size/);
  });

  it('measures the cap in UTF-8 bytes, not characters', async () => {
    const under = await read(`email,notes\na@x.com,${'é'.repeat(30_000)}\n`); // 60,000 bytes
    expect(under.records).toHaveLength(1);
    const file = fixture(`email,notes\na@x.com,${'é'.repeat(40_000)}\n`); // 80,000 bytes, 40,000 characters
    const e = await inputError(collect(await openCsv(file)));
    expect(e.message).toBe(`${file}:2: field 2 ("notes") is 80,000 bytes, over the 65,536-byte cap`);
  });

  it('gives up on a header line with no end in the first 1 MiB, saying so with the count grouped', async () => {
    const file = fixture(`email,${'x'.repeat(1_100_000)}`);
    const e = await inputError(openCsv(file));
    expect(e.message).toBe(`${file}:1: no end of the header line in the first 1,048,576 bytes`);
  });

  it('honours maxFieldBytes', async () => {
    const file = fixture('email,notes\na@x.com,0123456789\n');
    expect((await collect(await openCsv(file, { maxFieldBytes: 10 }))).length).toBe(1);
    const e = await inputError(collect(await openCsv(file, { maxFieldBytes: 9 })));
    expect(e.message).toBe(`${file}:2: field 2 ("notes") is 10 bytes, over the 9-byte cap`);
  });

  it('names the line where an unclosed quote starts, after the records before it', async () => {
    const file = fixture(`${HEADER}\na@x.com,A,B,pro,X\n\nb@x.com,"B,B,pro,X\nc@x.com,C,C,pro,X\nd@x.com,D,D,pro,X\n`);
    const source = await openCsv(file);
    const seen: number[] = [];
    const e = await inputError(
      (async () => {
        for await (const r of source.records()) seen.push(r.line);
      })(),
    );
    expect(seen).toEqual([2]);
    expect(e.message).toBe(`${file}:4: field 2 ("first_name") opens a quote (") that is never closed`);
  });

  it('stops an unclosed quote in a large file at the record size bound, naming where it started', async () => {
    let rows = '';
    for (let i = 0; i < 200; i++) rows += `u${i}@x.com,fine\n`;
    const file = fixture(`email,notes\na@x.com,ok\nb@x.com,"never closed\n${rows}`);
    // 100-byte fields, 2 columns: csv-parse gives up after 300 bytes instead of buffering the file.
    const e = await inputError(collect(await openCsv(file, { maxFieldBytes: 100 })));
    expect(e.message).toMatch(new RegExp(`^${escape(file)}:3: the record starting here grew over 300 bytes while reading field 2 \\("notes"\\).*quote`));
  });

  it('maps a bad closing quote and a stray quote to plain messages with the line', async () => {
    const closing = fixture('email,name\na@x.com,ok\nb@x.com,"Bo"x\n');
    expect((await inputError(collect(await openCsv(closing)))).message).toBe(
      `${closing}:3: field 2 ("name") has text after its closing quote (") instead of a delimiter or line end`,
    );
    const stray = fixture('email,name\na@x.com,5" disk\n');
    expect((await inputError(collect(await openCsv(stray)))).message).toBe(`${stray}:2: field 2 ("name") has a quote (") inside a value that is not quoted`);
  });
});

describe('records: iteration', () => {
  it('batches() gives the same records as records(), then the error after the records before it', async () => {
    let rows = '';
    for (let i = 0; i < 5000; i++) rows += i % 997 === 0 ? `u${i}@x.com,"two\nlines",B,pro,X\n` : i % 1009 === 0 ? `u${i}@x.com,ragged\n` : `u${i}@x.com,A,B,pro,X\n`;
    const content = `${HEADER}\n${rows}`;
    const byRecord = await collect(await openCsv(fixture(content)));
    const batched: CsvRecord[] = [];
    let batches = 0;
    for await (const batch of (await openCsv(fixture(content))).batches()) {
      batches++;
      batched.push(...batch);
    }
    expect(summary(batched)).toEqual(summary(byRecord));
    expect(byRecord).toHaveLength(5000);
    expect(batches).toBeGreaterThan(1); // a 300 KB file comes in several slices
    const broken = fixture(`${content}z@x.com,"never closed\n`);
    const seen: CsvRecord[] = [];
    const e = await inputError(
      (async () => {
        for await (const batch of (await openCsv(broken)).batches()) seen.push(...batch);
      })(),
    );
    expect(seen).toHaveLength(5000);
    // header + 5,000 records, 6 of them over two lines: the broken record starts on line 5,008.
    expect(e.message).toMatch(/:5008: field 2 \("first_name"\) opens a quote/);
  });

  it('may only be iterated once', async () => {
    const source = await openCsv(fixture(`${HEADER}\na@x.com,A,B,pro,X\n`));
    await collect(source);
    expect(() => source.records()).toThrow(/once/);
  });

  it('maps a file removed after openCsv to "no such file" when iterating', async () => {
    const file = fixture(`${HEADER}\na@x.com,A,B,pro,X\n`);
    const source = await openCsv(file);
    fs.unlinkSync(file);
    expect((await inputError(collect(source))).message).toBe(`${file}: no such file`);
  });

  it('stops cleanly when the caller breaks out early', async () => {
    let rows = '';
    for (let i = 0; i < 10_000; i++) rows += `u${i}@x.com,n\n`;
    readerTuning.chunkBytes = 4096;
    const source = await openCsv(fixture(`email,name\n${rows}`));
    const iterator = source.records()[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ kind: 'row', line: 2, fields: ['u0@x.com', 'n'] });
    expect(await iterator.return?.()).toEqual({ done: true, value: undefined });
    expect((await iterator.next()).done).toBe(true);
  });

  it('numbers 20,000 rows (~350 KB) consecutively across read and parse boundaries', async () => {
    let rows = '';
    for (let i = 0; i < 20_000; i++) rows += i % 1000 === 0 ? `u${i}@x.com,"two\nlines"\n` : `u${i}@x.com,n${i}\n`;
    const expected: number[] = [];
    for (let i = 0, line = 2; i < 20_000; i++) {
      expected.push(line);
      line += i % 1000 === 0 ? 2 : 1;
    }
    // 1,000-byte reads; then the default 256 KiB reads, parsed in 64 KiB slices.
    for (const size of [1000, DEFAULT_CHUNK]) {
      readerTuning.chunkBytes = size;
      const { records } = await read(`email,name\n${rows}`);
      expect(records.map((r) => r.line)).toEqual(expected);
    }
  });
});

describe('parseDelimiter', () => {
  it.each([
    [',', ','],
    [';', ';'],
    ['|', '|'],
    ['\t', '\t'],
    ['tab', '\t'],
    ['TAB', '\t'],
    ['\\t', '\t'],
  ])('accepts %j', (flag, expected) => {
    expect(parseDelimiter(flag)).toBe(expected);
  });

  it.each(['x', '', ',,', ' ', ':'])('refuses %j with an InputError', (flag) => {
    expect(() => parseDelimiter(flag)).toThrow(InputError);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
