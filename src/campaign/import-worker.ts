import { parentPort } from 'node:worker_threads';
import { InputError, isMailqError } from '../errors.js';
import type { RejectInsert } from '../store/types.js';
import type { CsvPart } from './csv-split.js';
import { RowPacker, type ImportWorkerInput, type MainMessage, type WorkerMessage } from './import-protocol.js';
import { openPart, takeRecords } from './import-rows.js';

/**
 * Batches posted but not yet inserted (1.6 MB each). The main thread parses
 * slices and inserts batches of its own between the worker's (with two the
 * worker sat waiting for acks ~20% of the time), and a checkpoint holds it
 * for ~100 ms (16,384 pages): with three, the worker still waited 60-80 ms
 * at each. Four are ~140 ms of its parsing. Five cut its waits further, but
 * one run in nine peaked at 200.6 MB of RSS (184-194 otherwise); with four,
 * 182-191 MB in six runs.
 */
const MAX_IN_FLIGHT = 4;
/**
 * Once no part is left to hand out, batches are a quarter of the size: the
 * main thread inserts what is in flight after this thread has finished,
 * alone, and three full batches in flight were ~75 ms of it.
 */
const ENDING_BATCH_DIVISOR = 4;

async function run(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('import worker started outside a worker thread');
  const post = (m: WorkerMessage): void => port.postMessage(m);
  let inFlight = 0;
  let acked: (() => void) | undefined;
  const orders: (CsvPart | undefined)[] = [];
  let ordered: (() => void) | undefined;
  let ending = false;
  const returned: ArrayBuffer[] = [];
  // Started before the import knows its file (prestartImportWorker): the
  // input is the first message. One listener for all of them, so that none
  // can arrive between two.
  let started: ((input: ImportWorkerInput) => void) | undefined;
  const starting = new Promise<ImportWorkerInput>((resolve) => (started = resolve));
  port.on('message', (m: MainMessage) => {
    switch (m.type) {
      case 'start':
        started?.(m.input);
        return;
      case 'ack':
        returned.push(m.rows);
        inFlight--;
        acked?.();
        acked = undefined;
        return;
      case 'part':
      case 'end':
        if (m.type === 'end') ending = true;
        orders.push(m.type === 'part' ? m.part : undefined);
        ordered?.();
        ordered = undefined;
        return;
    }
  });
  const input = await starting;

  // ~150 bytes a row in the bench's 5-column file; the packer grows if rows are wider.
  const packer = new RowPacker(input.batchSize * 160);
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
    for (const rows of returned.splice(0)) packer.recycle(rows);
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
      if (batched >= (ending ? input.batchSize / ENDING_BATCH_DIVISOR : input.batchSize)) await flush();
    }
    post({ type: 'part-read', records });
  }
  await flush();
  post({ type: 'done', records });
}

run().catch((err: unknown) => {
  const message: WorkerMessage = isMailqError(err)
    ? { type: 'error', input: err instanceof InputError, message: err.message, hint: err.hint }
    : { type: 'error', input: false, message: err instanceof Error ? (err.stack ?? err.message) : String(err), hint: undefined };
  parentPort?.postMessage(message);
});
