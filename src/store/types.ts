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

/** One recipient row ready to insert: the address already validated and normalized. */
export interface RecipientInsert {
  readonly line: number;
  readonly address: string;
  readonly addressKey: string;
  readonly domain: string;
  /** Per-recipient variables: a JSON array of values aligned with the import run's columns. */
  readonly varsJson: string;
}

export interface RejectInsert {
  readonly line: number;
  readonly raw: string;
  readonly reason: string;
  readonly message: string;
}

export interface BatchResult {
  /** Rows that were new to the campaign. */
  readonly inserted: number;
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
  /** Inserts one batch atomically; duplicates of existing addresses are ignored. */
  insertBatch(run: ImportRun, rows: readonly RecipientInsert[], rejects: readonly RejectInsert[]): Promise<BatchResult>;
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
  countPossibleDuplicates(campaignId: number): Promise<number>;
  listFailures(campaignId: number): AsyncIterable<FailureRow>;

  loadDomainState(campaignId: number): Promise<PersistedDomainState[]>;
  saveDomainState(campaignId: number, rows: readonly PersistedDomainState[]): Promise<void>;
}
