import type { QueryResult, QueryResultRow } from 'pg';
import type { BucketLimit, RunHealth, RunStats, TokenGrant } from '../types.js';

/**
 * PostgreSQL side of the coordination methods of SendStore (see
 * src/store/types.ts): standalone functions over a pg Pool or PoolClient, to
 * which the PostgreSQL store delegates takeTokens, returnTokens, reportRun
 * and runHealth. The schema they need is PG_COORDINATION_MIGRATION, to be
 * appended to the PostgreSQL migrations as one numbered migration.
 *
 * Clock: hosts' clocks differ, so bucket refills and heartbeats use the
 * database's clock (clock_timestamp() in epoch ms), not the caller's `now`.
 * With every host's heartbeats written on one clock, a heartbeat's age is
 * exact whatever the hosts' own clocks say.
 *
 * Every value read back is cast to float8 or int4 in SQL, so the results are
 * JS numbers whatever int8 parser the pool was given.
 */

/** What both pg's Pool and PoolClient offer. */
export interface PgQueryable {
  query<R extends QueryResultRow = QueryResultRow>(config: { name?: string; text: string; values?: unknown[] }): Promise<QueryResult<R>>;
}

/** Append to src/store/postgres/migrations.ts as the next migration (same tables as SQLite migration 3, plus last_grant). */
export const PG_COORDINATION_MIGRATION = `
  -- One token bucket per (campaign, throttle key), shared by every process
  -- sending the campaign: refilled and taken in one UPDATE (coordination.ts).
  -- refilled_at is epoch ms on the database's clock. last_grant carries the
  -- tokens the last UPDATE took back through RETURNING. fillfactor 50 leaves
  -- room in each page for HOT updates: a hot bucket is updated up to ~20
  -- times a second per process, and no updated column is indexed.
  CREATE TABLE domain_buckets (
    campaign_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    refilled_at BIGINT NOT NULL,
    last_grant INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, key)
  ) WITH (fillfactor = 50);

  -- What each run reports with its heartbeat, for mailq status and the dashboard.
  ALTER TABLE runs ADD COLUMN sent BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN sent_last_minute INTEGER NOT NULL DEFAULT 0;
`;

/** The database's clock in epoch milliseconds. */
const DB_NOW = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** Tokens available after the refill, from the row being updated (b) and the clock (t.now); $4 rate/s, $5 capacity. */
const AVAILABLE = `least($5::float8, b.tokens + greatest(0, t.now - b.refilled_at) * $4::float8 / 1000)`;

/**
 * One statement, atomic under READ COMMITTED: a concurrent UPDATE of the
 * same bucket makes this one wait for the row lock and then re-evaluate
 * every SET expression on the row version that committed, so two processes
 * can never take the same tokens. A clock seen stepping back refills nothing
 * and does not move refilled_at back (greatest).
 */
const TAKE = {
  name: 'mailq_coord_take_tokens',
  text: `WITH t AS (SELECT ${DB_NOW} AS now)
    UPDATE domain_buckets b SET
      last_grant = least($3::int, floor(${AVAILABLE} + 1e-9)::int),
      tokens = ${AVAILABLE} - least($3::int, floor(${AVAILABLE} + 1e-9)::int),
      refilled_at = greatest(b.refilled_at, t.now)
    FROM t
    WHERE b.campaign_id = $1 AND b.key = $2
    RETURNING b.last_grant::int4 AS granted, b.tokens::float8 AS tokens`,
};

/** A bucket seen for the first time starts full; a concurrent creator wins and ours does nothing. */
const CREATE = {
  name: 'mailq_coord_create_bucket',
  text: `INSERT INTO domain_buckets (campaign_id, key, tokens, refilled_at) VALUES ($1, $2, $3::float8, ${DB_NOW})
    ON CONFLICT (campaign_id, key) DO NOTHING`,
};

const RETURN = {
  name: 'mailq_coord_return_tokens',
  text: `WITH t AS (SELECT ${DB_NOW} AS now)
    UPDATE domain_buckets b SET
      tokens = least($5::float8, ${AVAILABLE} + $3::float8),
      refilled_at = greatest(b.refilled_at, t.now)
    FROM t
    WHERE b.campaign_id = $1 AND b.key = $2`,
};

