import type { RejectInsert } from '../store/types.js';
import { normalizeAddress } from './address.js';
import { openCsv, type CsvRecord, type CsvSource } from './csv-reader.js';
import type { CsvPart } from './csv-split.js';
import type { ImportWorkerInput } from './import-protocol.js';

/** A rejected cell or ragged line is kept verbatim up to this many characters. */
const MAX_RAW_CHARS = 1000;

function clip(raw: string): string {
  return raw.length > MAX_RAW_CHARS ? raw.slice(0, MAX_RAW_CHARS) : raw;
}

/** Where a parsed record goes: the worker packs rows, the main thread inserts them. */
export interface RowSink {
  row(line: number, address: string, fields: (string | null)[]): void;
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
    if (address.ok) sink.row(record.line, address.address, fields);
    else sink.reject({ line: record.line, raw: clip(cell), reason: address.reason, message: address.message });
  }
}

/** Opens one part of the import's file (the whole file when `part` is undefined), on either thread. */
export function openPart(input: ImportWorkerInput, part: CsvPart | undefined): Promise<CsvSource> {
  return openCsv(input.path, {
    delimiter: input.delimiter,
    encoding: input.encoding,
    ...(input.maxFieldBytes === undefined ? {} : { maxFieldBytes: input.maxFieldBytes }),
    ...(part === undefined ? {} : { range: part }),
    lfOnly: input.lfOnly,
  });
}
