/**
 * The job database contract. Every backend (SQLite now, PostgreSQL next)
 * implements this interface; nothing outside src/store/ writes SQL.
 * Methods are async so a networked backend fits behind the same shape.
 */

export const messageStates = [
  'queued',
  'sending',
  'deferred',
  'sent',
  'failed',
  'suppressed',
  'cancelled',
] as const;
export type MessageState = (typeof messageStates)[number];

export type CampaignStatus = 'draft' | 'sending' | 'paused' | 'finished' | 'cancelled';

export interface Campaign {
  readonly id: number;
  readonly name: string;
  readonly createdAt: number;
  readonly status: CampaignStatus;
  /** JSON of the template snapshot taken at import (see campaign/template/snapshot). */
  readonly templateJson: string;
  readonly templateHash: string;
  /** Folder the snapshot was taken from, for `refresh-template` without --template. */
  readonly templateSource: string;
  /** Campaign-wide variables from --var / --var-file. */
  readonly vars: Readonly<Record<string, string>>;
}

export interface NewCampaign {
  readonly name: string;
  readonly templateJson: string;
  readonly templateHash: string;
  readonly templateSource: string;
  readonly vars: Readonly<Record<string, string>>;
}

export type ImportRunStatus = 'running' | 'complete' | 'failed';

export interface ImportRun {
  readonly id: number;
  readonly campaignId: number;
  /** Absolute path of the CSV; re-running the same path resumes an interrupted run. */
  readonly source: string;
  readonly status: ImportRunStatus;
  readonly columns: readonly string[];
  /** True when this run was left `running` by an interrupted import and is being resumed. */
  readonly resumed: boolean;
}

export interface ImportCounts {
  readonly imported: number;
  readonly duplicates: number;
  readonly rejected: number;
  readonly total: number;
}

/**
 * One recipient row ready to insert: the address already validated and
 * normalized. The store derives the dedupe key and the domain from it
 * (addressKeyOf, domainOf in src/campaign/address.ts): binding two fewer
 * strings a row was ~7% of the SQLite insert time on 1,000,000 rows.
 */
export interface RecipientInsert {
  readonly line: number;
  readonly address: string;
  /** Per-recipient variables: a JSON array of values aligned with the import run's columns. */
  readonly varsJson: string;
}

export interface RejectInsert {
  readonly line: number;
  readonly raw: string;
  readonly reason: string;
  readonly message: string;
}

/** What a finished run left in the campaign, counted by the store. */
export interface RunTally {
  /** Recipients this run added (across an interrupted attempt and its resume). */
  readonly imported: number;
  /** Records that named an address the campaign already had: total - imported - rejected. */
  readonly duplicates: number;
  /** Of those, recipients already on the suppression list. */
  readonly suppressed: number;
}

export interface RejectRow {
  readonly source: string;
  readonly line: number;
  readonly raw: string;
  readonly reason: string;
  readonly message: string;
}

export interface MessageRow {
  readonly id: number;
  readonly campaignId: number;
  /** 1-based line of the CSV record this recipient came from. */
  readonly line: number;
  readonly source: string;
  readonly address: string;
  readonly addressKey: string;
  readonly domain: string;
  readonly vars: Readonly<Record<string, string>>;
  readonly state: MessageState;
  readonly attempts: number;
}

export type StateCounts = Readonly<Record<MessageState, number>>;

export interface CampaignSummary {
  readonly campaign: Campaign;
  readonly counts: StateCounts;
  readonly pendingImports: number;
}

export interface Store extends SendStore {
  /** Where the data lives, for messages (a path or a URL without password). */
  readonly location: string;
  /**
   * insertBatch spends this process's CPU (SQLite), rather than waiting for a
   * server (PostgreSQL). The import then has the main thread parse parts of
   * the file between batches; against a server that would only delay the
   * next batch while the server sits idle.
   */
  readonly insertsInProcess: boolean;
  close(): Promise<void>;

