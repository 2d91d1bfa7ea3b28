import type Database from 'better-sqlite3';
import type { BucketLimit, RunHealth, RunStats, TokenGrant } from '../types.js';

/**
 * SQL for several `mailq send` processes on one SQLite file: the shared token
 * buckets that make a per-domain limit hold over all of them together, and
 * the run figures behind `mailq status` and the dashboard's hosts panel.
 * The bucket arithmetic is the pure `refillAndTake` below; PostgreSQL does
 * the same in one UPDATE (postgres/coordination.ts), and the tests hold both
 * to the same figures.
 */

export interface BucketState {
  readonly tokens: number;
  /** Epoch ms of the last refill. */
  readonly refilledAt: number;
}

/** Float slack: 0.1 + 0.2 tokens must count as the 0.3 they are, and 0.9999999 as 1. */
const EPS = 1e-9;

/** The capacity actually used: a bucket always holds at least one token, or a rate under 1/s could never send. */
export function capacityOf(limit: BucketLimit): number {
  return Math.max(1, limit.burst);
}

function checkLimit(limit: BucketLimit): void {
  if (!(limit.perSecond > 0) || !Number.isFinite(limit.perSecond) || !(limit.burst > 0) || !Number.isFinite(limit.burst)) {
    throw new Error(`token bucket: invalid limit ${limit.perSecond}/s, burst ${limit.burst}`);
  }
}

/** Refill from the time elapsed at the limit's rate; a clock stepping back refills nothing and keeps the mark. */
export function refill(prev: BucketState | undefined, limit: BucketLimit, now: number): BucketState {
  const cap = capacityOf(limit);
  if (prev === undefined) return { tokens: cap, refilledAt: now };
  const elapsed = Math.max(0, now - prev.refilledAt);
  return { tokens: Math.min(cap, prev.tokens + (elapsed * limit.perSecond) / 1000), refilledAt: Math.max(prev.refilledAt, now) };
}

/** Refills, then takes min(want, whole tokens available). A new bucket starts full (one burst). */
export function refillAndTake(prev: BucketState | undefined, want: number, limit: BucketLimit, now: number): { next: BucketState; grant: TokenGrant } {
  checkLimit(limit);
  const w = Math.max(0, Math.floor(want));
  const filled = refill(prev, limit, now);
  const granted = Math.min(w, Math.max(0, Math.floor(filled.tokens + EPS)));
  const tokens = filled.tokens - granted;
  const waitMs = granted < w ? Math.max(1, Math.ceil(((1 - tokens) * 1000) / limit.perSecond - EPS)) : 0;
  return { next: { tokens, refilledAt: filled.refilledAt }, grant: { granted, waitMs } };
}

/** Adds returned tokens after a refill, never above the capacity. */
export function refillAndReturn(prev: BucketState | undefined, count: number, limit: BucketLimit, now: number): BucketState {
  checkLimit(limit);
  const filled = refill(prev, limit, now);
  return { tokens: Math.min(capacityOf(limit), filled.tokens + Math.max(0, count)), refilledAt: filled.refilledAt };
}

interface RunHealthRecord {
  owner: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  finished_at: number | null;
  outcome: string | null;
  sent: number;
  sent_last_minute: number;
}

export function prepareCoordination(db: Database.Database) {
  return {
    bucket: db.prepare<[number, string], { tokens: number; refilled_at: number }>(
      `SELECT tokens, refilled_at FROM domain_buckets WHERE campaign_id = ? AND key = ?`,
    ),
    saveBucket: db.prepare<[number, string, number, number]>(
      `INSERT INTO domain_buckets (campaign_id, key, tokens, refilled_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (campaign_id, key) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at`,
    ),
    reportRun: db.prepare<[number, number, number, string]>(
      `UPDATE runs SET heartbeat_at = ?, sent = ?, sent_last_minute = ? WHERE owner = ?`,
    ),
    runHealth: db.prepare<[number, number], RunHealthRecord>(
      `SELECT owner, host, pid, started_at, heartbeat_at, finished_at, outcome, sent, sent_last_minute
       FROM runs WHERE campaign_id = ? AND (finished_at IS NULL OR finished_at >= ?) ORDER BY id`,
    ),
  };
}

export type CoordinationStatements = ReturnType<typeof prepareCoordination>;

/**
 * Runs a write whose loss on power failure is harmless (a bucket level, a
 * heartbeat) at synchronous=NORMAL: in WAL mode its commit then skips the
 * fsync (~0.5 ms here), and the next FULL commit (a message outcome) syncs
 * the WAL up to and including it anyway. The store's own writes stay FULL.
 */
function unsynced<T>(db: Database.Database, fn: () => T): T {
  const before = db.pragma('synchronous', { simple: true }) as number;
  if (before <= 1) return fn();
  db.pragma('synchronous = NORMAL');
  try {
    return fn();
  } finally {
    db.pragma(`synchronous = ${before}`);
  }
}

function readBucket(s: CoordinationStatements, campaignId: number, key: string): BucketState | undefined {
  const row = s.bucket.get(campaignId, key);
  return row === undefined ? undefined : { tokens: row.tokens, refilledAt: row.refilled_at };
}

// IMMEDIATE: the read and the write must hold the write lock together, or two
// processes could both read 5 tokens and both take them.
export function takeTokens(db: Database.Database, s: CoordinationStatements, campaignId: number, key: string, want: number, limit: BucketLimit, now: number): TokenGrant {
  return unsynced(db, () =>
    db.transaction((): TokenGrant => {
      const { next, grant } = refillAndTake(readBucket(s, campaignId, key), want, limit, now);
      s.saveBucket.run(campaignId, key, next.tokens, next.refilledAt);
      return grant;
    }).immediate(),
  );
}

export function returnTokens(db: Database.Database, s: CoordinationStatements, campaignId: number, key: string, count: number, limit: BucketLimit, now: number): void {
  if (count <= 0) return;
  unsynced(db, () =>
    db.transaction(() => {
      const next = refillAndReturn(readBucket(s, campaignId, key), count, limit, now);
      s.saveBucket.run(campaignId, key, next.tokens, next.refilledAt);
    }).immediate(),
  );
}

export function reportRun(db: Database.Database, s: CoordinationStatements, owner: string, stats: RunStats, now: number): void {
  unsynced(db, () => void s.reportRun.run(now, stats.sent, stats.sentLastMinute, owner));
}

export function runHealth(s: CoordinationStatements, campaignId: number, now: number, finishedWithinMs: number): RunHealth[] {
  return s.runHealth.all(campaignId, now - finishedWithinMs).map((r) => ({
    owner: r.owner,
    host: r.host,
    pid: r.pid,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    heartbeatAgeMs: Math.max(0, now - r.heartbeat_at),
    finishedAt: r.finished_at ?? undefined,
    outcome: r.outcome ?? undefined,
    sent: r.sent,
    sentLastMinute: r.sent_last_minute,
  }));
}
