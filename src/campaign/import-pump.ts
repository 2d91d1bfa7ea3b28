import { Worker } from 'node:worker_threads';
import { InputError } from '../errors.js';
import type { RecipientInsert, RejectInsert } from '../store/types.js';
import type { CsvRecord } from './csv-reader.js';
import type { CsvPart } from './csv-split.js';
import { RowPacker, unpackRows, type ImportWorkerInput, type MainMessage, type WorkerMessage } from './import-protocol.js';
import { openPart, takeRecords, type RowSink } from './import-rows.js';

/** Called with each batch, one at a time, and the records read so far. */
export type BatchHandler = (rows: Iterable<RecipientInsert>, rejects: readonly RejectInsert[], records: number) => Promise<void>;

/**
 * A 32 MB young generation (default 16) lets the parser's short-lived
 * strings die in scavenges instead of being promoted: on 1,000,000 rows a
 * worker parsing the whole file went from 13.3 s to about 10 s.
 */
const WORKER_YOUNG_GENERATION_MB = 32;

type PartState = 'waiting' | 'reading' | 'read' | Error;

/**
 * How much of the file is left to hand out when the end counts as in sight:
 * ~200 ms of parsing for the worker, time for the store to do ahead what it
 * would do alone at the end (the last 4 MiB are 512 KiB parts: FINE_TAIL).
 */
const END_IN_SIGHT_BYTES = 4 * 1024 * 1024;

function newWorker(): Worker {
  return new Worker(new URL('./import-worker.js', import.meta.url), {
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
  });
}

/** A worker started ahead of the import (prestartImportWorker), not yet given to a pump. */
let prestarted: Worker | undefined;

/**
 * Starts the import's worker thread now, so that it loads its modules
 * (~100 ms) while this thread opens the database, checks the template and
 * plans the parts, instead of after. Unreferenced until a pump takes it: an
 * import that fails before that exits as if it had never been started.
 */
export function prestartImportWorker(): void {
  if (prestarted !== undefined) return;
  const worker = newWorker();
  worker.unref();
  // A worker that failed to start is dropped; the pump starts a new one and
  // reports what that one meets.
  const drop = (): void => {
    if (prestarted === worker) prestarted = undefined;
  };
  worker.once('error', drop);
  worker.once('exit', drop);
  prestarted = worker;
}

/**
 * Reads the parts of a CSV file on two threads and inserts every row from
 * the main thread, which owns the database.
 *
 * The worker parses a part, packs its rows and asks for the next. The main
 * thread inserts what the worker sends and, whenever nothing is waiting,
 * parses a slice (~1,000 records) of a part of its own. Parts are handed out
 * in file order to whichever thread asks, so the two cores stay busy
 * whatever their relative speed: on 1,000,000 rows a lone parsing worker
 * kept the main thread idle a third of the time, and a second parsing worker
 * (a third thread) cost ~50 MB of RSS for its heap.
 *
 * An error is reported as a single reader would have met it, the earliest
 * in the file: after a part fails, the parts before it are still read (one
 * of them may fail first), nothing more is inserted, and no later part starts.
 */
export class PartPump {
  private readonly state: PartState[];
  private nextPart = 0;
  private started = false;
  private endInSight: 'ahead' | 'due' | 'done' = 'ahead';
  private ownRecords = 0;
  private workerRecords = 0;
  private readonly inbox: WorkerMessage[] = [];
  private wake: (() => void) | undefined;
  private worker: Worker | undefined;
  /** The parts given to the worker, the one it is reading first. */
  private workerParts: number[] = [];
  private workerFinished = true;
  private own: { index: number; batches: AsyncIterator<readonly CsvRecord[]> } | undefined;
  /**
   * The main thread's own rows are packed like the worker's rather than kept
   * as objects: 10,000 row objects survived the scavenges until their batch
   * was inserted, and were promoted (~10 MB more old generation at the peak).
   */
  private readonly packer: RowPacker;
  private rejects: RejectInsert[] = [];
  private batched = 0;
  private readonly sink: RowSink;