  getCampaign(name: string): Promise<Campaign | undefined>;
  listCampaigns(): Promise<CampaignSummary[]>;
  createCampaign(input: NewCampaign): Promise<Campaign>;
  /** Deletes a campaign that has no recipients left (an aborted first import). */
  deleteEmptyCampaign(id: number): Promise<boolean>;
  updateTemplate(campaignId: number, templateJson: string, templateHash: string, source: string): Promise<void>;
  setCampaignVars(campaignId: number, vars: Readonly<Record<string, string>>): Promise<void>;

  /** Starts an import of `source`, or resumes the run an interrupted import left behind. */
  beginImport(campaignId: number, source: string, columns: readonly string[]): Promise<ImportRun>;
  /**
   * Inserts one batch atomically. An address the campaign already has is a
   * duplicate and changes nothing, except that within one run the row with
   * the lowest line wins: several threads read parts of one file, so a later
   * line can arrive first, and the result must not depend on which did.
   */
  insertBatch(run: ImportRun, rows: Iterable<RecipientInsert>, rejects: readonly RejectInsert[]): Promise<void>;
  /**
   * The import's end is in sight (the last part of the file is being read)
   * while other threads still parse: a store may do now what finishImport
   * would otherwise do alone at the end. Changes nothing visible.
   */
  importEndInSight(runId: number): Promise<void>;
  /**
   * Marks the run complete. The store counts what the run added itself, so a
   * resumed run reports the rows its interrupted attempt inserted as imported.
   */
  finishImport(runId: number, counts: { readonly rejected: number; readonly total: number }): Promise<RunTally>;
  /** Removes everything the run inserted and marks it failed: nothing half-imported. */
  abortImport(runId: number): Promise<void>;
  /** Import runs still `running` (interrupted): the campaign must not be sent. */
  pendingImports(campaignId: number): Promise<ImportRun[]>;
  /** Columns of every completed import of the campaign, in first-seen order. */
  campaignColumns(campaignId: number): Promise<string[]>;

  listRejects(campaignId: number): AsyncIterable<RejectRow>;
  countRejects(campaignId: number): Promise<number>;

  countByState(campaignId: number): Promise<StateCounts>;
  /** Streams recipients in import order, a page at a time (flat memory). */
  iterateMessages(campaignId: number, options?: { states?: readonly MessageState[] }): AsyncIterable<MessageRow>;
  findMessageByKey(campaignId: number, addressKey: string): Promise<MessageRow | undefined>;
  /** The n-th recipient (1-based) in import order. */
  findMessageByPosition(campaignId: number, position: number): Promise<MessageRow | undefined>;

  isSuppressed(addressKey: string): Promise<boolean>;
  addSuppression(addressKey: string, reason: string): Promise<void>;

  // ---- History (trace, retry; types at the end of this file)
  /** One recipient's row, import and every attempt in order; undefined when the campaign has no such address. */
  recipientHistory(campaignId: number, addressKey: string): Promise<RecipientHistory | undefined>;
  /** Rejected rows whose raw value contains `text` (ASCII case-insensitive), in file order. */
  findRejects(campaignId: number, text: string): Promise<RejectMatch[]>;
  getSuppression(addressKey: string): Promise<Suppression | undefined>;
  /** Puts failed recipients back in the queue, in one transaction (see RequeueOptions). */
  requeueFailed(campaignId: number, options: RequeueOptions): Promise<RequeueResult>;

  // ---- Reports (types at the end of this file; aggregates are computed by the backend, never by loading rows)
  /** Every recipient with its last outcome, in import order, a page at a time (flat memory). */
  iterateReportRows(campaignId: number): AsyncIterable<ReportRow>;
  reportSummary(campaignId: number): Promise<ReportSummary>;
  reportCharts(campaignId: number, query: ReportChartQuery): Promise<ReportCharts>;
}

export function emptyCounts(): Record<MessageState, number> {
  const counts = {} as Record<MessageState, number>;
  for (const s of messageStates) counts[s] = 0;
  return counts;
}

// ---- Sending (the engine) -------------------------------------------------

export interface LeasedMessage extends MessageRow {
  readonly attemptId: string;
  readonly leaseExpiresAt: number;
  /** An earlier attempt may have reached the server (ambiguous drop, or a run that died mid-send). */
  readonly possibleDuplicate: boolean;
  /** This lease took over a row another run was sending when it died or its lease expired. */
  readonly reclaimed: boolean;
}

