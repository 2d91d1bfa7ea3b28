import { Worker } from 'node:worker_threads';
import type { Campaign, MessageRow } from '../store/types.js';
import type { ComposedForSend } from './compose.js';
import type { ComposeBatch, ComposeReplies, ComposeReply, ComposeRequest, ComposeWorkerInput } from './compose-protocol.js';

/**
 * Renders and builds messages on worker threads, so the main thread only
 * leases, speaks SMTP and commits: on the bench's 4 KB message, Liquid plus
 * nodemailer's MIME build were ~60% of the send's CPU on one thread; with
 * mailq's own encoder the two take ~85 µs a message (bench/README.md).
 * No queue of its own: the runner asks for a message only when it has leased
 * one and has room in its in-flight window, so the pool never holds more
 * prepared messages than that window (--concurrency).
 * The requests made in one go (the leases of one commit are launched
 * together) are posted as one batch per thread (compose-protocol.ts).
 */
const YOUNG_GENERATION_MB = 8;

export class ComposePool {
  private readonly workers: { worker: Worker; pending: number }[] = [];
  private readonly waiting = new Map<number, { resolve: (r: ComposedForSend) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 1;
  private failure: Error | undefined;
  /** Requests made since the last post, sent together at the end of the current job. */
  private outbox: ComposeRequest[] = [];

  constructor(campaign: Campaign, threads: number) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL('./compose-worker.js', import.meta.url), {
        workerData: { campaign } satisfies ComposeWorkerInput,
        // A message's garbage (~100 KB of strings) dies young; V8's default
        // young generation (up to 48 MB per thread) only added RSS: a
        // 1,000,000-recipient send peaked at 311 MB with two threads.
        resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
      });
      const index = i;
      worker.on('message', (m: ComposeReplies) => {
        for (const reply of m.replies) this.settle(index, reply);
      });
      worker.on('error', (err) => this.fail(index, err));
      worker.on('exit', (code) => this.fail(index, new Error(`compose worker exited (code ${code})`)));
      // Idle threads must not keep a failed send's process alive; work in flight is awaited by the runner anyway.
      worker.unref();
      this.workers.push({ worker, pending: 0 });
    }
  }

  compose(row: MessageRow, dateMs: number): Promise<ComposedForSend> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.workers.length === 0) return Promise.reject(new Error('compose pool has no threads'));
    const id = this.nextId++;
    if (this.outbox.length === 0) queueMicrotask(() => this.post());
    this.outbox.push({ id, row, dateMs });
    return new Promise<ComposedForSend>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: -1 });
    });
  }

  /** Deals the waiting requests to the least busy threads (messages differ in size), one batch per thread. */
  private post(): void {
    const requests = this.outbox;
    this.outbox = [];
    if (this.failure !== undefined) {
      for (const r of requests) this.rejectOne(r.id, this.failure);
      return;
    }
    const batches: ComposeRequest[][] = this.workers.map(() => []);
    for (const req of requests) {
      let best = 0;
      for (let i = 1; i < this.workers.length; i++) {
        if ((this.workers[i]?.pending ?? Infinity) < (this.workers[best]?.pending ?? Infinity)) best = i;
      }
      const slot = this.workers[best];
      const waiter = this.waiting.get(req.id);
      if (slot === undefined || waiter === undefined) continue;
      slot.pending++;
      waiter.worker = best;
      batches[best]?.push(req);
    }
    batches.forEach((batch, i) => {
      if (batch.length > 0) this.workers[i]?.worker.postMessage({ requests: batch } satisfies ComposeBatch);
    });
  }

  private rejectOne(id: number, err: Error): void {
    const waiter = this.waiting.get(id);
    this.waiting.delete(id);
    waiter?.reject(err);
  }

  async close(): Promise<void> {
    this.failure ??= new Error('compose pool closed');
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private settle(worker: number, reply: ComposeReply): void {
    const waiter = this.waiting.get(reply.id);
    if (waiter === undefined) return;
    this.waiting.delete(reply.id);
    const slot = this.workers[worker];
    if (slot !== undefined) slot.pending--;
    if (reply.kind === 'ok') waiter.resolve({ ...reply.result, ok: true, raw: Buffer.from(reply.raw) });
    else if (reply.kind === 'failed') waiter.resolve(reply.result);
    else waiter.reject(new Error(`composing a message failed: ${reply.message}`));
  }

  /** A thread that dies takes its messages with it: fail them (the runner stops the send as fatal). */
  private fail(worker: number, err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    for (const [id, waiter] of this.waiting) {
      if (waiter.worker === worker) {
        this.waiting.delete(id);
        waiter.reject(err);
      }
    }
  }
}
