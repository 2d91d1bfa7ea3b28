import type {
  BucketLimit,
  CampaignStatus,
  DueDomain,
  FailureRow,
  LeasedMessage,
  OutcomeUpdate,
  PersistedDomainState,
  RunHealth,
  RunInfo,
  RunStats,
  SendStore,
  TokenGrant,
} from '../types.js';
import { pgReportRun, pgReturnTokens, pgRunHealth, pgTakeTokens } from './coordination.js';
import { statement, type PgDb } from './db.js';
import { LOCK_CLASS, SEND_INDEX, SEND_INDEX_NAME } from './migrations.js';
import { MESSAGE_COLUMNS, pgText, toMessage, type MessageRecord } from './records.js';

const PAGE_SIZE = 1000;

interface LeaseRecord extends MessageRecord {
  was: string;
  was_duplicate: boolean;
}

interface RunRecord {
  owner: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  finished_at: number | null;
  outcome: string | null;
}

interface FailureRecord {
  message_id: number;
  address: string;
  category: string;
  reason: string;
  code: number | null;
  enhanced: string | null;
  reply: string | null;
  attempts: number;
  at: number;
}

/** The database's clock in epoch ms (as in coordination.ts). */
const DB_NOW = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** A row is due when queued, deferred and its time has come, or sending under an expired lease ($now is the parameter). */
const due = (now: string): string =>
  `((state IN ('queued','deferred') AND next_attempt_at <= ${now}) OR (state = 'sending' AND lease_expires_at < ${now}))`;