export interface DueDomain {
  readonly domain: string;
  readonly due: number;
}

/** Where a message goes after an attempt; decided by engine/transition.ts, applied by the store. */
export type NextState =
  | { readonly state: 'sent'; readonly smtpMessageId: string }
  | { readonly state: 'deferred'; readonly nextAttemptAt: number; readonly countsAttempt: boolean }
  | { readonly state: 'failed'; readonly reason: string; readonly suppress: boolean; readonly countsAttempt: boolean }
  /** Handed back untouched (graceful abort, throttled before any SMTP): no attempt burnt. */
  | { readonly state: 'released'; readonly nextAttemptAt: number };

export interface OutcomeUpdate {
  readonly messageId: number;
  readonly attemptId: string;
  readonly runOwner: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly stage: string | undefined;
  readonly code: number | undefined;
  readonly enhanced: string | undefined;
  readonly category: string;
  readonly rule: string | undefined;
  readonly reply: string | undefined;
  readonly bodyWritten: boolean;
  /** Set the possible_duplicate flag (sticky: never cleared). */
  readonly flagPossibleDuplicate: boolean;
  readonly next: NextState;
}

export interface RunInfo {
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  readonly finishedAt: number | undefined;
  readonly outcome: string | undefined;
}

export interface FailureRow {
  readonly address: string;
  readonly category: string;
  readonly reason: string;
  readonly code: number | undefined;
  readonly enhanced: string | undefined;
  readonly reply: string | undefined;
  readonly attempts: number;
  readonly at: number;
}

export interface PersistedDomainState {
  readonly key: string;
  readonly statusJson: string;
  readonly rateFactor: number;
}

/** The limit of one shared token bucket: refill rate and capacity (tokens). */
export interface BucketLimit {
  readonly perSecond: number;
  readonly burst: number;
}

/** What one takeTokens call got from a shared bucket. */
export interface TokenGrant {
  /** Tokens taken from the bucket for the caller: 0..want. */
  readonly granted: number;
  /** When granted < want: ms (on the bucket's clock) until the next whole token; 0 otherwise. */
  readonly waitMs: number;
}

/** What a run reports about itself with each heartbeat (RunHealth reads it back). */
export interface RunStats {
  /** Messages this run sent (250 committed) since it started. */
  readonly sent: number;
  /** Of those, in the 60 s before this report. */
  readonly sentLastMinute: number;
}

/** One run of a campaign as `mailq status` and the dashboard show it (engine/hosts.ts classifies it). */
export interface RunHealth {
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  /** now - heartbeatAt, on the clock that wrote the heartbeats (PostgreSQL: the database's). */
  readonly heartbeatAgeMs: number;
  readonly finishedAt: number | undefined;
  readonly outcome: string | undefined;
  readonly sent: number;
  readonly sentLastMinute: number;
}

export interface SendStore {
  /** Builds what sending needs and importing does not (indexes); idempotent and cheap once done. */
  prepareForSending(): Promise<void>;
  setCampaignStatus(campaignId: number, status: CampaignStatus): Promise<void>;
  setCampaignSettings(campaignId: number, settingsJson: string): Promise<void>;
  campaignSettings(campaignId: number): Promise<string>;

  startRun(campaignId: number, run: { owner: string; host: string; pid: number; settingsJson: string }): Promise<void>;
  heartbeat(owner: string): Promise<void>;
  finishRun(owner: string, outcome: string): Promise<void>;
  /** Runs of this campaign that have not finished (alive or dead). */
  openRuns(campaignId: number): Promise<RunInfo[]>;
  /** Ends the leases a dead run held, so they can be taken over now; returns how many. */
  expireLeasesOf(owner: string, now: number): Promise<number>;