const REPORT = {
  name: 'mailq_coord_report_run',
  text: `UPDATE runs SET heartbeat_at = ${DB_NOW}, sent = $2, sent_last_minute = $3 WHERE owner = $1`,
};

const HEALTH = {
  name: 'mailq_coord_run_health',
  text: `SELECT owner, host, pid::int4 AS pid, started_at::float8 AS started_at, heartbeat_at::float8 AS heartbeat_at,
      greatest(0, ${DB_NOW} - heartbeat_at)::float8 AS age, finished_at::float8 AS finished_at, outcome,
      sent::float8 AS sent, sent_last_minute::int4 AS sent_last_minute
    FROM runs WHERE campaign_id = $1 AND (finished_at IS NULL OR finished_at >= $2) ORDER BY id`,
};

function checkLimit(limit: BucketLimit): void {
  if (!(limit.perSecond > 0) || !Number.isFinite(limit.perSecond) || !(limit.burst > 0) || !Number.isFinite(limit.burst)) {
    throw new Error(`token bucket: invalid limit ${limit.perSecond}/s, burst ${limit.burst}`);
  }
}

/** A bucket always holds at least one token, as on SQLite (sqlite/coordination.ts capacityOf). */
const capacity = (limit: BucketLimit): number => Math.max(1, limit.burst);

/** takeTokens of SendStore: one round trip once the bucket exists (two more the first time). */
export async function pgTakeTokens(db: PgQueryable, campaignId: number, key: string, want: number, limit: BucketLimit): Promise<TokenGrant> {
  checkLimit(limit);
  const w = Math.max(0, Math.floor(want));
  const values = [campaignId, key, w, limit.perSecond, capacity(limit)];
  let r = await db.query<{ granted: number; tokens: number }>({ ...TAKE, values });
  if (r.rows.length === 0) {
    await db.query({ ...CREATE, values: [campaignId, key, capacity(limit)] });
    r = await db.query<{ granted: number; tokens: number }>({ ...TAKE, values });
  }
  const row = r.rows[0];
  if (row === undefined) throw new Error(`token bucket ${key}: the row vanished while being created`);
  // 1e-9: 2.4 - 2 tokens is 0.3999999999999999, which must not round a 30 ms wait up to 31.
  const waitMs = row.granted < w ? Math.max(1, Math.ceil(((1 - row.tokens) * 1000) / limit.perSecond - 1e-9)) : 0;
  return { granted: row.granted, waitMs };
}

/** returnTokens of SendStore. A bucket that does not exist has nothing to get back. */
export async function pgReturnTokens(db: PgQueryable, campaignId: number, key: string, count: number, limit: BucketLimit): Promise<void> {
  checkLimit(limit);
  if (count <= 0) return;
  await db.query({ ...RETURN, values: [campaignId, key, count, limit.perSecond, capacity(limit)] });
}

/** reportRun of SendStore: the heartbeat on the database's clock, with the run's figures. */
export async function pgReportRun(db: PgQueryable, owner: string, stats: RunStats): Promise<void> {
  await db.query({ ...REPORT, values: [owner, stats.sent, stats.sentLastMinute] });
}

interface HealthRecord {
  owner: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  age: number;
  finished_at: number | null;
  outcome: string | null;
  sent: number;
  sent_last_minute: number;
}

/** runHealth of SendStore; heartbeat ages on the database's clock, the finished cutoff on the caller's (`now`). */
export async function pgRunHealth(db: PgQueryable, campaignId: number, now: number, finishedWithinMs: number): Promise<RunHealth[]> {
  const r = await db.query<HealthRecord>({ ...HEALTH, values: [campaignId, Math.floor(now - finishedWithinMs)] });
  return r.rows.map((x) => ({
    owner: x.owner,
    host: x.host,
    pid: x.pid,
    startedAt: x.started_at,
    heartbeatAt: x.heartbeat_at,
    heartbeatAgeMs: x.age,
    finishedAt: x.finished_at ?? undefined,
    outcome: x.outcome ?? undefined,
    sent: x.sent,
    sentLastMinute: x.sent_last_minute,
  }));
}