const S = {
  setStatus: statement('set_status', `UPDATE campaigns SET status = $1, updated_at = $2 WHERE id = $3`),
  setSettings: statement('set_settings', `UPDATE campaigns SET settings_json = $1, updated_at = $2 WHERE id = $3`),
  settings: statement('settings', `SELECT settings_json FROM campaigns WHERE id = $1`),

  // Heartbeats are on the database's clock, like reportRun's (coordination.ts):
  // hosts' clocks differ, and a heartbeat's age is read against the database's.
  startRun: statement(
    'start_run',
    `INSERT INTO runs (campaign_id, owner, host, pid, started_at, heartbeat_at, settings_json)
     VALUES ($1, $2, $3, $4, $5, ${DB_NOW}, $6)`,
  ),
  heartbeat: statement('heartbeat', `UPDATE runs SET heartbeat_at = ${DB_NOW} WHERE owner = $1`),
  finishRun: statement('finish_run', `UPDATE runs SET finished_at = $1, outcome = $2 WHERE owner = $3 AND finished_at IS NULL`),
  openRuns: statement(
    'open_runs',
    `SELECT owner, host, pid, started_at, heartbeat_at, finished_at, outcome FROM runs
     WHERE campaign_id = $1 AND finished_at IS NULL ORDER BY id`,
  ),
  expireLeases: statement('expire_leases', `UPDATE messages SET lease_expires_at = $1 WHERE lease_owner = $2 AND state = 'sending'`),

  hasSendIndex: statement(
    'has_send_index',
    `SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '${SEND_INDEX_NAME}'`,
  ),
  dueDomains: statement(
    'due_domains',
    `SELECT domain, count(*) AS due FROM messages WHERE campaign_id = $1 AND ${due('$2::bigint')}
     GROUP BY domain ORDER BY due DESC, domain`,
  ),
  // Deferred rows (oldest retry first), then queued rows (import order), then
  // rows under an expired lease: each arm reads messages_due in order and
  // stops at the limit, so the sort is of at most 3 x limit ids.
  dueIds: statement(
    'due_ids',
    `SELECT id FROM (
       (SELECT 0 AS k, next_attempt_at AS t, id FROM messages
        WHERE campaign_id = $1 AND state = 'deferred' AND domain = $2 AND next_attempt_at <= $3
        ORDER BY next_attempt_at, id LIMIT $4)
       UNION ALL
       (SELECT 1, next_attempt_at, id FROM messages
        WHERE campaign_id = $1 AND state = 'queued' AND domain = $2 AND next_attempt_at <= $3
        ORDER BY next_attempt_at, id LIMIT $4)
       UNION ALL
       (SELECT 2, 0, id FROM messages
        WHERE campaign_id = $1 AND state = 'sending' AND domain = $2 AND lease_expires_at < $3
        ORDER BY id LIMIT $4)
     ) d ORDER BY k, t, id LIMIT $4`,
  ),
  // One statement: lock the row if it is still due (SKIP LOCKED: a row another
  // host is leasing right now is simply not ours, no waiting), take it, and
  // return it with what it was before (a `sending` row is a takeover).
  lease: statement(
    'lease',
    `WITH cand AS (
       SELECT id, state AS was, possible_duplicate AS was_duplicate FROM messages
       WHERE id = $1 AND ${due('$4::bigint')}
       FOR UPDATE SKIP LOCKED)
     UPDATE messages m SET state = 'sending', lease_owner = $2, lease_expires_at = $5, attempt_id = $3,
       possible_duplicate = m.possible_duplicate OR cand.was = 'sending', updated_at = $4
     FROM cand, import_runs r
     WHERE m.id = cand.id AND r.id = m.import_run_id
     RETURNING ${MESSAGE_COLUMNS}, cand.was, cand.was_duplicate`,
  ),
  nextDue: statement(
    'next_due',
    `SELECT min(at) AS at FROM (
       SELECT min(next_attempt_at) AS at FROM messages WHERE campaign_id = $1 AND state IN ('deferred','queued')
       UNION ALL
       SELECT min(lease_expires_at) FROM messages WHERE campaign_id = $1 AND state = 'sending') t`,
  ),
  // The whole outcome in one statement (one round trip, atomic): the guarded
  // update, then from its RETURNING the attempts log row, the dead-letter row
  // or its removal, and the suppression. Nothing happens when the guard fails.
  unlease: statement(
    'unlease',
    `UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = $3::bigint
     WHERE id = $1::bigint AND state = 'sending' AND attempt_id = $2::text`,
  ),
  outcome: statement(
    'outcome',
    `WITH upd AS (
       UPDATE messages SET
         state = CASE WHEN $3::text = 'released' THEN (CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END) ELSE $3::text END,
         next_attempt_at = $4::bigint, attempts = attempts + $5::integer,
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $6::bigint,
         sent_at = coalesce($7::bigint, sent_at), message_id = coalesce($8::text, message_id),
         last_category = $9::text, last_code = $10::integer, last_enhanced = $11::text, last_reply = $12::text,
         possible_duplicate = possible_duplicate OR $13::boolean
       WHERE id = $1::bigint AND state = 'sending' AND attempt_id = $2::text
       RETURNING id, campaign_id, address_key, state, attempts
     ), logged AS (
       INSERT INTO attempts (message_id, campaign_id, attempt_id, run_owner, started_at, finished_at, stage, code, enhanced,
         category, rule, reply, body_written, next_state, delay_ms)
       SELECT id, campaign_id, $2::text, $14::text, $15::bigint, $6::bigint, $16::text, $10::integer, $11::text,
         $9::text, $17::text, $12::text, $18::boolean, state, $19::bigint
       FROM upd WHERE $3::text <> 'released'
     ), failed AS (
       INSERT INTO failures (message_id, campaign_id, category, reason, code, enhanced, reply, attempts, at)
       SELECT id, campaign_id, $9::text, $20::text, $10::integer, $11::text, $12::text, attempts, $6::bigint
       FROM upd WHERE state = 'failed'
       ON CONFLICT (message_id) DO UPDATE SET campaign_id = excluded.campaign_id, category = excluded.category,
         reason = excluded.reason, code = excluded.code, enhanced = excluded.enhanced, reply = excluded.reply,
         attempts = excluded.attempts, at = excluded.at
     ), suppressed AS (
       INSERT INTO suppressions (address_key, reason, created_at)
       SELECT address_key, $9::text, $6::bigint FROM upd WHERE state = 'failed' AND $21::boolean
       ON CONFLICT (address_key) DO NOTHING
     ), cleared AS (
       DELETE FROM failures WHERE message_id IN (SELECT id FROM upd WHERE state = 'sent')
     )
     SELECT count(*) AS n FROM upd`,
  ),
  possibleDuplicates: statement(
    'possible_duplicates',
    `SELECT count(*) AS n FROM messages WHERE campaign_id = $1 AND possible_duplicate`,
  ),
  failuresPage: statement(
    'failures_page',
    `SELECT f.message_id, m.address, f.category, f.reason, f.code, f.enhanced, f.reply, f.attempts, f.at
     FROM failures f JOIN messages m ON m.id = f.message_id
     WHERE f.campaign_id = $1 AND f.message_id > $2 ORDER BY f.message_id LIMIT $3`,
  ),
  loadDomainState: statement('load_domain_state', `SELECT key, status_json, rate_factor FROM domain_state WHERE campaign_id = $1 ORDER BY key`),
  saveDomainState: statement(
    'save_domain_state',
    `INSERT INTO domain_state (campaign_id, key, status_json, rate_factor, updated_at)
     SELECT $1, k, s, f, $5 FROM unnest($2::text[], $3::text[], $4::float8[]) AS t(k, s, f)
     ON CONFLICT (campaign_id, key) DO UPDATE SET status_json = excluded.status_json,
       rate_factor = excluded.rate_factor, updated_at = excluded.updated_at`,
  ),
};

