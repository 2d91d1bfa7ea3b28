import { parentPort, workerData } from 'node:worker_threads';
import { InputError, isMailqError } from '../errors.js';
import type { RejectInsert } from '../store/types.js';
import { normalizeAddress } from './address.js';
import { openCsv } from './csv-reader.js';
import { RowPacker, type ImportWorkerInput, type MainMessage, type WorkerMessage } from './import-protocol.js';

/** A rejected cell or ragged line is kept verbatim up to this many characters. */
const MAX_RAW_CHARS = 1000;
/**
 * Batches posted but not yet inserted. Two keeps both threads busy (one batch
 * being inserted, one ready) while bounding memory to a few batches.
 */
const MAX_IN_FLIGHT = 2;

function clip(raw: string): string {
  return raw.length > MAX_RAW_CHARS ? raw.slice(0, MAX_RAW_CHARS) : raw;
}

async function run(input: ImportWorkerInput): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('import worker started outside a worker thread');
  const post = (m: WorkerMessage): void => port.postMessage(m);

  let inFlight = 0;
  let wake: (() => void) | undefined;
  port.on('message', (m: MainMessage) => {
    if (m.type === 'ack') {
      inFlight--;
      wake?.();
      wake = undefined;
    }
  });

  const csv = await openCsv(input.path, {
    delimiter: input.delimiter,
    encoding: input.encoding,
    ...(input.maxFieldBytes === undefined ? {} : { maxFieldBytes: input.maxFieldBytes }),
  });
  const { columns, emailIndex } = input;
  if (csv.columns.length !== columns.length) throw new Error('CSV header changed while importing');

  let records = 0;
  // ~150 bytes a row in the bench's 5-column file; the packer grows if rows are wider.
  const packer = new RowPacker(input.batchSize * 160);
  let rejects: RejectInsert[] = [];
  let batched = 0;
  const flush = async (): Promise<void> => {
    if (batched === 0) return;
    while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => (wake = resolve));
    inFlight++;
    const { rows, bytes } = packer.take();
    port.postMessage({ type: 'batch', rows, bytes, rejects, records } satisfies WorkerMessage, [rows]);
    rejects = [];
    batched = 0;
  };

  for await (const batch of csv.batches()) {
    for (const record of batch) {
      records++;
      batched++;
      if (record.kind === 'ragged') {
        rejects.push({
          line: record.line,
          raw: clip(record.raw),
          reason: 'ragged-row',
          message: `${record.got} fields where the header has ${record.expected}`,
        });
      } else {
        const fields = record.fields;
        const cell = fields[emailIndex] ?? '';
        const address = normalizeAddress(cell);
        if (address.ok) {
          packer.add(record.line, address.address, address.key, address.domain, fields, emailIndex);
        } else {
          rejects.push({ line: record.line, raw: clip(cell), reason: address.reason, message: address.message });
        }
      }
      if (batched >= input.batchSize) await flush();
    }
  }
  await flush();
  post({ type: 'done', records });
}

run(workerData as ImportWorkerInput).catch((err: unknown) => {
  const message: WorkerMessage = isMailqError(err)
    ? { type: 'error', input: err instanceof InputError, message: err.message, hint: err.hint }
    : { type: 'error', input: false, message: err instanceof Error ? (err.stack ?? err.message) : String(err), hint: undefined };
  parentPort?.postMessage(message);
});