  /** Domains with work due at `now` (queued, deferred and due, or sending with an expired lease). */
  dueDomains(campaignId: number, now: number): Promise<DueDomain[]>;
  /** Ids of due messages of one domain, oldest first. Not leased: lease() may still lose them. */
  dueIds(campaignId: number, domain: string, now: number, limit: number): Promise<number[]>;
  /** Guarded lease of one message; undefined when another worker won it or it is no longer due. */
  lease(messageId: number, owner: string, attemptId: string, now: number, leaseMs: number): Promise<LeasedMessage | undefined>;
  /** Earliest next_attempt_at of deferred rows (or expiry of a live lease), to know how long to sleep. */
  nextDueAt(campaignId: number): Promise<number | undefined>;
  /** Applies an outcome if this attempt still owns the row; false (changing nothing) when it lost the lease. */
  recordOutcome(update: OutcomeUpdate): Promise<boolean>;
  /**
   * Hands back a leased message that never went on the wire (the run stopped,
   * or its domain paused, while it waited for a connection): back to queued,
   * or deferred if it has attempts, due as before; its last reply and flags
   * stay. False, changing nothing, when this attempt no longer owns the row.
   */
  unlease(messageId: number, attemptId: string, now: number): Promise<boolean>;
  countPossibleDuplicates(campaignId: number): Promise<number>;
  listFailures(campaignId: number): AsyncIterable<FailureRow>;

  loadDomainState(campaignId: number): Promise<PersistedDomainState[]>;
  saveDomainState(campaignId: number, rows: readonly PersistedDomainState[]): Promise<void>;

  // ---- Coordination of several `mailq send` processes (engine/shared-throttle.ts, engine/coordinator.ts).
  // PostgreSQL: implement these four by delegating to src/store/postgres/coordination.ts
  // (pgTakeTokens, pgReturnTokens, pgReportRun, pgRunHealth) and append its
  // PG_COORDINATION_MIGRATION to the PostgreSQL migrations; SQLite: sqlite/coordination.ts.

  /**
   * Atomically refills the (campaignId, key) bucket from the time elapsed
   * since its last refill at limit.perSecond (capped at limit.burst; a new
   * bucket starts full) and takes min(want, whole tokens available). One
   * short write transaction; `now` is the caller's clock (SQLite; PostgreSQL
   * uses the database's clock, since hosts' clocks differ).
   */
  takeTokens(campaignId: number, key: string, want: number, limit: BucketLimit, now: number): Promise<TokenGrant>;
  /** Gives unused granted tokens back (a stopping run), never above limit.burst. */
  returnTokens(campaignId: number, key: string, count: number, limit: BucketLimit, now: number): Promise<void>;
  /** Heartbeat plus the run's figures: sets heartbeat_at (PostgreSQL: database clock), sent, sent_last_minute. */
  reportRun(owner: string, stats: RunStats, now: number): Promise<void>;
  /** Runs of the campaign still open, or finished at or after now - finishedWithinMs, oldest first. */
  runHealth(campaignId: number, now: number, finishedWithinMs: number): Promise<RunHealth[]>;
}

// ---- Reports --------------------------------------------------------------

/** One recipient as `mailq report` exports it: its state and its last outcome. */
export interface ReportRow {
  readonly id: number;
  readonly address: string;
  readonly state: MessageState;
  readonly attempts: number;
  readonly category: string | undefined;
  readonly code: number | undefined;
  readonly reply: string | undefined;
  readonly sentAt: number | undefined;
  /** The Message-ID header the message was sent with. */
  readonly smtpMessageId: string | undefined;
  readonly possibleDuplicate: boolean;
}

export interface ReportSummary {
  readonly counts: StateCounts;
  readonly possibleDuplicates: number;
  /** SMTP attempts logged (every try, including throttled and connection failures). */
  readonly attempts: number;
  /** Earliest attempt start and latest attempt finish: the campaign's sending span. */
  readonly firstAttemptAt: number | undefined;
  readonly lastAttemptAt: number | undefined;
  /** `send`/`resume` runs recorded for the campaign. */
  readonly runs: number;
}

export interface ReportChartQuery {
  /** Attempts grouped by finished_at into buckets of bucketMs from fromMs; none when nothing was attempted. */
  readonly timeline: { readonly fromMs: number; readonly bucketMs: number } | undefined;
  /** Ascending exclusive upper bounds (ms) of the latency buckets; one more bucket holds the rest. */
  readonly latencyBoundsMs: readonly number[];
  readonly topDomains: number;
  readonly topReplies: number;
}

