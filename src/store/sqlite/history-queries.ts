import type Database from 'better-sqlite3';
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
import { MESSAGE_COLUMNS, toMessage, type MessageRecord } from './records.js';

/**
 * SQL for a recipient's history (`mailq trace`) and for putting failed
 * recipients back in the queue (`mailq retry`). Plain SELECTs and UPDATEs with
 * bound parameters, so the PostgreSQL backend can say the same things.
 */

interface HistoryRecord extends MessageRecord {
  next_attempt_at: number;
  lease_owner: string | null;
  possible_duplicate: number;
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
  body_written: number;
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
  suppressed: number;
}

/**
 * The category a failure is filed under. A template that did not render is
 * recorded by the runner as `message-rejected` with reason `render: <why>`;
 * operators fix templates and SMTP configuration separately, so it gets its own.
 */
const FAILURE_CATEGORY = `CASE WHEN f.reason LIKE 'render:%' THEN 'render' ELSE f.category END`;

function prepareHistory(db: Database.Database) {
  return {
    history: db.prepare<[number, string], HistoryRecord>(
      `SELECT ${MESSAGE_COLUMNS}, m.next_attempt_at, m.lease_owner, m.possible_duplicate, m.message_id AS smtp_message_id,
         m.sent_at, r.id AS import_id, r.status AS import_status, r.started_at AS import_started_at,
         r.finished_at AS import_finished_at
       FROM messages m JOIN import_runs r ON r.id = m.import_run_id
       WHERE m.campaign_id = ? AND m.address_key = ?`,
    ),
    failure: db.prepare<[number], FailureRecord>(
      `SELECT ${FAILURE_CATEGORY} AS category, f.reason, f.code, f.enhanced, f.reply, f.attempts, f.at
       FROM failures f WHERE f.message_id = ?`,
    ),
    attempts: db.prepare<[number], AttemptRecord>(
      `SELECT a.attempt_id, a.run_owner, ru.host, a.started_at, a.finished_at, a.stage, a.code, a.enhanced, a.category,
         a.rule, a.reply, a.body_written, a.next_state, a.delay_ms
       FROM attempts a LEFT JOIN runs ru ON ru.owner = a.run_owner
       WHERE a.message_id = ? ORDER BY a.id`,
    ),
    // Rejects are few (bad rows of a CSV), so a scan of one campaign's is cheap.
    rejects: db.prepare<[number, string], RejectRecord>(
      `SELECT j.source, j.line, j.raw, j.reason, j.message, r.started_at
       FROM import_rejects j JOIN import_runs r ON r.id = j.import_run_id
       WHERE j.campaign_id = ? AND lower(j.raw) LIKE ? ESCAPE '\\' ORDER BY j.id`,
    ),
    suppression: db.prepare<[string], { reason: string; created_at: number }>(
      `SELECT reason, created_at FROM suppressions WHERE address_key = ?`,
    ),
    failed: db.prepare<[number], FailedRecord>(
      `SELECT m.id, m.address_key, coalesce(${FAILURE_CATEGORY}, m.last_category, 'unknown') AS category,
         CASE WHEN s.address_key IS NULL THEN 0 ELSE 1 END AS suppressed
       FROM messages m
         LEFT JOIN failures f ON f.message_id = m.id
         LEFT JOIN suppressions s ON s.address_key = m.address_key
       WHERE m.campaign_id = ? AND m.state = 'failed' ORDER BY m.id`,
    ),
    // The attempts budget starts again (attempts = 0); last_* and possible_duplicate are history and stay.
    requeue: db.prepare<[number, number]>(
      `UPDATE messages SET state = 'queued', attempts = 0, next_attempt_at = 0, lease_owner = NULL, lease_expires_at = NULL,
         updated_at = ? WHERE id = ? AND state = 'failed'`,
    ),
    deleteFailure: db.prepare<[number]>(`DELETE FROM failures WHERE message_id = ?`),
    unsuppress: db.prepare<[string]>(`DELETE FROM suppressions WHERE address_key = ?`),
    pause: db.prepare<[number, number]>(`UPDATE campaigns SET status = 'paused', updated_at = ? WHERE id = ?`),
    setSettings: db.prepare<[string, number, number]>(`UPDATE campaigns SET settings_json = ?, updated_at = ? WHERE id = ?`),
  };
}

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
    bodyWritten: r.body_written === 1,
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

/** Synchronous queries; SqliteStore wraps each call in a Promise. */
export class HistoryQueries {
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareHistory>;

  constructor(db: Database.Database) {
    this.db = db;
    this.s = prepareHistory(db);
  }

  recipientHistory(campaignId: number, addressKey: string): RecipientHistory | undefined {
    const r = this.s.history.get(campaignId, addressKey);
    if (r === undefined) return undefined;
    const failure = this.s.failure.get(r.id);
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
      possibleDuplicate: r.possible_duplicate === 1,
      smtpMessageId: r.smtp_message_id ?? undefined,
      sentAt: r.sent_at ?? undefined,
      failure: failure === undefined ? undefined : toFailure(failure),
      attempts: this.s.attempts.all(r.id).map(toAttempt),
    };
  }

  findRejects(campaignId: number, text: string): RejectMatch[] {
    return this.s.rejects.all(campaignId, containsPattern(text)).map((r) => ({
      source: r.source,
      line: r.line,
      raw: r.raw,
      reason: r.reason,
      message: r.message,
      importedAt: r.started_at,
    }));
  }

  getSuppression(addressKey: string): Suppression | undefined {
    const r = this.s.suppression.get(addressKey);
    return r === undefined ? undefined : { reason: r.reason, createdAt: r.created_at };
  }

  // IMMEDIATE: the read of failed rows and the writes must not interleave with
  // a send on another connection (it would see half a retry).
  requeueFailed(campaignId: number, options: RequeueOptions, now: number): RequeueResult {
    const wanted = options.categories === undefined ? undefined : new Set(options.categories);
    return this.db.transaction((): RequeueResult => {
      const requeued: Record<string, number> = {};
      const keptSuppressed: Record<string, number> = {};
      let unsuppressed = 0;
      for (const row of this.s.failed.all(campaignId)) {
        if (wanted !== undefined && !wanted.has(row.category)) continue;
        if (row.suppressed === 1 && !options.includeSuppressed) {
          bump(keptSuppressed, row.category);
          continue;
        }
        bump(requeued, row.category);
        if (options.dryRun) {
          if (row.suppressed === 1) unsuppressed++;
          continue;
        }
        this.s.requeue.run(now, row.id);
        this.s.deleteFailure.run(row.id);
        if (row.suppressed === 1) unsuppressed += this.s.unsuppress.run(row.address_key).changes;
      }
      if (!options.dryRun && Object.keys(requeued).length > 0) {
        if (options.settingsJson !== undefined) this.s.setSettings.run(options.settingsJson, now, campaignId);
        this.s.pause.run(now, campaignId);
      }
      return { requeued, keptSuppressed, unsuppressed };
    }).immediate();
  }
}
