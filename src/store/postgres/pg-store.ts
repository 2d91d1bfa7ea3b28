import {
  emptyCounts,
  messageStates,
  type Campaign,
  type CampaignStatus,
  type CampaignSummary,
  type ImportRun,
  type ImportRunStatus,
  type MessageRow,
  type MessageState,
  type NewCampaign,
  type RecipientHistory,
  type RecipientInsert,
  type RejectInsert,
  type RejectMatch,
  type RejectRow,
  type ReportChartQuery,
  type ReportCharts,
  type ReportRow,
  type ReportSummary,
  type RequeueOptions,
  type RequeueResult,
  type RunTally,
  type StateCounts,
  type Store,
  type Suppression,
} from '../types.js';
import { PgDb, statement } from './db.js';
import { PgHistoryQueries } from './history-queries.js';
import { insertRecipients, insertRejects, type ImportMethod } from './import-batch.js';
import { MESSAGE_COLUMNS, parseStringArray, parseStringRecord, toMessage, type MessageRecord } from './records.js';
import { PgReportQueries } from './report-queries.js';
import { PgSendStore } from './send-store.js';
import { parsePgUrl } from './url.js';

/** Rows per page when streaming recipients: big enough to amortise the query, small enough to stay flat. */
const PAGE_SIZE = 1000;

/**
 * The import method used unless told otherwise: the fastest of the three on
 * 100,000 rows (import-batch.ts; figures in docs/pg-part.md).
 */
export const DEFAULT_IMPORT_METHOD: ImportMethod = 'copy';

interface CampaignRecord {
  id: number;
  name: string;
  created_at: number;
  status: string;
  template_json: string;
  template_hash: string;
  template_source: string;
  vars_json: string;
}

interface ImportRunRecord {
  id: number;
  campaign_id: number;
  source: string;
  status: string;
  columns_json: string;
}

function toCampaign(r: CampaignRecord): Campaign {
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    status: r.status as CampaignStatus,
    templateJson: r.template_json,
    templateHash: r.template_hash,
    templateSource: r.template_source,
    vars: parseStringRecord(r.vars_json),
  };
}

function toImportRun(r: ImportRunRecord, resumed: boolean): ImportRun {
  return {
    id: r.id,
    campaignId: r.campaign_id,
    source: r.source,
    status: r.status as ImportRunStatus,
    columns: parseStringArray(r.columns_json),
    resumed,
  };
}

const CAMPAIGN = `id, name, created_at, status, template_json, template_hash, template_source, vars_json`;
const RUN = `id, campaign_id, source, status, columns_json`;

