/**
 * Outcome counts over a sliding time window, kept as one bucket per second so
 * memory stays flat whatever the send rate (a 10-minute window is at most
 * 600 buckets, where keeping every outcome at 100/s would be 60,000 entries).
 */

export interface OutcomeCounts {
  readonly sent: number;
  readonly failed: number;
  readonly deferred: number;
  /** Outcomes of category bad-recipient (always failed). */
  readonly bounced: number;
  /** Outcomes of category connection (deferred, or failed once expired). */
  readonly connection: number;
}

export type OutcomeKind = 'sent' | 'failed' | 'deferred';

interface Bucket {
  second: number;
  sent: number;
  failed: number;
  deferred: number;
  bounced: number;
  connection: number;
}

const BUCKET_MS = 1000;

export function total(c: OutcomeCounts): number {
  return c.sent + c.failed + c.deferred;
}

export class OutcomeWindow {
  private readonly buckets: Bucket[] = [];

  /** @param keepMs the longest window any caller asks about; older buckets are dropped. */
  constructor(private readonly keepMs: number) {}

  add(at: number, kind: OutcomeKind, flags: { bounced: boolean; connection: boolean }): void {
    const second = Math.floor(at / BUCKET_MS);
    // Outcomes arrive nearly in order (concurrent workers), so this scan stops within a bucket or two.
    let i = this.buckets.length - 1;
    while (i >= 0 && (this.buckets[i]?.second ?? Number.NEGATIVE_INFINITY) > second) i--;
    let bucket = this.buckets[i];
    if (bucket === undefined || bucket.second !== second) {
      bucket = { second, sent: 0, failed: 0, deferred: 0, bounced: 0, connection: 0 };
      this.buckets.splice(i + 1, 0, bucket);
    }
    bucket[kind]++;
    if (flags.bounced) bucket.bounced++;
    if (flags.connection) bucket.connection++;
    this.prune(at);
  }

  /** Outcomes at or after `since` (ms), up to now. */
  countSince(since: number): OutcomeCounts {
    const from = Math.floor(since / BUCKET_MS);
    const c = { sent: 0, failed: 0, deferred: 0, bounced: 0, connection: 0 };
    for (let i = this.buckets.length - 1; i >= 0; i--) {
      const b = this.buckets[i];
      if (b === undefined || b.second < from) break;
      c.sent += b.sent;
      c.failed += b.failed;
      c.deferred += b.deferred;
      c.bounced += b.bounced;
      c.connection += b.connection;
    }
    return c;
  }

  prune(now: number): void {
    const oldest = Math.floor((now - this.keepMs) / BUCKET_MS) - 1;
    let drop = 0;
    while (drop < this.buckets.length && (this.buckets[drop]?.second ?? 0) < oldest) drop++;
    if (drop > 0) this.buckets.splice(0, drop);
  }
}
