import type { RejectInsert } from '../store/types.js';
import { normalizeAddress } from './address.js';
import type { CsvRecord } from './csv-reader.js';

/** A rejected cell or ragged line is kept verbatim up to this many characters. */
const MAX_RAW_CHARS = 1000;

function clip(raw: string): string {
  return raw.length > MAX_RAW_CHARS ? raw.slice(0, MAX_RAW_CHARS) : raw;
}

/** Where a parsed record goes: the worker packs rows, the main thread inserts them. */
export interface RowSink {
  row(line: number, address: string, key: string, domain: string, fields: (string | null)[]): void;
  reject(reject: RejectInsert): void;
}

/**
 * Turns parsed records into recipient rows and rejects: the address rules
 * and the ragged-row check, the same on whichever thread parsed the part.
 */
export function takeRecords(records: readonly CsvRecord[], emailIndex: number, sink: RowSink): void {
  for (const record of records) {
    if (record.kind === 'ragged') {
      sink.reject({
        line: record.line,
        raw: clip(record.raw),
        reason: 'ragged-row',
        message: `${record.got} fields where the header has ${record.expected}`,
      });
      continue;
    }
    const fields = record.fields;
    const cell = fields[emailIndex] ?? '';
    const address = normalizeAddress(cell);
    if (address.ok) sink.row(record.line, address.address, address.key, address.domain, fields);
    else sink.reject({ line: record.line, raw: clip(cell), reason: address.reason, message: address.message });
  }
}
