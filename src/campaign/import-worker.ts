import { parentPort, workerData } from 'node:worker_threads';
import { InputError, isMailqError } from '../errors.js';
import type { RejectInsert } from '../store/types.js';
import type { CsvPart } from './csv-split.js';
import { RowPacker, type ImportWorkerInput, type MainMessage, type WorkerMessage } from './import-protocol.js';
import { openPart, takeRecords } from './import-rows.js';

/**
 * Batches posted but not yet inserted (1.6 MB each). Three: the main thread
 * parses slices and inserts batches of its own between the worker's, and
 * with two the worker sat waiting for acks ~20% of the time.
 */
const MAX_IN_FLIGHT = 3;

async function run(input: ImportWorkerInput): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('import worker started outside a worker thread');
  const post = (m: WorkerMessage): void => port.postMessage(m);

  // ~150 bytes a row in the bench's 5-column file; the packer grows if rows are wider.
  const packer = new RowPacker(input.batchSize * 160);
  let inFlight = 0;
  let acked: (() => void) | undefined;
  const orders: (CsvPart | undefined)[] = [];
  let ordered: (() => void) | undefined;
  port.on('message', (m: MainMessage) => {
    if (m.type === 'ack') {
      packer.recycle(m.rows);
      inFlight--;
      acked?.();
      acked = undefined;
    } else {
      orders.push(m.type === 'part' ? m.part : undefined);
      ordered?.();
      ordered = undefined;
    }
  });
  const nextPart = async (): Promise<CsvPart | undefined> => {
    while (orders.length === 0) await new Promise<void>((resolve) => (ordered = resolve));
    return orders.shift();
  };

  let records = 0;
  let rejects: RejectInsert[] = [];
  let batched = 0;
  const flush = async (): Promise<void> => {
    if (packer.empty && rejects.length === 0) return;
    while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => (acked = resolve));
    inFlight++;
    const { rows, bytes } = packer.take();
    port.postMessage({ type: 'batch', rows, bytes, rejects, records } satisfies WorkerMessage, [rows]);
    rejects = [];
    batched = 0;
  };
  const sink = {
    row(line: number, address: string, fields: (string | null)[]): void {
      packer.add(line, address, fields, input.emailIndex);
    },
    reject(r: RejectInsert): void {
      rejects.push(r);
    },
  };

  for (let part = await nextPart(); part !== undefined; part = await nextPart()) {
    const csv = await openPart(input, part);
    for await (const batch of csv.batches()) {
      records += batch.length;
      batched += batch.length;
      takeRecords(batch, input.emailIndex, sink);
      if (batched >= input.batchSize) await flush();
    }
    post({ type: 'part-read', records });
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
