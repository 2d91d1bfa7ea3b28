import type Database from 'better-sqlite3';
import { GroupCommit } from './group-commit.js';
import type {
  BucketLimit,
  CampaignStatus,
  DueDomain,
  FailureRow,
  LeasedMessage,
  MessageState,
  OutcomeUpdate,
  PersistedDomainState,
  RunHealth,
  RunInfo,
  RunStats,
  SendStore,
  TokenGrant,
} from '../types.js';
import * as coordination from './coordination.js';
import { SEND_INDEXES } from './migrations.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRecord } from './records.js';

const PAGE_SIZE = 1000;

interface LeaseRecord extends MessageRecord {
  possible_duplicate: number;
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

/** A row is due when queued, deferred and its time has come, or sending under an expired lease. */
const DUE = `((state IN ('queued','deferred') AND next_attempt_at <= @now) OR (state = 'sending' AND lease_expires_at < @now))`;

function prepareSend(db: Database.Database) {
  return {
    setStatus: db.prepare<[string, number, number]>(`UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ?`),
    setSettings: db.prepare<[string, number, number]>(`UPDATE campaigns SET settings_json = ?, updated_at = ? WHERE id = ?`),
    settings: db.prepare<[number], { settings_json: string }>(`SELECT settings_json FROM campaigns WHERE id = ?`),

    startRun: db.prepare<[number, string, string, number, number, number, string]>(
      `INSERT INTO runs (campaign_id, owner, host, pid, started_at, heartbeat_at, settings_json) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    heartbeat: db.prepare<[number, string]>(`UPDATE runs SET heartbeat_at = ? WHERE owner = ?`),
    finishRun: db.prepare<[number, string, string]>(`UPDATE runs SET finished_at = ?, outcome = ? WHERE owner = ? AND finished_at IS NULL`),
    openRuns: db.prepare<[number], RunRecord>(
      `SELECT owner, host, pid, started_at, heartbeat_at, finished_at, outcome FROM runs WHERE campaign_id = ? AND finished_at IS NULL ORDER BY id`,
    ),
    expireLeases: db.prepare<[number, string]>(
      `UPDATE messages SET lease_expires_at = ? WHERE lease_owner = ? AND state = 'sending'`,
    ),

    dueDomains: db.prepare<{ c: number; now: number }, DueDomain>(
      `SELECT domain, count(*) AS due FROM messages WHERE campaign_id = @c AND ${DUE} GROUP BY domain ORDER BY due DESC`,
    ),
    // No ORDER BY: the index yields deferred rows (oldest retry first) then queued rows, without a sort.
    dueIds: db.prepare<{ c: number; d: string; now: number; n: number }, { id: number }>(
      `SELECT id FROM messages WHERE campaign_id = @c AND state IN ('deferred','queued') AND domain = @d
         AND next_attempt_at <= @now LIMIT @n`,
    ),
    expiredIds: db.prepare<{ c: number; d: string; now: number; n: number }, { id: number }>(
      `SELECT id FROM messages WHERE campaign_id = @c AND state = 'sending' AND domain = @d AND lease_expires_at < @now LIMIT @n`,
    ),
    leaseRow: db.prepare<[number], LeaseRecord>(
      `SELECT ${MESSAGE_COLUMNS}, m.possible_duplicate
       FROM messages m JOIN import_runs r ON r.id = m.import_run_id WHERE m.id = ?`,
    ),
    lease: db.prepare<{ id: number; owner: string; attempt: string; now: number; until: number; reclaim: number }>(
      `UPDATE messages SET state = 'sending', lease_owner = @owner, lease_expires_at = @until, attempt_id = @attempt,
         possible_duplicate = possible_duplicate OR @reclaim, updated_at = @now
       WHERE id = @id AND ${DUE}`,
    ),
    nextDue: db.prepare<[number, number], { at: number | null }>(
      `SELECT min(at) AS at FROM (
         SELECT min(next_attempt_at) AS at FROM messages WHERE campaign_id = ? AND state IN ('deferred','queued')
         UNION ALL
         SELECT min(lease_expires_at) FROM messages WHERE campaign_id = ? AND state = 'sending')`,
    ),

    outcome: db.prepare<{
      id: number;
      attempt: string;
      state: string;
      next: number;
      inc: number;
      now: number;
      sentAt: number | null;
      smtpId: string | null;
      category: string;
      code: number | null;
      enhanced: string | null;
      reply: string | null;
      dup: number;
    }>(
      `UPDATE messages SET state = @state, next_attempt_at = @next, attempts = attempts + @inc,
         lease_owner = NULL, lease_expires_at = NULL, updated_at = @now,
         sent_at = coalesce(@sentAt, sent_at), message_id = coalesce(@smtpId, message_id),
         last_category = @category, last_code = @code, last_enhanced = @enhanced, last_reply = @reply,
         possible_duplicate = possible_duplicate OR @dup
       WHERE id = @id AND state = 'sending' AND attempt_id = @attempt`,
    ),
    unlease: db.prepare<{ id: number; attempt: string; now: number }>(
      `UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
         lease_owner = NULL, lease_expires_at = NULL, updated_at = @now
       WHERE id = @id AND state = 'sending' AND attempt_id = @attempt`,
    ),
    releasedState: db.prepare<[number], { state: string }>(
      `SELECT CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END AS state FROM messages WHERE id = ?`,
    ),
    insertAttempt: db.prepare<{
      mid: number;
      attempt: string;
      owner: string;
      started: number;
      finished: number;
      stage: string | null;
      code: number | null;
      enhanced: string | null;
      category: string;
      rule: string | null;
      reply: string | null;
      body: number;
      next: string;
      delay: number | null;
    }>(
      `INSERT INTO attempts (message_id, campaign_id, attempt_id, run_owner, started_at, finished_at, stage, code, enhanced,
         category, rule, reply, body_written, next_state, delay_ms)
       SELECT @mid, campaign_id, @attempt, @owner, @started, @finished, @stage, @code, @enhanced, @category, @rule, @reply,
         @body, @next, @delay FROM messages WHERE id = @mid`,
    ),
    insertFailure: db.prepare<{
      mid: number;
      category: string;
      reason: string;
      code: number | null;
      enhanced: string | null;
      reply: string | null;
      at: number;
    }>(
      `INSERT OR REPLACE INTO failures (message_id, campaign_id, category, reason, code, enhanced, reply, attempts, at)
       SELECT id, campaign_id, @category, @reason, @code, @enhanced, @reply, attempts, @at FROM messages WHERE id = @mid`,
    ),
    clearFailure: db.prepare<[number]>(`DELETE FROM failures WHERE message_id = ?`),
    suppress: db.prepare<[string, number, number]>(
      `INSERT OR IGNORE INTO suppressions (address_key, reason, created_at) SELECT address_key, ?, ? FROM messages WHERE id = ?`,
    ),
    possibleDuplicates: db.prepare<[number], { n: number }>(
      `SELECT count(*) AS n FROM messages WHERE campaign_id = ? AND possible_duplicate = 1`,
    ),
    failuresPage: db.prepare<[number, number, number], FailureRecord>(
      `SELECT f.message_id, m.address, f.category, f.reason, f.code, f.enhanced, f.reply, f.attempts, f.at
       FROM failures f JOIN messages m ON m.id = f.message_id
       WHERE f.campaign_id = ? AND f.message_id > ? ORDER BY f.message_id LIMIT ?`,
    ),
    loadDomainState: db.prepare<[number], { key: string; status_json: string; rate_factor: number }>(
      `SELECT key, status_json, rate_factor FROM domain_state WHERE campaign_id = ?`,
    ),
    saveDomainState: db.prepare<[number, string, string, number, number]>(
      `INSERT INTO domain_state (campaign_id, key, status_json, rate_factor, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (campaign_id, key) DO UPDATE SET status_json = excluded.status_json,
         rate_factor = excluded.rate_factor, updated_at = excluded.updated_at`,
    ),
  };
}

/** SQL for sending: leasing, outcomes, runs, failures and domain state. */
export class SqliteSendStore implements SendStore {
  protected readonly db: Database.Database;
  protected readonly now: () => number;
  private readonly s: ReturnType<typeof prepareSend>;
  private readonly c: coordination.CoordinationStatements;
  protected readonly group: GroupCommit;

  constructor(db: Database.Database, now: () => number) {
    this.db = db;
    this.now = now;
    this.s = prepareSend(db);
    this.c = coordination.prepareCoordination(db);
    this.group = new GroupCommit(db);
  }

  /** better-sqlite3 is synchronous; this turns its throws into rejections, as a networked store would. */
  protected op<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  prepareForSending(): Promise<void> {
    return this.op(() => void this.db.exec(SEND_INDEXES));
  }

  setCampaignStatus(campaignId: number, status: CampaignStatus): Promise<void> {
    return this.op(() => void this.s.setStatus.run(status, this.now(), campaignId));
  }

  setCampaignSettings(campaignId: number, settingsJson: string): Promise<void> {
    return this.op(() => void this.s.setSettings.run(settingsJson, this.now(), campaignId));
  }

  campaignSettings(campaignId: number): Promise<string> {
    return this.op(() => this.s.settings.get(campaignId)?.settings_json ?? '{}');
  }

  startRun(campaignId: number, run: { owner: string; host: string; pid: number; settingsJson: string }): Promise<void> {
    const now = this.now();
    return this.op(() => void this.s.startRun.run(campaignId, run.owner, run.host, run.pid, now, now, run.settingsJson));
  }

  heartbeat(owner: string): Promise<void> {
    return this.op(() => void this.s.heartbeat.run(this.now(), owner));
  }

  finishRun(owner: string, outcome: string): Promise<void> {
    return this.op(() => void this.s.finishRun.run(this.now(), outcome, owner));
  }

  openRuns(campaignId: number): Promise<RunInfo[]> {
    return this.op(() =>
      this.s.openRuns.all(campaignId).map((r) => ({
        owner: r.owner,
        host: r.host,
        pid: r.pid,
        startedAt: r.started_at,
        heartbeatAt: r.heartbeat_at,
        finishedAt: r.finished_at ?? undefined,
        outcome: r.outcome ?? undefined,
      })),
    );
  }

  expireLeasesOf(owner: string, now: number): Promise<number> {
    return this.op(() => this.s.expireLeases.run(now - 1, owner).changes);
  }

  dueDomains(campaignId: number, now: number): Promise<DueDomain[]> {
    return this.op(() => this.s.dueDomains.all({ c: campaignId, now }));
  }

  dueIds(campaignId: number, domain: string, now: number, limit: number): Promise<number[]> {
    return this.op(() => {
      const ids = this.s.dueIds.all({ c: campaignId, d: domain, now, n: limit }).map((r) => r.id);
      if (ids.length < limit) {
        for (const r of this.s.expiredIds.all({ c: campaignId, d: domain, now, n: limit - ids.length })) ids.push(r.id);
      }
      return ids;
    });
  }

  // Leases and outcomes go through GroupCommit, whose transactions start
  // IMMEDIATE: a deferred one that has read gets SQLITE_BUSY at once, without
  // the busy timeout, when another process (a second `send` on the same
  // file) committed after its read.
  lease(messageId: number, owner: string, attemptId: string, now: number, leaseMs: number): Promise<LeasedMessage | undefined> {
    return this.group.submit((): LeasedMessage | undefined => {
      const before = this.s.leaseRow.get(messageId);
      if (before === undefined) return undefined;
      // Taking over a row another run was sending: it may have reached the server.
      const reclaimed = before.state === 'sending';
      const won = this.s.lease.run({ id: messageId, owner, attempt: attemptId, now, until: now + leaseMs, reclaim: reclaimed ? 1 : 0 });
      if (won.changes === 0) return undefined;
      return {
        ...toMessage(before),
        state: 'sending',
        attemptId,
        leaseExpiresAt: now + leaseMs,
        possibleDuplicate: before.possible_duplicate === 1 || reclaimed,
        reclaimed,
      };
    });
  }

  nextDueAt(campaignId: number): Promise<number | undefined> {
    return this.op(() => this.s.nextDue.get(campaignId, campaignId)?.at ?? undefined);
  }

  recordOutcome(u: OutcomeUpdate): Promise<boolean> {
    return this.group.submit((): boolean => {
      const n = u.next;
      let state: MessageState;
      let next = 0;
      let inc = 1;
      if (n.state === 'sent') state = 'sent';
      else if (n.state === 'deferred') {
        state = 'deferred';
        next = n.nextAttemptAt;
        inc = n.countsAttempt ? 1 : 0;
      } else if (n.state === 'failed') {
        state = 'failed';
        inc = n.countsAttempt ? 1 : 0;
      } else {
        state = (this.s.releasedState.get(u.messageId)?.state ?? 'queued') as MessageState;
        next = n.nextAttemptAt;
        inc = 0;
      }
      const changed = this.s.outcome.run({
        id: u.messageId,
        attempt: u.attemptId,
        state,
        next,
        inc,
        now: u.finishedAt,
        sentAt: n.state === 'sent' ? u.finishedAt : null,
        smtpId: n.state === 'sent' ? n.smtpMessageId : null,
        category: u.category,
        code: u.code ?? null,
        enhanced: u.enhanced ?? null,
        reply: u.reply ?? null,
        dup: u.flagPossibleDuplicate ? 1 : 0,
      }).changes;
      if (changed === 0) return false;
      if (n.state !== 'released') {
        this.s.insertAttempt.run({
          mid: u.messageId,
          attempt: u.attemptId,
          owner: u.runOwner,
          started: u.startedAt,
          finished: u.finishedAt,
          stage: u.stage ?? null,
          code: u.code ?? null,
          enhanced: u.enhanced ?? null,
          category: u.category,
          rule: u.rule ?? null,
          reply: u.reply ?? null,
          body: u.bodyWritten ? 1 : 0,
          next: state,
          delay: n.state === 'deferred' ? n.nextAttemptAt - u.finishedAt : null,
        });
      }
      if (n.state === 'failed') {
        this.s.insertFailure.run({
          mid: u.messageId,
          category: u.category,
          reason: n.reason,
          code: u.code ?? null,
          enhanced: u.enhanced ?? null,
          reply: u.reply ?? null,
          at: u.finishedAt,
        });
        if (n.suppress) this.s.suppress.run(u.category, u.finishedAt, u.messageId);
      } else if (n.state === 'sent') {
        this.s.clearFailure.run(u.messageId);
      }
      return true;
    });
  }

  unlease(messageId: number, attemptId: string, now: number): Promise<boolean> {
    return this.group.submit(() => this.s.unlease.run({ id: messageId, attempt: attemptId, now }).changes > 0);
  }

  countPossibleDuplicates(campaignId: number): Promise<number> {
    return this.op(() => this.s.possibleDuplicates.get(campaignId)?.n ?? 0);
  }

  async *listFailures(campaignId: number): AsyncIterable<FailureRow> {
    let after = 0;
    for (;;) {
      const page = await this.op(() => this.s.failuresPage.all(campaignId, after, PAGE_SIZE));
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

  loadDomainState(campaignId: number): Promise<PersistedDomainState[]> {
    return this.op(() =>
      this.s.loadDomainState.all(campaignId).map((r) => ({ key: r.key, statusJson: r.status_json, rateFactor: r.rate_factor })),
    );
  }

  saveDomainState(campaignId: number, rows: readonly PersistedDomainState[]): Promise<void> {
    const now = this.now();
    return this.op(() =>
      this.db.transaction(() => {
        for (const r of rows) this.s.saveDomainState.run(campaignId, r.key, r.statusJson, r.rateFactor, now);
      })(),
    );
  }

  takeTokens(campaignId: number, key: string, want: number, limit: BucketLimit, now: number): Promise<TokenGrant> {
    return this.op(() => coordination.takeTokens(this.db, this.c, campaignId, key, want, limit, now));
  }

  returnTokens(campaignId: number, key: string, count: number, limit: BucketLimit, now: number): Promise<void> {
    return this.op(() => coordination.returnTokens(this.db, this.c, campaignId, key, count, limit, now));
  }

  reportRun(owner: string, stats: RunStats, now: number): Promise<void> {
    return this.op(() => coordination.reportRun(this.db, this.c, owner, stats, now));
  }

  runHealth(campaignId: number, now: number, finishedWithinMs: number): Promise<RunHealth[]> {
    return this.op(() => coordination.runHealth(this.c, campaignId, now, finishedWithinMs));
  }
}
