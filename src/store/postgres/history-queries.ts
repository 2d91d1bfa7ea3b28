import type {
  AttemptLogRow,
  FailureInfo,
  ImportRunStatus,
  MessageState,
  RecipientHistory,
  RejectMatch,
  RequeueOptions,
  RequeueResult,
  Suppression,
} from '../types.js';
import { statement, type PgDb } from './db.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRecord } from './records.js';

/**
 * SQL for a recipient's history (`mailq trace`) and for putting failed
 * recipients back in the queue (`mailq retry`): the statements of
 * src/store/sqlite/history-queries.ts, with flags as booleans.
 */

interface HistoryRecord extends MessageRecord {
  next_attempt_at: number;
  lease_owner: string | null;
  possible_duplicate: boolean;
  smtp_message_id: string | null;
  sent_at: number | null;
  import_id: number;
  import_status: string;
  import_started_at: number;
  import_finished_at: number | null;
}

interface FailureRecord {
  category: string;
  reason: string;
  code: number | null;
  enhanced: string | null;
  reply: string | null;
  attempts: number;
  at: number;
}

interface AttemptRecord {
  attempt_id: string;
  run_owner: string;
  host: string | null;
  started_at: number;
  finished_at: number;
  stage: string | null;
  code: number | null;
  enhanced: string | null;
  category: string;
  rule: string | null;
  reply: string | null;
  body_written: boolean;
  next_state: string;
  delay_ms: number | null;
}

interface RejectRecord {
  source: string;
  line: number;
  raw: string;
  reason: string;
  message: string;
  started_at: number;
}

interface FailedRecord {
  id: number;
  address_key: string;
  category: string;
  suppressed: boolean;
}

/** A template that did not render is filed under `render` (see the SQLite twin for why). */
const FAILURE_CATEGORY = `CASE WHEN f.reason LIKE 'render:%' THEN 'render' ELSE f.category END`;

const H = {
  history: statement(
    'history',
    `SELECT ${MESSAGE_COLUMNS}, m.next_attempt_at, m.lease_owner, m.possible_duplicate, m.message_id AS smtp_message_id,
       m.sent_at, r.id AS import_id, r.status AS import_status, r.started_at AS import_started_at,
       r.finished_at AS import_finished_at
     FROM messages m JOIN import_runs r ON r.id = m.import_run_id
     WHERE m.campaign_id = $1 AND m.address_key = $2`,
  ),
  failure: statement(
    'history_failure',
    `SELECT ${FAILURE_CATEGORY} AS category, f.reason, f.code, f.enhanced, f.reply, f.attempts, f.at
     FROM failures f WHERE f.message_id = $1`,
  ),
  attempts: statement(
    'history_attempts',
    `SELECT a.attempt_id, a.run_owner, ru.host, a.started_at, a.finished_at, a.stage, a.code, a.enhanced, a.category,
       a.rule, a.reply, a.body_written, a.next_state, a.delay_ms
     FROM attempts a LEFT JOIN runs ru ON ru.owner = a.run_owner
     WHERE a.message_id = $1 ORDER BY a.id`,
  ),
  // Rejects are few (bad rows of a CSV), so a scan of one campaign's is cheap.
  // lower() of the pattern's own text is done in JS, as on SQLite.
  rejects: statement(
    'history_rejects',
    `SELECT j.source, j.line, j.raw, j.reason, j.message, r.started_at
     FROM import_rejects j JOIN import_runs r ON r.id = j.import_run_id
     WHERE j.campaign_id = $1 AND lower(j.raw) LIKE $2 ESCAPE '\\' ORDER BY j.id`,
  ),
  suppression: statement('history_suppression', `SELECT reason, created_at FROM suppressions WHERE address_key = $1`),
  // FOR UPDATE OF m: a second `retry` (from another host) waits for this one instead of re-queuing the same rows.
  failed: statement(
    'history_failed',
    `SELECT m.id, m.address_key, coalesce(${FAILURE_CATEGORY}, m.last_category, 'unknown') AS category,
       s.address_key IS NOT NULL AS suppressed
     FROM messages m
       LEFT JOIN failures f ON f.message_id = m.id
       LEFT JOIN suppressions s ON s.address_key = m.address_key
     WHERE m.campaign_id = $1 AND m.state = 'failed' ORDER BY m.id FOR UPDATE OF m`,
  ),
  // The attempts budget starts again (attempts = 0); last_* and possible_duplicate are history and stay.
  requeue: statement(
    'history_requeue',
    `UPDATE messages SET state = 'queued', attempts = 0, next_attempt_at = 0, lease_owner = NULL, lease_expires_at = NULL,
       updated_at = $1 WHERE id = ANY($2::bigint[]) AND state = 'failed'`,
  ),
  deleteFailures: statement('history_delete_failures', `DELETE FROM failures WHERE message_id = ANY($1::bigint[])`),
  unsuppress: statement('history_unsuppress', `DELETE FROM suppressions WHERE address_key = ANY($1::text[])`),
  pause: statement('history_pause', `UPDATE campaigns SET status = 'paused', updated_at = $1 WHERE id = $2`),
  setSettings: statement('history_set_settings', `UPDATE campaigns SET settings_json = $1, updated_at = $2 WHERE id = $3`),
};