export interface TimelineBucket {
  /** Bucket index: the bucket starts at fromMs + index * bucketMs. */
  readonly index: number;
  readonly sent: number;
  /** Attempts in the bucket that did not end in `sent`. */
  readonly other: number;
}

export interface DomainOutcome {
  readonly domain: string;
  readonly total: number;
  readonly counts: StateCounts;
}

export interface ReplyCount {
  readonly category: string | undefined;
  readonly code: number | undefined;
  readonly reply: string | undefined;
  readonly n: number;
}

export interface ReportCharts {
  readonly timeline: readonly TimelineBucket[];
  /** Attempts by classified category, most frequent first. */
  readonly categories: ReadonlyArray<{ readonly category: string; readonly n: number }>;
  /** The busiest recipient domains with their recipients counted by state. */
  readonly domains: readonly DomainOutcome[];
  /** Sent attempts per latency bucket: latencyBoundsMs.length + 1 counts. */
  readonly latency: readonly number[];
  /** Latency of sent attempts (finished_at - started_at); undefined when nothing was sent. */
  readonly latencyPercentiles: { readonly p50: number; readonly p95: number; readonly max: number } | undefined;
  /** Recipients by number of counted attempts, ascending. */
  readonly attemptsPerRecipient: ReadonlyArray<{ readonly attempts: number; readonly n: number }>;
  /** Last replies of failed and deferred recipients, most frequent first. */
  readonly topReplies: readonly ReplyCount[];
}

// ---- History --------------------------------------------------------------

export interface ImportInfo {
  readonly id: number;
  readonly source: string;
  readonly status: ImportRunStatus;
  readonly startedAt: number;
  readonly finishedAt: number | undefined;
}

/** One row of the append-only attempts log. */
export interface AttemptLogRow {
  readonly attemptId: string;
  readonly runOwner: string;
  /** Host of the run, from the runs table (undefined if the run row is gone). */
  readonly runHost: string | undefined;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly stage: string | undefined;
  readonly code: number | undefined;
  readonly enhanced: string | undefined;
  readonly category: string;
  readonly rule: string | undefined;
  readonly reply: string | undefined;
  readonly bodyWritten: boolean;
  /** The state the attempt left the message in. */
  readonly nextState: MessageState;
  /** Back-off chosen for a deferral: the retry was due at finishedAt + delayMs. */
  readonly delayMs: number | undefined;
}

/** A failed recipient's dead-letter entry. `category` is `render` for a template that did not render. */
export interface FailureInfo {
  readonly category: string;
  readonly reason: string;
  readonly code: number | undefined;
  readonly enhanced: string | undefined;
  readonly reply: string | undefined;
  readonly attempts: number;
  readonly at: number;
}

export interface RecipientHistory {
  readonly message: MessageRow;
  readonly importRun: ImportInfo;
  readonly nextAttemptAt: number;
  readonly leaseOwner: string | undefined;
  readonly possibleDuplicate: boolean;
  readonly smtpMessageId: string | undefined;
  readonly sentAt: number | undefined;
  readonly failure: FailureInfo | undefined;
  readonly attempts: readonly AttemptLogRow[];
}

export interface RejectMatch extends RejectRow {
  readonly importedAt: number;
}

export interface Suppression {
  readonly reason: string;
  readonly createdAt: number;
}

export interface RequeueOptions {
  /** Only failures whose category (FailureInfo.category) is one of these; all when undefined. */
  readonly categories: readonly string[] | undefined;
  /** Also re-queue failed recipients on the suppression list, and remove their suppression entry. */
  readonly includeSuppressed: boolean;
  /** Count only; change nothing. */
  readonly dryRun: boolean;
  /** Campaign settings to store in the same transaction (when something is re-queued). */
  readonly settingsJson: string | undefined;
}

export interface RequeueResult {
  /** Re-queued (or, dry run, to be re-queued) recipients by failure category. */
  readonly requeued: Readonly<Record<string, number>>;
  /** Matching failed recipients left alone because their address is suppressed. */
  readonly keptSuppressed: Readonly<Record<string, number>>;
  /** Suppression entries removed (only with includeSuppressed). */
  readonly unsuppressed: number;
}