  constructor(
    private readonly input: ImportWorkerInput,
    private readonly parts: readonly CsvPart[],
    private readonly onBatch: BatchHandler,
    /** The main thread parses parts too (Store.insertsInProcess); otherwise only the worker does, when there is one. */
    private readonly mainParses: boolean,
    /**
     * Called once, between batches, when no more than END_IN_SIGHT_BYTES of
     * a file read in parts is left to hand out: the worker is still parsing,
     * so work done here is not left to be done alone at the end
     * (Store.importEndInSight).
     */
    private readonly onEndInSight: () => Promise<void> = () => Promise.resolve(),
  ) {
    this.state = parts.map(() => 'waiting');
    const emailIndex = input.emailIndex;
    const packer = new RowPacker(input.batchSize * 160);
    this.packer = packer;
    this.sink = {
      row: (line, address, fields) => packer.add(line, address, fields, emailIndex),
      reject: (r) => this.rejects.push(r),
    };
  }

  /**
   * Sets the worker reading (a file in parts), before run(): its batches wait
   * in the inbox, MAX_IN_FLIGHT at most, until run() inserts them.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.parts.length > 1) this.startWorker();
  }

  /** Stops a pump that was started but will not run (the import failed before reading). */
  stop(): void {
    this.stopWorker();
  }

  /** Reads every part; resolves with the number of records read. */
  async run(): Promise<number> {
    this.start();
    try {
      for (;;) {
        // With no batch waiting, so that the worker has every slot free
        // (MAX_IN_FLIGHT) to fill while the store is busy: ~100 ms of work.
        if (this.endInSight === 'due' && this.inbox.length === 0) {
          this.endInSight = 'done';
          if (this.firstError === undefined) await this.onEndInSight();
          continue;
        }
        const message = this.inbox.shift();
        if (message !== undefined) {
          await this.handle(message);
          continue;
        }
        const failure = this.settledFailure();
        if (failure !== undefined) throw failure;
        if (this.own !== undefined) {
          await this.readOwnSlice(this.own);
          continue;
        }
        const index = this.mainParses || this.worker === undefined ? this.take() : undefined;
        if (index !== undefined) {
          await this.openOwn(index);
          continue;
        }
        if (!this.workerFinished) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        break;
      }
      await this.flushOwn();
      return this.ownRecords + this.workerRecords;
    } finally {
      await this.own?.batches.return?.();
      void this.worker?.terminate();
    }
  }

  private get records(): number {
    return this.ownRecords + this.workerRecords;
  }

  private get firstError(): number | undefined {
    const i = this.state.findIndex((s) => s instanceof Error);
    return i < 0 ? undefined : i;
  }

  /** The error to report, once every part before it has been read. */
  private settledFailure(): Error | undefined {
    const first = this.firstError;
    if (first === undefined) return undefined;
    for (let i = 0; i < first; i++) if (this.state[i] !== 'read') return undefined;
    const failure = this.state[first];
    return failure instanceof Error ? failure : undefined;
  }

  /** The next part to read, if there is one and no earlier part failed. */
  private take(): number | undefined {
    const first = this.firstError;
    if (this.nextPart >= this.parts.length || (first !== undefined && this.nextPart > first)) return undefined;
    this.state[this.nextPart] = 'reading';
    const left = (this.parts.at(-1)?.end ?? 0) - (this.parts[this.nextPart]?.end ?? 0);
    if (this.endInSight === 'ahead' && this.parts.length > 1 && left <= END_IN_SIGHT_BYTES) this.endInSight = 'due';
    return this.nextPart++;
  }

  private fail(index: number, err: unknown): void {
    this.state[index] = err instanceof Error ? err : new Error(String(err));
    // Later parts cannot change the outcome: stop reading them.
    if ((this.workerParts[0] ?? -1) > index) this.stopWorker();
    const own = this.own;
    if (own !== undefined && own.index > index) {
      this.own = undefined;
      void own.batches.return?.();
    }
  }