/** SQL for sending on PostgreSQL: leasing, outcomes, runs, failures and domain state. */
export class PgSendStore implements SendStore {
  protected readonly db: PgDb;
  protected readonly now: () => number;

  constructor(db: PgDb, now: () => number) {
    this.db = db;
    this.now = now;
  }

  async prepareForSending(): Promise<void> {
    if ((await this.db.count(S.hasSendIndex)) > 0) return;
    // Under the migration lock, so two hosts' first sends build it once. The
    // build blocks writes to messages for its duration (~1 s per 1,000,000
    // rows, once); ANALYZE gives the planner the figures of the fresh import.
    await this.db.tx(async (_q, client) => {
      await client.query(`SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, [LOCK_CLASS]);
      await client.query(SEND_INDEX);
      await client.query('ANALYZE messages');
    });
  }

  async setCampaignStatus(campaignId: number, status: CampaignStatus): Promise<void> {
    await this.db.count(S.setStatus, [status, this.now(), campaignId]);
  }

  async setCampaignSettings(campaignId: number, settingsJson: string): Promise<void> {
    await this.db.count(S.setSettings, [settingsJson, this.now(), campaignId]);
  }

  async campaignSettings(campaignId: number): Promise<string> {
    return (await this.db.one<{ settings_json: string }>(S.settings, [campaignId]))?.settings_json ?? '{}';
  }

  async startRun(campaignId: number, run: { owner: string; host: string; pid: number; settingsJson: string }): Promise<void> {
    await this.db.count(S.startRun, [campaignId, run.owner, run.host, run.pid, this.now(), run.settingsJson]);
  }

  async heartbeat(owner: string): Promise<void> {
    await this.db.count(S.heartbeat, [owner]);
  }

  async finishRun(owner: string, outcome: string): Promise<void> {
    await this.db.count(S.finishRun, [this.now(), outcome, owner]);
  }

  async openRuns(campaignId: number): Promise<RunInfo[]> {
    return (await this.db.rows<RunRecord>(S.openRuns, [campaignId])).map((r) => ({
      owner: r.owner,
      host: r.host,
      pid: r.pid,
      startedAt: r.started_at,
      heartbeatAt: r.heartbeat_at,
      finishedAt: r.finished_at ?? undefined,
      outcome: r.outcome ?? undefined,
    }));
  }

  expireLeasesOf(owner: string, now: number): Promise<number> {
    return this.db.count(S.expireLeases, [now - 1, owner]);
  }

  dueDomains(campaignId: number, now: number): Promise<DueDomain[]> {
    return this.db.rows<{ domain: string; due: number }>(S.dueDomains, [campaignId, now]);
  }

  async dueIds(campaignId: number, domain: string, now: number, limit: number): Promise<number[]> {
    return (await this.db.rows<{ id: number }>(S.dueIds, [campaignId, domain, now, limit])).map((r) => r.id);
  }

  async lease(messageId: number, owner: string, attemptId: string, now: number, leaseMs: number): Promise<LeasedMessage | undefined> {
    const r = await this.db.one<LeaseRecord>(S.lease, [messageId, owner, attemptId, now, now + leaseMs]);
    if (r === undefined) return undefined;
    // Taking over a row another run was sending: it may have reached the server.
    const reclaimed = r.was === 'sending';
    return {
      ...toMessage(r),
      state: 'sending',
      attemptId,
      leaseExpiresAt: now + leaseMs,
      possibleDuplicate: r.was_duplicate || reclaimed,
      reclaimed,
    };
  }

  async nextDueAt(campaignId: number): Promise<number | undefined> {
    return (await this.db.one<{ at: number | null }>(S.nextDue, [campaignId]))?.at ?? undefined;
  }

  async unlease(messageId: number, attemptId: string, now: number): Promise<boolean> {
    return (await this.db.count(S.unlease, [messageId, attemptId, now])) > 0;
  }

  async recordOutcome(u: OutcomeUpdate): Promise<boolean> {
    const n = u.next;
    let next = 0;
    let inc = 1;
    if (n.state === 'deferred') {
      next = n.nextAttemptAt;
      inc = n.countsAttempt ? 1 : 0;
    } else if (n.state === 'failed') {
      inc = n.countsAttempt ? 1 : 0;
    } else if (n.state === 'released') {
      next = n.nextAttemptAt;
      inc = 0;
    }
    const row = await this.db.one<{ n: number }>(S.outcome, [
      u.messageId,
      u.attemptId,
      n.state,
      next,
      inc,
      u.finishedAt,
      n.state === 'sent' ? u.finishedAt : null,
      n.state === 'sent' ? n.smtpMessageId : null,
      u.category,
      u.code ?? null,
      u.enhanced ?? null,
      u.reply === undefined ? null : pgText(u.reply),
      u.flagPossibleDuplicate,
      u.runOwner,
      u.startedAt,
      u.stage ?? null,
      u.rule ?? null,
      u.bodyWritten,
      n.state === 'deferred' ? n.nextAttemptAt - u.finishedAt : null,
      n.state === 'failed' ? pgText(n.reason) : null,
      n.state === 'failed' && n.suppress,
    ]);
    return (row?.n ?? 0) > 0;
  }

  async countPossibleDuplicates(campaignId: number): Promise<number> {
    return (await this.db.one<{ n: number }>(S.possibleDuplicates, [campaignId]))?.n ?? 0;
  }

  async *listFailures(campaignId: number): AsyncIterable<FailureRow> {
    let after = 0;
    for (;;) {
      const page = await this.db.rows<FailureRecord>(S.failuresPage, [campaignId, after, PAGE_SIZE]);
      for (const r of page) {
        yield {
          address: r.address,
          category: r.category,
          reason: r.reason,
          code: r.code ?? undefined,
          enhanced: r.enhanced ?? undefined,
          reply: r.reply ?? undefined,
          attempts: r.attempts,
          at: r.at,
        };
      }
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.message_id;
    }
  }

  async loadDomainState(campaignId: number): Promise<PersistedDomainState[]> {
    return (await this.db.rows<{ key: string; status_json: string; rate_factor: number }>(S.loadDomainState, [campaignId])).map((r) => ({
      key: r.key,
      statusJson: r.status_json,
      rateFactor: r.rate_factor,
    }));
  }

  async saveDomainState(campaignId: number, rows: readonly PersistedDomainState[]): Promise<void> {
    // One upsert may not touch a key twice: the last row of a key wins, as a row-by-row upsert would.
    const byKey = new Map(rows.map((r) => [r.key, r]));
    if (byKey.size === 0) return;
    const list = [...byKey.values()];
    await this.db.count(S.saveDomainState, [
      campaignId,
      list.map((r) => r.key),
      list.map((r) => r.statusJson),
      list.map((r) => r.rateFactor),
      this.now(),
    ]);
  }

  // ---- Coordination of several send processes (SQL in coordination.ts). The
  // buckets and these heartbeats run on the database's clock: `now` is not used.

  takeTokens(campaignId: number, key: string, want: number, limit: BucketLimit, _now: number): Promise<TokenGrant> {
    return pgTakeTokens(this.db, campaignId, key, want, limit);
  }

  returnTokens(campaignId: number, key: string, count: number, limit: BucketLimit, _now: number): Promise<void> {
    return pgReturnTokens(this.db, campaignId, key, count, limit);
  }

  reportRun(owner: string, stats: RunStats, _now: number): Promise<void> {
    return pgReportRun(this.db, owner, stats);
  }

  runHealth(campaignId: number, now: number, finishedWithinMs: number): Promise<RunHealth[]> {
    return pgRunHealth(this.db, campaignId, now, finishedWithinMs);
  }
}
