import type { CsvDelimiter, CsvEncoding } from './csv-reader.js';
import type { CsvPart } from './csv-split.js';
import type { RecipientInsert, RejectInsert } from '../store/types.js';

/**
 * Messages between the import's main thread (which owns the database, and
 * parses parts of the file itself between inserts) and the worker thread
 * that parses the other parts. The worker is given two parts to start with
 * and one more each time it has read one, so that it never waits for work,
 * until the main thread says there are none left.
 */

export interface ImportWorkerInput {
  readonly path: string;
  readonly delimiter: CsvDelimiter;
  readonly encoding: CsvEncoding;
  readonly maxFieldBytes: number | undefined;
  readonly columns: readonly string[];
  readonly emailIndex: number;
  readonly batchSize: number;
  /** No CR byte in the file: csv-parse need only look for LF. */
  readonly lfOnly: boolean;
}

export type WorkerMessage =
  /** `records`: records the worker has read so far, over all its parts. */
  | { readonly type: 'batch'; readonly rows: ArrayBuffer; readonly bytes: number; readonly rejects: readonly RejectInsert[]; readonly records: number }
  /** The oldest part given to the worker is parsed without error. */
  | { readonly type: 'part-read'; readonly records: number }
  /** Every batch is posted; the worker is finished. */
  | { readonly type: 'done'; readonly records: number }
  | { readonly type: 'error'; readonly input: boolean; readonly message: string; readonly hint: string | undefined };

export type MainMessage =
  /** The first message: what the worker reads, and how. */
  | { readonly type: 'start'; readonly input: ImportWorkerInput }
  | { readonly type: 'part'; readonly part: CsvPart }
  /** No parts left: post what is packed, then `done`. */
  | { readonly type: 'end' }
  /** A batch is inserted: its buffer comes back (transferred) to be filled again. */
  | { readonly type: 'ack'; readonly rows: ArrayBuffer };

/**
 * Rows travel as UTF-8 bytes in an ArrayBuffer that is transferred, not
 * copied, to the main thread: each row is built as one short-lived string
 * and written into the batch buffer at once, so nothing a row allocates
 * survives to be copied by the garbage collector (on 1,000,000 rows the
 * worker's GC went from ~1.6 s with rows kept as strings until the batch was
 * joined). A row is its byte length (uint32 LE), then line, address and the
 * JSON array of every column's value (null in the address column: the store
 * reads the row's normalized address there), each followed by NUL. NUL is
 * safe: addresses are validated free of control characters, and JSON
 * escapes it.
 */
export const FIELD_SEPARATOR = '\u0000';
const LENGTH_BYTES = 4;

/** Characters JSON.stringify would escape (surrogates: to stay exact for lone ones). */
// eslint-disable-next-line no-control-regex -- the C0 controls are what JSON escapes
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * JSON.stringify(fields), faster: a field with nothing to escape (nearly
 * all) is quoted as it is. ~30% less time than JSON.stringify on the bench's
 * rows (a micro benchmark of 300,000 rows, 8 rounds); a unit test holds it
 * to JSON.stringify's output.
 */
export function jsonArray(fields: readonly (string | null)[]): string {
  let s = '[';
  for (let i = 0; i < fields.length; i++) {
    const v = fields[i];
    if (i > 0) s += ',';
    if (v === null || v === undefined) s += 'null';
    else s += JSON_ESCAPED.test(v) ? JSON.stringify(v) : `"${v}"`;
  }
  return `${s}]`;
}

/**
 * A batch of packed rows being filled in the worker. Buffers travel to the
 * main thread and back instead of being allocated per batch: a fresh 1.6 MB
 * buffer per batch, freed by the other thread, left glibc's per-thread heaps
 * fragmented.
 */
export class RowPacker {
  private buf: Buffer;
  private used = 0;
  private readonly spare: ArrayBuffer[] = [];

  constructor(private readonly initialBytes: number) {
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
  }

  get empty(): boolean {
    return this.used === 0;
  }

  /** Takes back a buffer the main thread is done with. */
  recycle(rows: ArrayBuffer): void {
    this.spare.push(rows);
  }

  add(line: number, address: string, fields: (string | null)[], emailIndex: number): void {
    fields[emailIndex] = null;
    const row = `${line}\u0000${address}\u0000${jsonArray(fields)}\u0000`;
    // A UTF-16 unit is at most 3 UTF-8 bytes: room for that means room for the row.
    const room = LENGTH_BYTES + row.length * 3;
    if (this.used + room > this.buf.length) this.grow(room);
    const bytes = this.buf.write(row, this.used + LENGTH_BYTES, 'utf8');
    this.buf.writeUInt32LE(bytes, this.used);
    this.used += LENGTH_BYTES + bytes;
  }

  /** Hands over the filled buffer (to be transferred) and starts a new one. */
  take(): { rows: ArrayBuffer; bytes: number } {
    const taken = { rows: this.buf.buffer as ArrayBuffer, bytes: this.used };
    const spare = this.spare.pop();
    this.buf = spare === undefined ? Buffer.allocUnsafeSlow(this.initialBytes) : Buffer.from(spare);
    this.used = 0;
    return taken;
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.used + need));
    this.buf.copy(next, 0, 0, this.used);
    this.buf = next;
  }
}

/**
 * The rows of a batch, decoded one at a time as they are iterated: the store
 * binds them a hundred at a time, so each row's strings die young. Decoding
 * the whole batch as one string kept 1.5 MB alive through each insert, and
 * the old generation filled with them (~35 MB of peak RSS on 1,000,000 rows).
 */
export function unpackRows(rows: ArrayBuffer, bytes: number): Iterable<RecipientInsert> {
  const buf = Buffer.from(rows, 0, bytes);
  return {
    *[Symbol.iterator](): Iterator<RecipientInsert> {
      let at = 0;
      while (at < bytes) {
        const length = buf.readUInt32LE(at);
        const text = buf.toString('utf8', at + LENGTH_BYTES, at + LENGTH_BYTES + length);
        at += LENGTH_BYTES + length;
        const a = text.indexOf(FIELD_SEPARATOR);
        const b = text.indexOf(FIELD_SEPARATOR, a + 1);
        yield {
          line: Number(text.slice(0, a)),
          address: text.slice(a + 1, b),
          varsJson: text.slice(b + 1, text.length - 1),
        };
      }
    },
  };
}
