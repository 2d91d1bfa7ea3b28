import { isUtf8 } from 'node:buffer';
import { createReadStream, type ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { CsvError, Parser } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import type Iconv from 'iconv-lite';
import { InputError } from '../errors.js';
import { LineCursor, Utf8Guard, firstInvalidUtf8, singleByteCharCount, utf8CharCount, type BytePosition } from './utf8-guard.js';

/**
 * Streaming reader for recipient CSVs: the header is read and checked by
 * openCsv(), the rows are streamed by records() with the physical line each
 * starts on. Built on csv-parse's parser, driven so that it adds almost
 * nothing to csv-parse's own cost (see BatchParser).
 */

export type CsvEncoding = 'utf-8' | 'latin1' | 'windows-1252';
export type CsvDelimiter = ',' | ';' | '\t' | '|';

export interface CsvReadOptions {
  delimiter?: CsvDelimiter;
  encoding?: CsvEncoding;
  /** Largest field accepted, in UTF-8 bytes of the decoded value; default 65536. */
  maxFieldBytes?: number;
  /**
   * Reads only the records in this byte range, counting lines from `line`
   * (a part from splitCsv). The header is still read and checked.
   */
  range?: { readonly start: number; readonly end: number; readonly line: number };
  /** The file holds no CR byte (hasCarriageReturn): records end at LF only. */
  lfOnly?: boolean;
}

export type CsvRecord =
  | { kind: 'row'; line: number; fields: string[] }
  | { kind: 'ragged'; line: number; raw: string; expected: number; got: number };

export interface CsvSource {
  readonly path: string;
  readonly columns: readonly string[];
  readonly delimiter: CsvDelimiter;
  /** Where the data starts, and the byte that ends a line: what splitCsv needs. */
  readonly layout: { readonly dataStart: number; readonly dataLine: number; readonly newline: number };
  /** Streams the records after the header; may be iterated once (this or batches()). */
  records(): AsyncIterable<CsvRecord>;
  /**
   * The same records, as the arrays the reader fills from each 64 KiB slice
   * (~1,000 records): one await per array instead of one per record, which
   * was ~0.3 s of a 1,000,000-row import.
   */
  batches(): AsyncIterable<readonly CsvRecord[]>;
}

/** Exposed so that tests can put a chunk boundary inside a multi-byte character. */
export const readerTuning = {
  /**
   * Read size of the row stream: 240 reads for a 60 MB file instead of 960
   * with the 64 KiB default. Parsing goes 64 KiB at a time regardless
   * (PARSE_SLICE_BYTES), so this does not change how many records are alive.
   */
  chunkBytes: 256 * 1024,
};

const DEFAULT_MAX_FIELD_BYTES = 65_536;
/** The header is looked for in blocks of this size ... */
const HEADER_BLOCK_BYTES = 64 * 1024;
/**
 * ... up to this size: 1 MiB holds 10,000 column names of 100 bytes. Past it
 * the file is binary, or a quote is never closed, and reading on would load
 * the whole file for nothing.
 */
const HEADER_MAX_BYTES = 1024 * 1024;
/**
 * A chunk is parsed this much at a time, so that the records waiting to be
 * handed out stay ~1,000 (not ~4,000) and mostly die young: on 1M rows the
 * garbage collector took 80-120 ms this way against ~280 ms parsing whole
 * 256 KiB chunks (bare csv-parse: 85-95 ms).
 */
const PARSE_SLICE_BYTES = 64 * 1024;
/** A ragged row's raw text is kept up to this many characters (the importer stores it). */
const RAGGED_RAW_CHARS = 1000;

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** In order of preference when two occur equally often in the header. */
const DELIMITERS: readonly CsvDelimiter[] = [',', ';', '\t', '|'];

/**
 * A count with thousands separators (65,536) for error messages. Not
 * Intl.NumberFormat: creating one at load time put ~25 ms of ICU set-up
 * before every import's first row, on both threads.
 */
function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function parseDelimiter(flag: string): CsvDelimiter {
  if (flag === ',' || flag === ';' || flag === '|' || flag === '\t') return flag;
  // '\t' arrives as two characters when typed in a shell without $'...'.
  if (flag.toLowerCase() === 'tab' || flag === '\\t') return '\t';
  throw new InputError(`--delimiter ${JSON.stringify(flag)} is not supported`, "use one of: ',' ';' '|' tab");
}

// ---------------------------------------------------------------- errors

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Maps the file-system errors an operator can fix to InputError; anything else is rethrown as is. */
function fileError(path: string, err: unknown): unknown {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return new InputError(`${path}: no such file`);
    case 'ENOTDIR':
      return new InputError(`${path}: no such file (a parent folder in the path is a file)`);
    case 'EISDIR':
      return new InputError(`${path}: is a directory, not a CSV file`);
    case 'EACCES':
    case 'EPERM':
      return new InputError(`${path}: permission denied (${errnoCode(err)}): the file cannot be read by this user`);
    default:
      return err;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function fieldLabel(index: number, columns: readonly string[]): string {
  const name = columns[index];
  return name === undefined ? `field ${index + 1}` : `field ${index + 1} (${JSON.stringify(name)})`;
}

const QUOTING_HINT = 'a field containing the delimiter, a quote or a line break must be quoted as a whole, with inner quotes doubled: "say ""hi"""';

/**
 * Turns a csv-parse error into one line naming the file and the line the
 * record starts on. csv-parse's own line numbers are not used: they are
 * relative to where parsing started and count a CR inside a quoted field as a
 * line of its own; `line` comes from the reader's count instead.
 */
function csvSyntaxError(path: string, line: number, err: CsvError, columns: readonly string[], maxRecordSize: number): InputError {
  // csv-parse copies its parse state onto the error; `column` is the 0-based field being read.
  const index = typeof err.column === 'number' ? err.column : 0;
  const field = fieldLabel(index, columns);
  const at = `${path}:${line}`;
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return new InputError(`${at}: ${field} opens a quote (") that is never closed`, QUOTING_HINT);
    case 'CSV_MAX_RECORD_SIZE':
      return new InputError(
        `${at}: the record starting here grew over ${grouped(maxRecordSize)} bytes while reading ${field}: fields are capped, and a quote (") that is never closed makes the rest of the file one field`,
        'fix the quoting, or raise the cap with --max-field-size <bytes> if the field is legitimate',
      );
    case 'INVALID_OPENING_QUOTE':
      return new InputError(`${at}: ${field} has a quote (") inside a value that is not quoted`, QUOTING_HINT);
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return new InputError(`${at}: ${field} has text after its closing quote (") instead of a delimiter or line end`, QUOTING_HINT);
    default:
      return new InputError(`${at}: ${field} is not valid CSV`, QUOTING_HINT);
  }
}

function invalidUtf8Error(path: string, bad: BytePosition & { byte: number }): InputError {
  const byte = `0x${bad.byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return new InputError(
    `${path}:${bad.line}: invalid UTF-8 (byte ${byte} at column ${bad.column}); the file may be Latin-1: try --encoding latin1`,
    'a file saved by Excel on Windows is often windows-1252 (--encoding windows-1252); mailq never replaces bad bytes with U+FFFD',
  );
}

/**
 * iconv-lite, loaded on first use: only latin1 and windows-1252 files need
 * it, and loading it (some 50 CommonJS files) put ~15 ms before every
 * import's first row, on both threads.
 */
let iconvLib: typeof Iconv | undefined;
function iconv(): typeof Iconv {
  iconvLib ??= createRequire(import.meta.url)('iconv-lite') as typeof Iconv;
  return iconvLib;
}

/** Bytes iconv-lite decodes to U+FFFD because windows-1252 leaves them undefined. */
const CP1252_UNDEFINED = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);

function cp1252Error(path: string, chunk: Buffer, cursor: LineCursor): InputError {
  const offset = chunk.findIndex((b) => CP1252_UNDEFINED.has(b));
  const at = cursor.at(chunk, Math.max(offset, 0));
  const byte = (chunk[offset] ?? 0).toString(16).toUpperCase();
  return new InputError(
    `${path}:${at.line}: byte 0x${byte} at column ${at.column} is not a character in windows-1252; the file may be UTF-8 or Latin-1: try --encoding utf-8 or --encoding latin1`,
  );
}

// ---------------------------------------------------------------- decoding

/** Turns file bytes into the UTF-8 that csv-parse reads, rejecting what cannot be decoded faithfully. */
interface ChunkDecoder {
  /** Returns the chunk as UTF-8, or throws InputError. */
  decode(chunk: Buffer): Buffer;
  /** Throws InputError if the input ended in the middle of a character. */
  end(): void;
}

function makeDecoder(path: string, encoding: CsvEncoding, firstLine: number, newline: number): ChunkDecoder {
  if (encoding === 'utf-8') {
    const guard = new Utf8Guard(new LineCursor(firstLine, newline, utf8CharCount));
    return {
      decode(chunk) {
        const bad = guard.check(chunk);
        if (bad !== undefined) throw invalidUtf8Error(path, bad);
        return chunk;
      },
      end() {
        const bad = guard.end();
        if (bad !== undefined) throw invalidUtf8Error(path, bad);
      },
    };
  }
  // Single-byte encodings: every chunk boundary is a character boundary.
  const cursor = new LineCursor(firstLine, newline, singleByteCharCount);
  return {
    decode(chunk) {
      const text = iconv().decode(chunk, encoding);
      // In windows-1252 (not in latin1) five bytes are undefined and decode to U+FFFD.
      if (encoding === 'windows-1252') {
        if (text.includes('\uFFFD')) throw cp1252Error(path, chunk, cursor);
        cursor.advance(chunk);
      }
      return Buffer.from(text, 'utf8');
    },
    end() {},
  };
}

// ---------------------------------------------------------------- header

interface HeaderScan {
  /** Byte range of the header record, without its line break. */
  readonly start: number;
  readonly end: number;
  /** Offset just past the header's line break: where records() starts reading. */
  readonly dataStart: number;
  /** Physical line the header starts on (after any blank lines). */
  readonly line: number;
  /** Physical line of the first byte after the header. */
  readonly dataLine: number;
  /** LF, or CR for a file whose lines end in a bare CR (classic Mac). */
  readonly newline: number;
  /** Occurrences of each of DELIMITERS outside quotes. */
  readonly counts: readonly number[];
}

/**
 * Finds the header record in the first bytes of the file: skips a BOM and
 * blank lines, then runs to the first CR or LF outside double quotes,
 * counting the delimiter candidates seen outside quotes on the way. Returns
 * 'more' when the buffer ends before that is known.
 */
function scanHeader(buf: Buffer, eof: boolean, from: number): HeaderScan | 'more' | 'empty' {
  let i = from;
  let line = 1;
  // Blank lines before the header are skipped, as csv-parse skips them later on.
  for (;;) {
    const b = buf[i];
    if (b === undefined) return eof ? 'empty' : 'more';
    if (b === LF) {
      i++;
      line++;
    } else if (b === CR) {
      const next = buf[i + 1];
      if (next === undefined && !eof) return 'more';
      i += next === LF ? 2 : 1;
      line++;
    } else break;
  }
  const start = i;
  const counts = DELIMITERS.map(() => 0);
  const codes = DELIMITERS.map((d) => d.charCodeAt(0));
  let quoted = false;
  let lfInQuotes = 0;
  let crInQuotes = 0;
  for (; i < buf.length; i++) {
    const b = buf[i];
    if (b === QUOTE) {
      // A doubled quote inside a quoted field toggles twice: net effect none.
      quoted = !quoted;
    } else if (quoted) {
      if (b === LF) lfInQuotes++;
      else if (b === CR) crInQuotes++;
    } else if (b === LF || b === CR) {
      const next = buf[i + 1];
      if (b === CR && next === undefined && !eof) return 'more';
      const newline = b === CR && next !== LF ? CR : LF;
      const dataStart = i + (b === CR && next === LF ? 2 : 1);
      const dataLine = line + (newline === LF ? lfInQuotes : crInQuotes) + 1;
      return { start, end: i, dataStart, line, dataLine, newline, counts };
    } else {
      const k = codes.indexOf(b ?? 0);
      if (k !== -1) counts[k] = (counts[k] ?? 0) + 1;
    }
  }
  if (!eof) return 'more';
  // A header-only file without a final line break: there are no records.
  return { start, end: buf.length, dataStart: buf.length, line, dataLine: line + lfInQuotes + 1, newline: LF, counts };
}

/**
 * Delimiter detection when --delimiter is not given: of `,` `;` tab `|`, the
 * one that occurs most often outside double quotes in the header line wins;
 * a tie goes to the earlier in that order, and none at all means `,` (a
 * one-column file). The header is the one line whose fields are all names,
 * so it is the most reliable sample.
 */
function detectDelimiter(counts: readonly number[]): CsvDelimiter {
  let best = 0;
  for (let k = 1; k < counts.length; k++) if ((counts[k] ?? 0) > (counts[best] ?? 0)) best = k;
  return (counts[best] ?? 0) > 0 ? (DELIMITERS[best] ?? ',') : ',';
}

/** Refuses files that are certainly not a CSV in the requested encoding, with what they are instead. */
function checkMagic(path: string, head: Buffer, encoding: CsvEncoding): void {
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    throw new InputError(`${path}: is a ZIP archive (an .xlsx workbook?), not a CSV file`, 'save it from the spreadsheet as "CSV UTF-8"');
  }
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new InputError(`${path}: is UTF-16 (it starts with a UTF-16 byte-order mark)`, 'save it as "CSV UTF-8", or convert it: iconv -f UTF-16 -t UTF-8');
  }
  if (encoding !== 'utf-8' && head.subarray(0, 3).equals(UTF8_BOM)) {
    throw new InputError(`${path}: starts with a UTF-8 byte-order mark but --encoding ${encoding} was given`, 'leave out --encoding: the file is UTF-8');
  }
}

interface Header {
  readonly columns: readonly string[];
  readonly delimiter: CsvDelimiter;
  readonly dataStart: number;
  readonly dataLine: number;
  readonly newline: number;
}

async function readHeaderBytes(path: string, handle: FileHandle, encoding: CsvEncoding): Promise<{ buf: Buffer; scan: HeaderScan }> {
  let buf = Buffer.alloc(0);
  let bom = 0;
  let checked = false;
  for (;;) {
    const block = Buffer.allocUnsafe(HEADER_BLOCK_BYTES);
    const { bytesRead } = await handle.read(block, 0, HEADER_BLOCK_BYTES, buf.length);
    const eof = bytesRead === 0;
    if (!eof) buf = Buffer.concat([buf, block.subarray(0, bytesRead)]);
    if (buf.length < 4 && !eof) continue; // the magic numbers need 4 bytes
    if (!checked) {
      checkMagic(path, buf, encoding);
      bom = buf.subarray(0, 3).equals(UTF8_BOM) ? 3 : 0;
      checked = true;
    }
    const scan = scanHeader(buf, eof, bom);
    if (scan === 'empty') throw new InputError(`${path}: is empty`, 'the first line must be a header naming the columns, e.g. email,first_name');
    if (scan !== 'more') return { buf, scan };
    if (buf.length >= HEADER_MAX_BYTES) {
      throw new InputError(
        `${path}:1: no end of the header line in the first ${grouped(HEADER_MAX_BYTES)} bytes`,
        'is it a CSV file? A quote (") that is never closed in the header also causes this',
      );
    }
  }
}

function decodeHeader(path: string, bytes: Buffer, scan: HeaderScan, encoding: CsvEncoding): string {
  if (encoding === 'utf-8') {
    if (!isUtf8(bytes)) {
      const offset = Math.max(firstInvalidUtf8(bytes), 0);
      const at = new LineCursor(scan.line, scan.newline, utf8CharCount).at(bytes, offset);
      throw invalidUtf8Error(path, { ...at, byte: bytes[offset] ?? 0 });
    }
    return bytes.toString('utf8');
  }
  const text = iconv().decode(bytes, encoding);
  if (encoding === 'windows-1252' && text.includes('\uFFFD')) {
    throw cp1252Error(path, bytes, new LineCursor(scan.line, scan.newline, singleByteCharCount));
  }
  return text;
}

function checkNames(path: string, line: number, names: readonly string[]): void {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    if (name === '') {
      throw new InputError(
        `${path}:${line}: column ${i + 1} of the header has no name`,
        'every column needs a name; a delimiter at the end of the header line makes an empty last column',
      );
    }
    const key = name.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InputError(
        `${path}:${line}: duplicate column name: column ${first + 1} ${JSON.stringify(names[first])} and column ${i + 1} ${JSON.stringify(name)}`,
        'header names are compared ignoring case and surrounding spaces; rename one of them',
      );
    }
    seen.set(key, i);
  });
}

async function readHeader(path: string, encoding: CsvEncoding, given: CsvDelimiter | undefined, maxFieldBytes: number): Promise<Header> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new InputError(`${path}: is a directory, not a CSV file`);
    // records() opens the file again at the first row, which a pipe cannot do.
    if (!stat.isFile()) throw new InputError(`${path}: is not a regular file (a pipe or device?)`, 'save the data to a file first: it is read twice, header then rows');
    const { buf, scan } = await readHeaderBytes(path, handle, encoding);
    const text = decodeHeader(path, buf.subarray(scan.start, scan.end), scan, encoding);
    const delimiter = given ?? detectDelimiter(scan.counts);
    let records: string[][];
    try {
      records = parseSync(text, { delimiter, relax_column_count: true });
    } catch (err) {
      if (err instanceof CsvError) throw csvSyntaxError(path, scan.line, err, [], HEADER_MAX_BYTES);
      throw err;
    }
    if (records.length !== 1) throw new InputError(`${path}:${scan.line}: the header line could not be read as one CSV record`, QUOTING_HINT);
    const names = (records[0] ?? []).map((name) => name.trim());
    const tooLong = names.findIndex((name) => Buffer.byteLength(name) > maxFieldBytes);
    if (tooLong !== -1) {
      throw new InputError(`${path}:${scan.line}: column ${tooLong + 1} of the header is over the ${grouped(maxFieldBytes)}-byte cap`);
    }
    checkNames(path, scan.line, names);
    return { columns: names, delimiter, dataStart: scan.dataStart, dataLine: scan.dataLine, newline: scan.newline };
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------- rows

/** The shape of csv-parse's field accumulator (its internal ResizeableBuffer). */
interface FieldBuffer {
  buf: Buffer;
  length: number;
  toString(encoding?: BufferEncoding): unknown;
}

function isFieldBuffer(x: unknown): x is FieldBuffer {
  if (typeof x !== 'object' || x === null) return false;
  const f = x as { buf?: unknown; length?: unknown; toString?: unknown };
  return Buffer.isBuffer(f.buf) && typeof f.length === 'number' && typeof f.toString === 'function';
}

/**
 * csv-parse turns each field into a string with
 * `field.buf.slice(0, length).toString(encoding)`: a Buffer view allocated
 * for every field only to be decoded. Decoding the range directly gives the
 * same string without the view: csv-parse took ~20% less time on the bench
 * file (12 of 12 alternated rounds, 20 MB each), ~5,000,000 allocations
 * fewer on 1,000,000 rows. This reaches into csv-parse's parser state, so
 * it checks the shape first and otherwise leaves csv-parse's own method in
 * place (slower, same result); a unit test fails if it no longer applies.
 * Returns whether it applied.
 */
export function decodeFieldsInPlace(parser: Parser): boolean {
  const field = (parser as unknown as { state?: { field?: unknown } }).state?.field;
  if (!isFieldBuffer(field)) return false;
  const own = field.toString.bind(field);
  // csv-parse passes its `encoding` option: a name, or null for raw bytes.
  field.toString = (encoding?: BufferEncoding): unknown => (encoding ? field.buf.toString(encoding, 0, field.length) : own(encoding));
  return true;
}

/**
 * csv-parse's stream Parser, driven synchronously. Records pushed by the
 * parser are collected into an array instead of going through the Readable
 * buffer, and chunks go straight to _transform/_flush instead of through the
 * Writable side. Profiled on 1M rows (60 MB): csv-parse with the usual
 * pipe + for-await spends ~0.3 µs a row of its ~3.5 µs in the stream's
 * push/read/async iterator; this skips that and spends it on the reader's
 * own work (line numbers, ragged rows, field cap, UTF-8 check) instead.
 * csv-parse's on_record and info options were not used for line numbers:
 * they copy the parser's info object for every record, measured +84% and
 * +107% over the same parse without them.
 */
class BatchParser extends Parser {
  private batch: string[][] = [];

  constructor(options: ConstructorParameters<typeof Parser>[0]) {
    super(options);
    decodeFieldsInPlace(this);
  }

  override push(chunk: unknown): boolean {
    if (chunk === null) return super.push(null);
    // Without `columns`, `cast` or `objname`, csv-parse pushes each record as an array of strings.
    this.batch.push(chunk as string[]);
    return true;
  }

  /** Parses a chunk; returns the error that stopped parsing, if any. Records are in takeRecords(). */
  feed(bytes: Buffer): unknown {
    let failure: unknown;
    // csv-parse ignores the encoding argument: it works on bytes.
    this._transform(bytes, 'utf8', (err) => {
      failure = err ?? undefined;
    });
    return failure;
  }

  /** Parses what is left at end of input (the last record, an unclosed quote). */
  finishInput(): unknown {
    let failure: unknown;
    this._flush((err) => {
      failure = err ?? undefined;
    });
    return failure;
  }

  takeRecords(): string[][] {
    const records = this.batch;
    this.batch = [];
    return records;
  }
}

interface RowSettings {
  readonly path: string;
  readonly columns: readonly string[];
  readonly delimiter: CsvDelimiter;
  readonly encoding: CsvEncoding;
  readonly maxFieldBytes: number;
  readonly dataStart: number;
  readonly dataLine: number;
  readonly newline: number;
  /** Byte offset where reading stops (exclusive); undefined for the end of the file. */
  readonly dataEnd: number | undefined;
  readonly lfOnly: boolean;
}

/**
 * The records() iterator. Hand-written rather than an async generator: a
 * generator would add a suspend/resume and a promise per record (1M of them
 * per million-row import) on top of the consumer's own for-await step; this
 * resolves straight from an array filled one 64 KiB slice at a time.
 */
class RecordIterator implements AsyncIterableIterator<CsvRecord> {
  private ready: CsvRecord[] = [];
  private index = 0;
  /** Error to raise once the records before it have been handed out. */
  private failure: Error | undefined;
  private finished = false;
  /** Physical line on which the next record starts. */
  private line: number;
  /** Decoded chunk not yet parsed, from pendingAt on. */
  private pending: Buffer | undefined;
  private pendingAt = 0;
  /** Opened on the first next(), so that an iterator never used holds no file descriptor. */
  private stream: ReadStream | undefined;
  private chunks: AsyncIterator<unknown> | undefined;
  private readonly parser: BatchParser;
  private readonly decoder: ChunkDecoder;
  private readonly maxRecordSize: number;
  /** A field of at most this many UTF-16 units cannot exceed the byte cap (3 bytes per unit at most). */
  private readonly byteCheckAbove: number;
  private readonly newlineChar: string;

  constructor(private readonly s: RowSettings) {
    this.line = s.dataLine;
    this.newlineChar = String.fromCharCode(s.newline);
    this.byteCheckAbove = Math.floor(s.maxFieldBytes / 3);
    // Bounds what an unclosed quote can make csv-parse buffer: a full record
    // of capped fields plus one, e.g. 6 × 64 KiB = 384 KiB for 5 columns.
    this.maxRecordSize = s.maxFieldBytes * (s.columns.length + 1);
    this.parser = new BatchParser({
      delimiter: s.delimiter,
      // Ragged rows are reported, not fatal; blank lines come out as [''] and are skipped below.
      relax_column_count: true,
      max_record_size: this.maxRecordSize,
      // CRLF and LF both end a record even when mixed in one file (rows
      // appended by another tool); a bare CR only in a file whose header used it.
      record_delimiter: s.newline === CR ? ['\r'] : s.lfOnly ? ['\n'] : ['\r\n', '\n'],
    });
    this.decoder = makeDecoder(s.path, s.encoding, s.dataLine, s.newline);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<CsvRecord> {
    return this;
  }

  next(): Promise<IteratorResult<CsvRecord>> {
    const value = this.ready[this.index];
    if (value !== undefined) {
      this.index++;
      return Promise.resolve({ done: false, value });
    }
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      this.close();
      return Promise.reject(failure);
    }
    if (this.finished) return Promise.resolve({ done: true, value: undefined });
    return this.fill().then(() => this.next());
  }

  /** Every record ready now, or the next slice's; undefined at the end. */
  async nextBatch(): Promise<readonly CsvRecord[] | undefined> {
    for (;;) {
      if (this.index < this.ready.length) {
        const batch = this.index === 0 ? this.ready : this.ready.slice(this.index);
        this.ready = [];
        this.index = 0;
        return batch;
      }
      if (this.failure !== undefined) {
        const failure = this.failure;
        this.failure = undefined;
        this.close();
        throw failure;
      }
      if (this.finished) return undefined;
      await this.fill();
    }
  }

  return(): Promise<IteratorResult<CsvRecord>> {
    this.close();
    return Promise.resolve({ done: true, value: undefined });
  }

  private close(): void {
    this.finished = true;
    this.ready = [];
    this.index = 0;
    this.pending = undefined;
    this.stream?.destroy();
  }

  /** Reads chunks until there are records to hand out, an error, or the end. */
  private async fill(): Promise<void> {
    try {
      while (this.index >= this.ready.length && this.failure === undefined && !this.finished) {
        const pending = this.pending;
        if (pending !== undefined) {
          const end = Math.min(this.pendingAt + PARSE_SLICE_BYTES, pending.length);
          const slice = pending.subarray(this.pendingAt, end);
          this.pendingAt = end;
          if (end === pending.length) this.pending = undefined;
          this.collect(this.parser.feed(slice), !slice.includes(QUOTE));
          continue;
        }
        if (this.chunks === undefined) {
          this.stream = createReadStream(this.s.path, {
            start: this.s.dataStart,
            // createReadStream's end is inclusive.
            ...(this.s.dataEnd === undefined ? {} : { end: this.s.dataEnd - 1 }),
            highWaterMark: readerTuning.chunkBytes,
          });
          this.chunks = this.stream[Symbol.asyncIterator]();
        }
        const next = await this.chunks.next();
        if (next.done === true) {
          this.decoder.end();
          this.collect(this.parser.finishInput(), false);
          this.finished = true;
        } else if (Buffer.isBuffer(next.value)) {
          this.pending = this.decoder.decode(next.value);
          this.pendingAt = 0;
        }
      }
    } catch (err) {
      this.failure = asError(err instanceof InputError ? err : fileError(this.s.path, err));
    }
  }

  /**
   * Converts what the parser produced, then records its error (if any) for
   * after those records. `quoteFree`: the input just parsed holds no `"`.
   */
  private collect(parseError: unknown, quoteFree: boolean): void {
    this.convert(this.parser.takeRecords(), quoteFree);
    if (parseError !== undefined && this.failure === undefined) {
      this.failure =
        parseError instanceof CsvError
          ? csvSyntaxError(this.s.path, this.line, parseError, this.s.columns, this.maxRecordSize)
          : asError(parseError);
    }
  }

  /**
   * Hot loop: runs once per record, ~0.1 µs for 5 fields (profiled: ~100 ms
   * of a 1M-row read). Line numbers are counted here rather than taken from
   * csv-parse: a record starts one line after the previous one, plus one line
   * per newline inside its quoted fields, found with indexOf.
   *
   * When the input just parsed holds no quote, only the batch's first record
   * can hold a quoted field (it may have begun in earlier input; every later
   * one begins and ends in this input), so only its fields are searched: the
   * search was ~100 ms of CPU on 1,000,000 rows of 5 fields.
   */
  private convert(batch: string[][], quoteFree: boolean): void {
    const out: CsvRecord[] = [];
    const { columns, maxFieldBytes, delimiter } = this.s;
    const expected = columns.length;
    const newline = this.newlineChar;
    let line = this.line;
    let first = true;
    for (const fields of batch) {
      const start = line++;
      const search = first || !quoteFree;
      first = false;
      const got = fields.length;
      if (got === 1 && fields[0] === '') continue; // a blank line
      for (let i = 0; i < got; i++) {
        const field = fields[i] ?? '';
        if (field.length > this.byteCheckAbove) {
          const bytes = Buffer.byteLength(field);
          if (bytes > maxFieldBytes) {
            this.failure = new InputError(
              `${this.s.path}:${start}: ${fieldLabel(i, columns)} is ${grouped(bytes)} bytes, over the ${grouped(maxFieldBytes)}-byte cap`,
              'raise the cap with --max-field-size <bytes> if the value is legitimate',
            );
            this.line = start;
            this.ready = out;
            this.index = 0;
            return;
          }
        }
        if (!search) continue;
        let nl = field.indexOf(newline);
        while (nl !== -1) {
          line++;
          nl = field.indexOf(newline, nl + 1);
        }
      }
      if (got === expected) {
        out.push({ kind: 'row', line: start, fields });
      } else {
        const raw = fields.join(delimiter);
        out.push({
          kind: 'ragged',
          line: start,
          raw: raw.length > RAGGED_RAW_CHARS ? `${raw.slice(0, RAGGED_RAW_CHARS - 1)}…` : raw,
          expected,
          got,
        });
      }
    }
    this.line = line;
    this.ready = out;
    this.index = 0;
  }
}

export async function openCsv(path: string, options: CsvReadOptions = {}): Promise<CsvSource> {
  const encoding = options.encoding ?? 'utf-8';
  const maxFieldBytes = options.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES;
  const header = await readHeader(path, encoding, options.delimiter, maxFieldBytes);
  const range = options.range;
  const settings: RowSettings = {
    ...header,
    ...(range === undefined ? {} : { dataStart: range.start, dataLine: range.line }),
    dataEnd: range?.end,
    lfOnly: options.lfOnly === true && header.newline === LF,
    path,
    encoding,
    maxFieldBytes,
  };
  let iterated = false;
  return {
    path,
    columns: header.columns,
    delimiter: header.delimiter,
    layout: { dataStart: header.dataStart, dataLine: header.dataLine, newline: header.newline },
    records(): AsyncIterable<CsvRecord> {
      if (iterated) throw new Error(`the records of ${path} can only be iterated once`);
      iterated = true;
      return new RecordIterator(settings);
    },
    batches(): AsyncIterable<readonly CsvRecord[]> {
      if (iterated) throw new Error(`the records of ${path} can only be iterated once`);
      iterated = true;
      const reader = new RecordIterator(settings);
      return {
        [Symbol.asyncIterator]: () => ({
          next: async (): Promise<IteratorResult<readonly CsvRecord[]>> => {
            const batch = await reader.nextBatch();
            return batch === undefined ? { done: true, value: undefined } : { done: false, value: batch };
          },
          return: (): Promise<IteratorResult<readonly CsvRecord[]>> => reader.return().then(() => ({ done: true, value: undefined })),
        }),
      };
    },
  };
}