/** LIKE pattern for "contains text": %, _ and the escape character itself match literally. */
function containsPattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function toAttempt(r: AttemptRecord): AttemptLogRow {
  return {
    attemptId: r.attempt_id,
    runOwner: r.run_owner,
    runHost: r.host ?? undefined,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    stage: r.stage ?? undefined,
    code: r.code ?? undefined,
    enhanced: r.enhanced ?? undefined,
    category: r.category,
    rule: r.rule ?? undefined,
    reply: r.reply ?? undefined,
    bodyWritten: r.body_written,
    nextState: r.next_state as MessageState,
    delayMs: r.delay_ms ?? undefined,
  };
}

function toFailure(r: FailureRecord): FailureInfo {
  return {
    category: r.category,
    reason: r.reason,
    code: r.code ?? undefined,
    enhanced: r.enhanced ?? undefined,
    reply: r.reply ?? undefined,
    attempts: r.attempts,
    at: r.at,
  };
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export class PgHistoryQueries {
  constructor(private readonly db: PgDb) {}

  async recipientHistory(campaignId: number, addressKey: string): Promise<RecipientHistory | undefined> {
    const r = await this.db.one<HistoryRecord>(H.history, [campaignId, addressKey]);
    if (r === undefined) return undefined;
    const [failure, attempts] = await Promise.all([
      this.db.one<FailureRecord>(H.failure, [r.id]),
      this.db.rows<AttemptRecord>(H.attempts, [r.id]),
    ]);
    return {
      message: toMessage(r),
      importRun: {
        id: r.import_id,
        source: r.source,
        status: r.import_status as ImportRunStatus,
        startedAt: r.import_started_at,
        finishedAt: r.import_finished_at ?? undefined,
      },
      nextAttemptAt: r.next_attempt_at,
      leaseOwner: r.lease_owner ?? undefined,
      possibleDuplicate: r.possible_duplicate,
      smtpMessageId: r.smtp_message_id ?? undefined,
      sentAt: r.sent_at ?? undefined,
      failure: failure === undefined ? undefined : toFailure(failure),
      attempts: attempts.map(toAttempt),
    };
  }

  async findRejects(campaignId: number, text: string): Promise<RejectMatch[]> {
    return (await this.db.rows<RejectRecord>(H.rejects, [campaignId, containsPattern(text)])).map((r) => ({
      source: r.source,
      line: r.line,
      raw: r.raw,
      reason: r.reason,
      message: r.message,
      importedAt: r.started_at,
    }));
  }

  async getSuppression(addressKey: string): Promise<Suppression | undefined> {
    const r = await this.db.one<{ reason: string; created_at: number }>(H.suppression, [addressKey]);
    return r === undefined ? undefined : { reason: r.reason, createdAt: r.created_at };
  }

  /** One transaction: the choice of rows and the writes are decided on the same locked rows. */
  requeueFailed(campaignId: number, options: RequeueOptions, now: number): Promise<RequeueResult> {
    const wanted = options.categories === undefined ? undefined : new Set(options.categories);
    return this.db.tx(async (q): Promise<RequeueResult> => {
      const requeued: Record<string, number> = {};
      const keptSuppressed: Record<string, number> = {};
      const ids: number[] = [];
      const unsuppressKeys: string[] = [];
      for (const row of await q.rows<FailedRecord>(H.failed, [campaignId])) {
        if (wanted !== undefined && !wanted.has(row.category)) continue;
        if (row.suppressed && !options.includeSuppressed) {
          bump(keptSuppressed, row.category);
          continue;
        }
        bump(requeued, row.category);
        ids.push(row.id);
        if (row.suppressed) unsuppressKeys.push(row.address_key);
      }
      if (options.dryRun) return { requeued, keptSuppressed, unsuppressed: unsuppressKeys.length };
      let unsuppressed = 0;
      if (ids.length > 0) {
        await q.count(H.requeue, [now, ids]);
        await q.count(H.deleteFailures, [ids]);
        if (unsuppressKeys.length > 0) unsuppressed = await q.count(H.unsuppress, [unsuppressKeys]);
        if (options.settingsJson !== undefined) await q.count(H.setSettings, [options.settingsJson, now, campaignId]);
        await q.count(H.pause, [now, campaignId]);
      }
      return { requeued, keptSuppressed, unsuppressed };
    });
  }
}