  private startWorker(): void {
    const worker = prestarted ?? newWorker();
    prestarted = undefined;
    worker.ref();
    this.worker = worker;
    this.workerFinished = false;
    const deliver = (m: WorkerMessage): void => {
      this.inbox.push(m);
      this.wake?.();
      this.wake = undefined;
    };
    worker.on('message', deliver);
    worker.on('error', (err) => deliver({ type: 'error', input: false, message: err.stack ?? err.message, hint: undefined }));
    // Queued behind the messages before it: an exit right after `done` is not an error.
    worker.on('exit', (code) => deliver({ type: 'error', input: false, message: `exited early (code ${code})`, hint: undefined }));
    this.post({ type: 'start', input: this.input });
    this.giveWorkerPart();
    this.giveWorkerPart();
  }

  private giveWorkerPart(): void {
    const index = this.take();
    const part = index === undefined ? undefined : this.parts[index];
    if (index === undefined || part === undefined) {
      this.post({ type: 'end' });
      return;
    }
    this.workerParts.push(index);
    this.post({ type: 'part', part });
  }

  private stopWorker(): void {
    this.workerFinished = true;
    this.workerParts = [];
    void this.worker?.terminate();
    this.worker = undefined;
  }

  private post(m: MainMessage, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(m, transfer);
  }

  private async handle(m: WorkerMessage): Promise<void> {
    if (this.workerFinished) return; // a stopped worker's last words
    switch (m.type) {
      case 'batch':
        this.workerRecords = m.records;
        // After a failure nothing more is inserted: the run is removed anyway.
        if (this.firstError === undefined) await this.onBatch(unpackRows(m.rows, m.bytes), m.rejects, this.records);
        this.post({ type: 'ack', rows: m.rows }, [m.rows]);
        return;
      case 'part-read': {
        this.workerRecords = m.records;
        const index = this.workerParts.shift();
        if (index !== undefined) this.state[index] = 'read';
        this.giveWorkerPart();
        return;
      }
      case 'done':
        this.workerRecords = m.records;
        this.stopWorker();
        return;
      case 'error': {
        const err = m.input ? new InputError(m.message, m.hint) : new Error(`import worker failed: ${m.message}`);
        const index = this.workerParts[0];
        this.stopWorker();
        // Not inside a part (a batch after the last one): nothing to wait for.
        if (index === undefined) throw err;
        this.fail(index, err);
        return;
      }
    }
  }

  private async openOwn(index: number): Promise<void> {
    try {
      // One part is the whole file: read it to the end, as it is now.
      const csv = await openPart(this.input, this.parts.length > 1 ? this.parts[index] : undefined);
      this.own = { index, batches: csv.batches()[Symbol.asyncIterator]() };
    } catch (err) {
      this.fail(index, err);
    }
  }

  private async readOwnSlice(own: { index: number; batches: AsyncIterator<readonly CsvRecord[]> }): Promise<void> {
    let next: IteratorResult<readonly CsvRecord[]>;
    try {
      next = await own.batches.next();
    } catch (err) {
      this.own = undefined;
      this.fail(own.index, err);
      return;
    }
    if (next.done === true) {
      this.own = undefined;
      this.state[own.index] = 'read';
      return;
    }
    this.ownRecords += next.value.length;
    this.batched += next.value.length;
    takeRecords(next.value, this.input.emailIndex, this.sink);
    if (this.batched >= this.input.batchSize) await this.flushOwn();
  }

  private async flushOwn(): Promise<void> {
    if (this.packer.empty && this.rejects.length === 0) return;
    const { rows, bytes } = this.packer.take();
    const rejects = this.rejects;
    this.rejects = [];
    this.batched = 0;
    if (this.firstError === undefined) await this.onBatch(unpackRows(rows, bytes), rejects, this.records);
    this.packer.recycle(rows);
  }
}
