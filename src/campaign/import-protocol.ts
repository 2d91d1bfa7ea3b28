import type { CsvDelimiter, CsvEncoding } from './csv-reader.js';
import type { RecipientInsert, RejectInsert } from '../store/types.js';

/**
 * Messages between the import's main thread (which owns the database) and the
 * worker thread that reads, parses and validates the CSV. Splitting the work
 * this way lets the two cores of a small machine parse and insert at once.
 */

export interface ImportWorkerInput {
  readonly path: string;
  readonly delimiter: CsvDelimiter;
  readonly encoding: CsvEncoding;
  readonly maxFieldBytes: number | undefined;
  readonly columns: readonly string[];
  readonly emailIndex: number;
  readonly batchSize: number;
}

/**
 * Rows travel packed into one string (fields joined by NUL) because one large
 * string crosses threads far cheaper than 5,000 small objects. NUL is a safe
 * separator: addresses are validated free of control characters, and the
 * values are JSON text, which escapes it. A row is line, address, key,
 * domain, and the JSON array of every column's value (the address column
 * holding the normalized address).
 */
export const FIELD_SEPARATOR = '\u0000';
const FIELDS_PER_ROW = 5;

export type WorkerMessage =
  | { readonly type: 'batch'; readonly rows: string; readonly rejects: readonly RejectInsert[]; readonly records: number }
  | { readonly type: 'done'; readonly records: number }
  | { readonly type: 'error'; readonly input: boolean; readonly message: string; readonly hint: string | undefined };

export type MainMessage = { readonly type: 'ack' };

export function packRow(parts: string[], line: number, address: string, key: string, domain: string, fields: readonly string[]): void {
  // JSON text escapes NUL, so the values travel (and are stored) as one field.
  parts.push(String(line), address, key, domain, JSON.stringify(fields));
}

export function unpackRows(packed: string): RecipientInsert[] {
  if (packed === '') return [];
  const f = packed.split(FIELD_SEPARATOR);
  const rows: RecipientInsert[] = new Array<RecipientInsert>(f.length / FIELDS_PER_ROW);
  for (let i = 0, r = 0; i < f.length; i += FIELDS_PER_ROW, r++) {
    rows[r] = {
      line: Number(f[i]),
      address: f[i + 1] as string,
      addressKey: f[i + 2] as string,
      domain: f[i + 3] as string,
      varsJson: f[i + 4] as string,
    };
  }
  return rows;
}