const Q = {
  campaignByName: statement('campaign_by_name', `SELECT ${CAMPAIGN} FROM campaigns WHERE name = $1`),
  allCampaigns: statement('all_campaigns', `SELECT ${CAMPAIGN} FROM campaigns ORDER BY created_at, id`),
  insertCampaign: statement(
    'insert_campaign',
    `INSERT INTO campaigns (name, created_at, updated_at, template_json, template_hash, template_source, vars_json)
     VALUES ($1, $2, $2, $3, $4, $5, $6) RETURNING ${CAMPAIGN}`,
  ),
  lockCampaign: statement('lock_campaign', `SELECT id FROM campaigns WHERE id = $1 FOR UPDATE`),
  hasMessages: statement('has_messages', `SELECT 1 FROM messages WHERE campaign_id = $1 LIMIT 1`),
  deleteCampaignRejects: statement('delete_campaign_rejects', `DELETE FROM import_rejects WHERE campaign_id = $1`),
  deleteCampaignRuns: statement('delete_campaign_runs', `DELETE FROM import_runs WHERE campaign_id = $1`),
  deleteCampaign: statement('delete_campaign', `DELETE FROM campaigns WHERE id = $1`),
  updateTemplate: statement(
    'update_template',
    `UPDATE campaigns SET template_json = $1, template_hash = $2, template_source = $3, updated_at = $4 WHERE id = $5`,
  ),
  updateVars: statement('update_vars', `UPDATE campaigns SET vars_json = $1, updated_at = $2 WHERE id = $3`),

  // FOR UPDATE: two hosts resuming the same interrupted import take turns instead of both adding a run.
  runningImport: statement(
    'running_import',
    `SELECT ${RUN} FROM import_runs WHERE campaign_id = $1 AND source = $2 AND status = 'running' ORDER BY id DESC LIMIT 1 FOR UPDATE`,
  ),
  insertImport: statement(
    'insert_import',
    `INSERT INTO import_runs (campaign_id, source, status, columns_json, started_at) VALUES ($1, $2, 'running', $3, $4) RETURNING ${RUN}`,
  ),
  importById: statement('import_by_id', `SELECT ${RUN} FROM import_runs WHERE id = $1`),
  updateImportColumns: statement('update_import_columns', `UPDATE import_runs SET columns_json = $1 WHERE id = $2`),
  // Once per import, driven by the (small) suppression list, instead of a lookup per inserted row.
  applySuppressions: statement(
    'apply_suppressions',
    `UPDATE messages SET state = 'suppressed'
     WHERE campaign_id = $1 AND import_run_id = $2 AND state = 'queued'
       AND address_key IN (SELECT address_key FROM suppressions)`,
  ),
  runTally: statement(
    'run_tally',
    `SELECT count(*) AS imported, count(*) FILTER (WHERE state = 'suppressed') AS suppressed FROM messages WHERE import_run_id = $1`,
  ),
  finishImport: statement(
    'finish_import',
    `UPDATE import_runs SET status = 'complete', finished_at = $1, imported = $2, duplicates = $3, rejected = $4, total = $5
     WHERE id = $6 AND status = 'running'`,
  ),
  // Rows a failed run added are still `queued`: send refuses a campaign while any of its imports is running.
  deleteRunMessages: statement('delete_run_messages', `DELETE FROM messages WHERE import_run_id = $1 AND state IN ('queued','suppressed')`),
  deleteRunRejects: statement('delete_run_rejects', `DELETE FROM import_rejects WHERE import_run_id = $1`),
  failImport: statement('fail_import', `UPDATE import_runs SET status = 'failed', finished_at = $1 WHERE id = $2`),
  pendingImports: statement('pending_imports', `SELECT ${RUN} FROM import_runs WHERE campaign_id = $1 AND status = 'running' ORDER BY id`),
  completeImportColumns: statement(
    'complete_import_columns',
    `SELECT columns_json FROM import_runs WHERE campaign_id = $1 AND status = 'complete' ORDER BY id`,
  ),

  rejectsPage: statement(
    'rejects_page',
    `SELECT id, source, line, raw, reason, message FROM import_rejects WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
  ),
  countRejects: statement('count_rejects', `SELECT count(*) AS n FROM import_rejects WHERE campaign_id = $1`),
  countByState: statement('count_by_state', `SELECT state, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY state`),
  messagesPage: statement(
    'messages_page',
    `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
     WHERE m.campaign_id = $1 AND m.id > $2 AND ($4::text[] IS NULL OR m.state = ANY($4::text[]))
     ORDER BY m.id LIMIT $3`,
  ),
  messageByKey: statement(
    'message_by_key',
    `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
     WHERE m.campaign_id = $1 AND m.address_key = $2`,
  ),
  messageByPosition: statement(
    'message_by_position',
    `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
     WHERE m.campaign_id = $1 ORDER BY m.id LIMIT 1 OFFSET $2`,
  ),
  isSuppressed: statement('is_suppressed', `SELECT 1 AS one FROM suppressions WHERE address_key = $1`),
  addSuppression: statement(
    'add_suppression',
    `INSERT INTO suppressions (address_key, reason, created_at) VALUES ($1, $2, $3) ON CONFLICT (address_key) DO NOTHING`,
  ),
};

export interface PgStoreOptions {
  readonly now?: () => number;
  /** How import batches are written (import-batch.ts); the default is the measured fastest. */
  readonly importMethod?: ImportMethod;
}

/**
 * The PostgreSQL backend: the same Store as SQLite, shared by every host that
 * points --db at the same database and schema. Connects (and migrates) on
 * first use, so opening stays synchronous.
 */
export class PgStore extends PgSendStore implements Store {
  readonly location: string;
  readonly insertsInProcess = false;
  private readonly history: PgHistoryQueries;
  private readonly reports: PgReportQueries;
  private readonly importMethod: ImportMethod;

  constructor(url: string, env: NodeJS.ProcessEnv = process.env, options: PgStoreOptions = {}) {
    const target = parsePgUrl(url, env);
    super(new PgDb(target), options.now ?? Date.now);
    this.location = target.location;
    this.importMethod = options.importMethod ?? DEFAULT_IMPORT_METHOD;
    this.history = new PgHistoryQueries(this.db);
    this.reports = new PgReportQueries(this.db);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async getCampaign(name: string): Promise<Campaign | undefined> {
    const r = await this.db.one<CampaignRecord>(Q.campaignByName, [name]);
    return r === undefined ? undefined : toCampaign(r);
  }

  async listCampaigns(): Promise<CampaignSummary[]> {
    const campaigns = await this.db.rows<CampaignRecord>(Q.allCampaigns);
    return Promise.all(
      campaigns.map(async (r) => ({
        campaign: toCampaign(r),
        counts: await this.countByState(r.id),
        pendingImports: (await this.db.rows(Q.pendingImports, [r.id])).length,
      })),
    );
  }

  async createCampaign(input: NewCampaign): Promise<Campaign> {
    const r = await this.db.one<CampaignRecord>(Q.insertCampaign, [
      input.name,
      this.now(),
      input.templateJson,
      input.templateHash,
      input.templateSource,
      JSON.stringify(input.vars),
    ]);
    if (r === undefined) throw new Error('campaign vanished after insert');
    return toCampaign(r);
  }

  deleteEmptyCampaign(id: number): Promise<boolean> {
    return this.db.tx(async (q) => {
      if ((await q.count(Q.lockCampaign, [id])) === 0) return false;
      if ((await q.count(Q.hasMessages, [id])) > 0) return false;
      await q.count(Q.deleteCampaignRejects, [id]);
      await q.count(Q.deleteCampaignRuns, [id]);
      return (await q.count(Q.deleteCampaign, [id])) > 0;
    });
  }

  async updateTemplate(campaignId: number, templateJson: string, templateHash: string, source: string): Promise<void> {
    await this.db.count(Q.updateTemplate, [templateJson, templateHash, source, this.now(), campaignId]);
  }

  async setCampaignVars(campaignId: number, vars: Readonly<Record<string, string>>): Promise<void> {
    await this.db.count(Q.updateVars, [JSON.stringify(vars), this.now(), campaignId]);
  }

  beginImport(campaignId: number, source: string, columns: readonly string[]): Promise<ImportRun> {
    const columnsJson = JSON.stringify(columns);
    return this.db.tx(async (q) => {
      const [existing] = await q.rows<ImportRunRecord>(Q.runningImport, [campaignId, source]);
      if (existing !== undefined) {
        await q.count(Q.updateImportColumns, [columnsJson, existing.id]);
        return toImportRun({ ...existing, columns_json: columnsJson }, true);
      }
      const [r] = await q.rows<ImportRunRecord>(Q.insertImport, [campaignId, source, columnsJson, this.now()]);
      if (r === undefined) throw new Error('import run vanished after insert');
      return toImportRun(r, false);
    });
  }

  insertBatch(run: ImportRun, rows: Iterable<RecipientInsert>, rejects: readonly RejectInsert[]): Promise<void> {
    return this.db.tx(async (q, client) => {
      // A batch need not wait for its WAL flush (100 flushes on 1,000,000
      // rows; the import went from 12.4 s to 10.9 s of database time). Safe:
      // a server crash can lose only the last batches' commits, never half of
      // one, and the run is still `running`, so re-running the import adds
      // them; finishImport commits synchronously, which flushes every batch
      // before the run is marked complete.
      await client.query('SET LOCAL synchronous_commit = off');
      await insertRecipients(this.importMethod, client, q, run, rows);
      await insertRejects(q, run, rejects);
    });
  }

  /** Nothing to do ahead: the server does its own checkpoints. */
  importEndInSight(_runId: number): Promise<void> {
    return Promise.resolve();
  }

  finishImport(runId: number, counts: { readonly rejected: number; readonly total: number }): Promise<RunTally> {
    return this.db.tx(async (q) => {
      const [run] = await q.rows<ImportRunRecord>(Q.importById, [runId]);
      if (run !== undefined) await q.count(Q.applySuppressions, [run.campaign_id, runId]);
      const [t] = await q.rows<{ imported: number; suppressed: number }>(Q.runTally, [runId]);
      const imported = t?.imported ?? 0;
      const duplicates = Math.max(0, counts.total - counts.rejected - imported);
      await q.count(Q.finishImport, [this.now(), imported, duplicates, counts.rejected, counts.total, runId]);
      return { imported, duplicates, suppressed: t?.suppressed ?? 0 };
    });
  }

  abortImport(runId: number): Promise<void> {
    return this.db.tx(async (q) => {
      await q.count(Q.deleteRunMessages, [runId]);
      await q.count(Q.deleteRunRejects, [runId]);
      await q.count(Q.failImport, [this.now(), runId]);
    });
  }

  async pendingImports(campaignId: number): Promise<ImportRun[]> {
    return (await this.db.rows<ImportRunRecord>(Q.pendingImports, [campaignId])).map((r) => toImportRun(r, false));
  }

  async campaignColumns(campaignId: number): Promise<string[]> {
    const seen = new Set<string>();
    for (const r of await this.db.rows<{ columns_json: string }>(Q.completeImportColumns, [campaignId])) {
      for (const c of parseStringArray(r.columns_json)) seen.add(c);
    }
    return [...seen];
  }

  async *listRejects(campaignId: number): AsyncIterable<RejectRow> {
    let after = 0;
    for (;;) {
      const page = await this.db.rows<RejectRow & { id: number }>(Q.rejectsPage, [campaignId, after, PAGE_SIZE]);
      for (const r of page) yield { source: r.source, line: r.line, raw: r.raw, reason: r.reason, message: r.message };
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  async countRejects(campaignId: number): Promise<number> {
    return (await this.db.one<{ n: number }>(Q.countRejects, [campaignId]))?.n ?? 0;
  }

  async countByState(campaignId: number): Promise<StateCounts> {
    const counts = emptyCounts();
    for (const r of await this.db.rows<{ state: string; n: number }>(Q.countByState, [campaignId])) {
      if ((messageStates as readonly string[]).includes(r.state)) counts[r.state as MessageState] = r.n;
    }
    return counts;
  }

  async *iterateMessages(campaignId: number, options: { states?: readonly MessageState[] } = {}): AsyncIterable<MessageRow> {
    const states = options.states === undefined ? null : [...options.states];
    let after = 0;
    for (;;) {
      const page = await this.db.rows<MessageRecord>(Q.messagesPage, [campaignId, after, PAGE_SIZE, states]);
      for (const r of page) yield toMessage(r);
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  async findMessageByKey(campaignId: number, addressKey: string): Promise<MessageRow | undefined> {
    const r = await this.db.one<MessageRecord>(Q.messageByKey, [campaignId, addressKey]);
    return r === undefined ? undefined : toMessage(r);
  }

  async findMessageByPosition(campaignId: number, position: number): Promise<MessageRow | undefined> {
    if (!Number.isInteger(position) || position < 1) return undefined;
    const r = await this.db.one<MessageRecord>(Q.messageByPosition, [campaignId, position - 1]);
    return r === undefined ? undefined : toMessage(r);
  }

  async isSuppressed(addressKey: string): Promise<boolean> {
    return (await this.db.one(Q.isSuppressed, [addressKey])) !== undefined;
  }

  async addSuppression(addressKey: string, reason: string): Promise<void> {
    await this.db.count(Q.addSuppression, [addressKey, reason, this.now()]);
  }

  // ---- History (SQL in history-queries.ts)

  recipientHistory(campaignId: number, addressKey: string): Promise<RecipientHistory | undefined> {
    return this.history.recipientHistory(campaignId, addressKey);
  }

  findRejects(campaignId: number, text: string): Promise<RejectMatch[]> {
    return this.history.findRejects(campaignId, text);
  }

  getSuppression(addressKey: string): Promise<Suppression | undefined> {
    return this.history.getSuppression(addressKey);
  }

  requeueFailed(campaignId: number, options: RequeueOptions): Promise<RequeueResult> {
    return this.history.requeueFailed(campaignId, options, this.now());
  }

  // ---- Reports (SQL in report-queries.ts)

  async *iterateReportRows(campaignId: number): AsyncIterable<ReportRow> {
    let after = 0;
    for (;;) {
      const page = await this.reports.rowsPage(campaignId, after, PAGE_SIZE);
      yield* page;
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  reportSummary(campaignId: number): Promise<ReportSummary> {
    return this.reports.summary(campaignId);
  }

  reportCharts(campaignId: number, query: ReportChartQuery): Promise<ReportCharts> {
    return this.reports.charts(campaignId, query);
  }
}
