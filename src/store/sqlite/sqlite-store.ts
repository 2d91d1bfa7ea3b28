import type Database from 'better-sqlite3';
import { CACHE_KIB, openSqlite } from './open.js';
import { MESSAGE_COLUMNS, parseStringArray, parseStringRecord, toMessage, type MessageRecord } from './records.js';
import { SqliteSendStore } from './send-store.js';
import { HistoryQueries } from './history-queries.js';
import type { RecipientHistory, RejectMatch, RequeueOptions, RequeueResult, Suppression } from '../types.js';
import { ReportQueries } from './report-queries.js';
import type { ReportChartQuery, ReportCharts, ReportRow, ReportSummary } from '../types.js';
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
  type RecipientInsert,
  type RejectInsert,
  type RejectRow,
  type RunTally,
  type StateCounts,
  type Store,
} from '../types.js';

/** Rows per page when streaming recipients: big enough to amortise the query, small enough to stay flat. */
const PAGE_SIZE = 1000;

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



/**
 * Rows per multi-row INSERT during import: one statement call for 100 rows
 * cut the per-row cost by about a third against one call per row (300
 * bound parameters, far below SQLite's 32,766 limit).
 */
const INSERT_CHUNK = 100;
/** Values bound per row: line, address, vars_json. */
const ROW_VALUES = 3;
const IMPORT_CHECKPOINT_PAGES = 16_384;
const DEFAULT_CHECKPOINT_PAGES = 1000;
/** Log file size kept after a checkpoint once an import's end is in sight: 1,000 pages. */
const ENDING_WAL_BYTES = 4 * 1024 * 1024;
/**
 * Page cache while an import runs, instead of CACHE_KIB: 8 MiB more of it
 * did not make a 1,000,000-row import in file order faster, and it is 8 MiB
 * of the import's 200 MB memory budget. With addresses in random order the
 * import is bound by index pages going to and from the OS either way
 * (16.2-17.0 s with 16 MiB, 18.2-19.4 s with 4 MiB; bench/README.md).
 */
const IMPORT_CACHE_KIB = 8192;
const MESSAGE_INSERT = `INSERT INTO messages (campaign_id, import_run_id, line, address, address_key, domain, vars_json)`;
/**
 * Duplicates: see Store.insertBatch. The update runs only on a conflict
 * within the same run from an earlier line (rare); on 1,000,000 rows this
 * clause cost nothing measurable over INSERT OR IGNORE.
 */
const MESSAGE_CONFLICT = `ON CONFLICT (campaign_id, address_key) DO UPDATE SET
  line = excluded.line, address = excluded.address, domain = excluded.domain, vars_json = excluded.vars_json
  WHERE messages.import_run_id = excluded.import_run_id AND excluded.line < messages.line`;

/** Every statement, prepared once per connection. */
function prepare(db: Database.Database) {
  return {
    campaignByName: db.prepare<[string], CampaignRecord>(`SELECT * FROM campaigns WHERE name = ?`),
    campaignById: db.prepare<[number], CampaignRecord>(`SELECT * FROM campaigns WHERE id = ?`),
    allCampaigns: db.prepare<[], CampaignRecord>(`SELECT * FROM campaigns ORDER BY created_at, id`),
    insertCampaign: db.prepare<[string, number, number, string, string, string, string]>(
      `INSERT INTO campaigns (name, created_at, updated_at, template_json, template_hash, template_source, vars_json)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteCampaign: db.prepare<[number]>(
      `DELETE FROM campaigns WHERE id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE campaign_id = campaigns.id)`,
    ),
    deleteCampaignRuns: db.prepare<[number]>(`DELETE FROM import_runs WHERE campaign_id = ?`),
    deleteCampaignRejects: db.prepare<[number]>(`DELETE FROM import_rejects WHERE campaign_id = ?`),
    countCampaignMessages: db.prepare<[number], { n: number }>(
      `SELECT count(*) AS n FROM messages WHERE campaign_id = ?`,
    ),
    updateTemplate: db.prepare<[string, string, string, number, number]>(
      `UPDATE campaigns SET template_json = ?, template_hash = ?, template_source = ?, updated_at = ? WHERE id = ?`,
    ),
    updateVars: db.prepare<[string, number, number]>(`UPDATE campaigns SET vars_json = ?, updated_at = ? WHERE id = ?`),

    runningImport: db.prepare<[number, string], ImportRunRecord>(
      `SELECT * FROM import_runs WHERE campaign_id = ? AND source = ? AND status = 'running' ORDER BY id DESC LIMIT 1`,
    ),
    insertImport: db.prepare<[number, string, string, number]>(
      `INSERT INTO import_runs (campaign_id, source, status, columns_json, started_at) VALUES (?, ?, 'running', ?, ?)`,
    ),
    importById: db.prepare<[number], ImportRunRecord>(`SELECT * FROM import_runs WHERE id = ?`),
    updateImportColumns: db.prepare<[string, number]>(`UPDATE import_runs SET columns_json = ? WHERE id = ?`),
    finishImport: db.prepare<[number, number, number, number, number, number]>(
      `UPDATE import_runs SET status = 'complete', finished_at = ?, imported = ?, duplicates = ?, rejected = ?, total = ?
       WHERE id = ? AND status = 'running'`,
    ),
    // Rows are appended with id = max(id) + 1 inside the write transaction,
    // so a batch added exactly (max after) - (max before) rows.
    maxMessageId: db.prepare<[], { id: number | null }>(`SELECT max(id) AS id FROM messages`),
    runTally: db.prepare<[number], { imported: number; suppressed: number | null }>(
      `SELECT count(*) AS imported, sum(state = 'suppressed') AS suppressed FROM messages WHERE import_run_id = ?`,
    ),
    failImport: db.prepare<[number, number]>(
      `UPDATE import_runs SET status = 'failed', finished_at = ? WHERE id = ?`,
    ),
    // Rows a failed run added are still `queued`: nothing has leased them,
    // because send refuses a campaign while any of its imports is running.
    deleteRunMessages: db.prepare<[number]>(`DELETE FROM messages WHERE import_run_id = ? AND state IN ('queued','suppressed')`),
    deleteRunRejects: db.prepare<[number]>(`DELETE FROM import_rejects WHERE import_run_id = ?`),
    pendingImports: db.prepare<[number], ImportRunRecord>(
      `SELECT * FROM import_runs WHERE campaign_id = ? AND status = 'running' ORDER BY id`,
    ),
    completeImportColumns: db.prepare<[number], { columns_json: string }>(
      `SELECT columns_json FROM import_runs WHERE campaign_id = ? AND status = 'complete' ORDER BY id`,
    ),

    // Once per import, driven by the (small) suppression list through the unique
    // index, instead of a lookup per inserted row.
    applySuppressions: db.prepare<[number, number]>(
      `UPDATE messages SET state = 'suppressed'
       WHERE campaign_id = ? AND import_run_id = ? AND state = 'queued'
         AND address_key IN (SELECT address_key FROM suppressions)`,
    ),
    insertReject: db.prepare<[number, number, string, number, string, string, string]>(
      `INSERT OR IGNORE INTO import_rejects (campaign_id, import_run_id, source, line, raw, reason, message)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    rejectsPage: db.prepare<[number, number, number], RejectRow & { id: number }>(
      `SELECT id, source, line, raw, reason, message FROM import_rejects
       WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ),
    countRejects: db.prepare<[number], { n: number }>(`SELECT count(*) AS n FROM import_rejects WHERE campaign_id = ?`),

    countByState: db.prepare<[number], { state: string; n: number }>(
      `SELECT state, count(*) AS n FROM messages WHERE campaign_id = ? GROUP BY state`,
    ),
    // `+m.campaign_id` keeps SQLite off the (campaign_id, address_key) index,
    // which made it sort the whole campaign for every page (~0.3 s a page on
    // 1,000,000 recipients); walking ids reads just the page.
    messagesPage: db.prepare<[number, number, number], MessageRecord>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
       WHERE +m.campaign_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`,
    ),
    messageByKey: db.prepare<[number, string], MessageRecord>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
       WHERE m.campaign_id = ? AND m.address_key = ?`,
    ),
    messageByPosition: db.prepare<[number, number], MessageRecord>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN import_runs r ON r.id = m.import_run_id
       WHERE +m.campaign_id = ? ORDER BY m.id LIMIT 1 OFFSET ?`,
    ),
    isSuppressed: db.prepare<[string], { one: number }>(`SELECT 1 AS one FROM suppressions WHERE address_key = ?`),
    addSuppression: db.prepare<[string, string, number]>(
      `INSERT OR IGNORE INTO suppressions (address_key, reason, created_at) VALUES (?, ?, ?)`,
    ),
  };
}

export class SqliteStore extends SqliteSendStore implements Store {
  readonly location: string;
  readonly insertsInProcess = true;
  private readonly q: ReturnType<typeof prepare>;
  private importCache: { runId: number; many: Database.Statement<(string | number)[]>; one: Database.Statement<(string | number)[]> } | undefined;
  /**
   * Rows each import run begun by this connection has added so far, so that
   * finishImport need not count them with a scan of the whole messages table
   * (no index leads with import_run_id): 125-148 ms at the end of a
   * 1,000,000-row import, single-threaded, and longer the more campaigns the
   * file holds. A resumed run is not here: its interrupted attempt (usually
   * another process) added rows this map never saw, so the scan counts it.
   */
  private readonly added = new Map<number, number>();
  /** Import runs whose end is in sight (importEndInSight): checkpointed after every batch. */
  private readonly ending = new Set<number>();
  private readonly history: HistoryQueries;
  private readonly reports: ReportQueries;

  constructor(file: string, options: { now?: () => number } = {}) {
    const db = openSqlite(file);
    super(db, options.now ?? Date.now);
    this.location = file;
    this.q = prepare(this.db);
    this.history = new HistoryQueries(this.db);
    this.reports = new ReportQueries(this.db);
  }

  close(): Promise<void> {
    return this.op(() => {
      if (this.db.open) this.group.flush();
      this.group.close();
      if (this.db.open) this.db.close();
    });
  }

  getCampaign(name: string): Promise<Campaign | undefined> {
    return this.op(() => {
      const r = this.q.campaignByName.get(name);
      return r === undefined ? undefined : toCampaign(r);
    });
  }

  listCampaigns(): Promise<CampaignSummary[]> {
    return this.op(() =>
      this.q.allCampaigns.all().map((r) => ({
        campaign: toCampaign(r),
        counts: this.counts(r.id),
        pendingImports: this.q.pendingImports.all(r.id).length,
      })),
    );
  }

  createCampaign(input: NewCampaign): Promise<Campaign> {
    return this.op(() => {
      const now = this.now();
      const info = this.q.insertCampaign.run(
        input.name,
        now,
        now,
        input.templateJson,
        input.templateHash,
        input.templateSource,
        JSON.stringify(input.vars),
      );
      const r = this.q.campaignById.get(Number(info.lastInsertRowid));
      if (r === undefined) throw new Error('campaign vanished after insert');
      return toCampaign(r);
    });
  }

  deleteEmptyCampaign(id: number): Promise<boolean> {
    return this.op(() =>
      this.db.transaction(() => {
        if ((this.q.countCampaignMessages.get(id)?.n ?? 0) > 0) return false;
        this.q.deleteCampaignRejects.run(id);
        this.q.deleteCampaignRuns.run(id);
        return this.q.deleteCampaign.run(id).changes > 0;
      })(),
    );
  }

  updateTemplate(campaignId: number, templateJson: string, templateHash: string, source: string): Promise<void> {
    return this.op(() => {
      this.q.updateTemplate.run(templateJson, templateHash, source, this.now(), campaignId);
    });
  }

  setCampaignVars(campaignId: number, vars: Readonly<Record<string, string>>): Promise<void> {
    return this.op(() => {
      this.q.updateVars.run(JSON.stringify(vars), this.now(), campaignId);
    });
  }

  beginImport(campaignId: number, source: string, columns: readonly string[]): Promise<ImportRun> {
    this.db.pragma(`cache_size = -${IMPORT_CACHE_KIB}`);
    return this.op(() =>
      this.db.transaction((): ImportRun => {
        const columnsJson = JSON.stringify(columns);
        const existing = this.q.runningImport.get(campaignId, source);
        if (existing !== undefined) {
          this.added.delete(existing.id);
          this.q.updateImportColumns.run(columnsJson, existing.id);
          return toImportRun({ ...existing, columns_json: columnsJson }, true);
        }
        const info = this.q.insertImport.run(campaignId, source, columnsJson, this.now());
        const r = this.q.importById.get(Number(info.lastInsertRowid));
        if (r === undefined) throw new Error('import run vanished after insert');
        this.added.set(r.id, 0);
        return toImportRun(r, false);
      })(),
    );
  }

  insertBatch(run: ImportRun, rows: Iterable<RecipientInsert>, rejects: readonly RejectInsert[]): Promise<void> {
    const { many, one } = this.importStatements(run);
    const { insertReject, maxMessageId } = this.q;
    const args: (string | number)[] = new Array<string | number>(INSERT_CHUNK * ROW_VALUES);
    const tx = this.db.transaction((): void => {
      const before = maxMessageId.get()?.id ?? 0;
      let k = 0;
      for (const row of rows) {
        args[k++] = row.line;
        args[k++] = row.address;
        args[k++] = row.varsJson;
        if (k === args.length) {
          many.run(...args);
          k = 0;
        }
      }
      for (let i = 0; i < k; i += ROW_VALUES) one.run(...args.slice(i, i + ROW_VALUES));
      for (const r of rejects) {
        insertReject.run(run.campaignId, run.id, run.source, r.line, r.raw, r.reason, r.message);
      }
      const added = this.added.get(run.id);
      if (added !== undefined) this.added.set(run.id, added + (maxMessageId.get()?.id ?? 0) - before);
    });
    return this.op(() => {
      // These pragmas are no-ops inside a transaction, so they go around it.
      // Foreign keys: the parents are certain (beginImport made the run), and
      // the two probes per row were ~6% of the insert's CPU. Checkpoints: each
      // 10,000-row batch adds ~700 WAL pages, so the default (1,000 pages)
      // checkpointed, with its fsyncs, after nearly every batch; 16,384 pages
      // (64 MiB of WAL) does it every ~20 batches. finishImport commits with
      // the defaults back, which checkpoints what is left; once the end is in
      // sight the default applies to the batches too, so little is left.
      this.db.pragma('foreign_keys = OFF');
      this.db.pragma(`wal_autocheckpoint = ${this.ending.has(run.id) ? DEFAULT_CHECKPOINT_PAGES : IMPORT_CHECKPOINT_PAGES}`);
      try {
        // IMMEDIATE: the batch reads max(id) before it writes, so it takes the
        // write lock first (a deferred read snapshot could not be upgraded
        // after another process committed, e.g. a send on another campaign).
        return tx.immediate();
      } finally {
        this.db.pragma(`wal_autocheckpoint = ${DEFAULT_CHECKPOINT_PAGES}`);
        this.db.pragma('foreign_keys = ON');
      }
    });
  }

  /**
   * The row inserts of one import run. The campaign and run ids are written
   * into the SQL, and the key and the domain are derived from the address
   * there (see RecipientInsert): three values bound per row instead of seven.
   * `WHERE true` tells the parser that ON CONFLICT is the upsert clause.
   */
  private importStatements(run: ImportRun): { many: Database.Statement<(string | number)[]>; one: Database.Statement<(string | number)[]> } {
    if (this.importCache?.runId !== run.id) {
      const insert = (rows: number): string =>
        `${MESSAGE_INSERT}
         SELECT ${Number(run.campaignId)}, ${Number(run.id)}, column1, column2, lower(column2), substr(column2, instr(column2, '@') + 1), column3
         FROM (VALUES ${Array.from({ length: rows }, () => '(?, ?, ?)').join(', ')}) WHERE true
         ${MESSAGE_CONFLICT}`;
      this.importCache = {
        runId: run.id,
        many: this.db.prepare<(string | number)[]>(insert(INSERT_CHUNK)),
        one: this.db.prepare<(string | number)[]>(insert(1)),
      };
    }
    return this.importCache;
  }

  /**
   * Copies the write-ahead log into the database file now, and after every
   * later batch of the run, instead of leaving it to finishImport's commit,
   * which runs alone: with 16,384-page checkpoints the log held ~8,000 pages
   * on average at the end, 57-87 ms of copying on 1,000,000 rows. PASSIVE:
   * it never waits for a reader. The size limit has the next batch cut the
   * log file (64 MiB by then) down to 4 MiB: deleting it whole when the
   * database closes took 27 ms of the 32 the close took, at the very end.
   */
  importEndInSight(runId: number): Promise<void> {
    return this.op(() => {
      this.ending.add(runId);
      this.db.pragma('wal_checkpoint(PASSIVE)');
      this.db.pragma(`journal_size_limit = ${ENDING_WAL_BYTES}`);
    });
  }

  finishImport(runId: number, counts: { readonly rejected: number; readonly total: number }): Promise<RunTally> {
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    return this.op(() =>
      this.db.transaction((): RunTally => {
        const run = this.q.importById.get(runId);
        const suppressed = run === undefined ? 0 : this.q.applySuppressions.run(run.campaign_id, runId).changes;
        const added = this.added.get(runId);
        this.added.delete(runId);
        this.ending.delete(runId);
        // applySuppressions runs once per run, here: what it changed is all the run has suppressed.
        const t = added !== undefined ? { imported: added, suppressed } : (this.q.runTally.get(runId) ?? { imported: 0, suppressed: 0 });
        const duplicates = Math.max(0, counts.total - counts.rejected - t.imported);
        this.q.finishImport.run(this.now(), t.imported, duplicates, counts.rejected, counts.total, runId);
        return { imported: t.imported, duplicates, suppressed: t.suppressed ?? 0 };
      })(),
    );
  }

  abortImport(runId: number): Promise<void> {
    this.added.delete(runId);
    this.ending.delete(runId);
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    return this.op(() =>
      this.db.transaction(() => {
        this.q.deleteRunMessages.run(runId);
        this.q.deleteRunRejects.run(runId);
        this.q.failImport.run(this.now(), runId);
      })(),
    );
  }

  pendingImports(campaignId: number): Promise<ImportRun[]> {
    return this.op(() => this.q.pendingImports.all(campaignId).map((r) => toImportRun(r, false)));
  }

  campaignColumns(campaignId: number): Promise<string[]> {
    return this.op(() => {
      const seen = new Set<string>();
      for (const r of this.q.completeImportColumns.all(campaignId)) {
        for (const c of parseStringArray(r.columns_json)) seen.add(c);
      }
      return [...seen];
    });
  }

  async *listRejects(campaignId: number): AsyncIterable<RejectRow> {
    let after = 0;
    for (;;) {
      const page = await this.op(() => this.q.rejectsPage.all(campaignId, after, PAGE_SIZE));
      for (const r of page) {
        yield { source: r.source, line: r.line, raw: r.raw, reason: r.reason, message: r.message };
      }
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  countRejects(campaignId: number): Promise<number> {
    return this.op(() => this.q.countRejects.get(campaignId)?.n ?? 0);
  }

  private counts(campaignId: number): StateCounts {
    const counts = emptyCounts();
    for (const r of this.q.countByState.all(campaignId)) {
      if ((messageStates as readonly string[]).includes(r.state)) counts[r.state as MessageState] = r.n;
    }
    return counts;
  }

  countByState(campaignId: number): Promise<StateCounts> {
    return this.op(() => this.counts(campaignId));
  }

  async *iterateMessages(
    campaignId: number,
    options: { states?: readonly MessageState[] } = {},
  ): AsyncIterable<MessageRow> {
    const wanted = options.states === undefined ? undefined : new Set<string>(options.states);
    let after = 0;
    for (;;) {
      const page = await this.op(() => this.q.messagesPage.all(campaignId, after, PAGE_SIZE));
      for (const r of page) {
        if (wanted === undefined || wanted.has(r.state)) yield toMessage(r);
      }
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  findMessageByKey(campaignId: number, addressKey: string): Promise<MessageRow | undefined> {
    return this.op(() => {
      const r = this.q.messageByKey.get(campaignId, addressKey);
      return r === undefined ? undefined : toMessage(r);
    });
  }

  findMessageByPosition(campaignId: number, position: number): Promise<MessageRow | undefined> {
    return this.op(() => {
      if (!Number.isInteger(position) || position < 1) return undefined;
      const r = this.q.messageByPosition.get(campaignId, position - 1);
      return r === undefined ? undefined : toMessage(r);
    });
  }

  isSuppressed(addressKey: string): Promise<boolean> {
    return this.op(() => this.q.isSuppressed.get(addressKey) !== undefined);
  }

  addSuppression(addressKey: string, reason: string): Promise<void> {
    return this.op(() => {
      this.q.addSuppression.run(addressKey, reason, this.now());
    });
  }

  // ---- History (SQL in history-queries.ts)

  recipientHistory(campaignId: number, addressKey: string): Promise<RecipientHistory | undefined> {
    return this.op(() => this.history.recipientHistory(campaignId, addressKey));
  }

  findRejects(campaignId: number, text: string): Promise<RejectMatch[]> {
    return this.op(() => this.history.findRejects(campaignId, text));
  }

  getSuppression(addressKey: string): Promise<Suppression | undefined> {
    return this.op(() => this.history.getSuppression(addressKey));
  }

  requeueFailed(campaignId: number, options: RequeueOptions): Promise<RequeueResult> {
    return this.op(() => this.history.requeueFailed(campaignId, options, this.now()));
  }

  // ---- Reports (SQL in report-queries.ts)

  async *iterateReportRows(campaignId: number): AsyncIterable<ReportRow> {
    let after = 0;
    for (;;) {
      const page = await this.op(() => this.reports.rowsPage(campaignId, after, PAGE_SIZE));
      yield* page;
      const last = page[page.length - 1];
      if (last === undefined || page.length < PAGE_SIZE) return;
      after = last.id;
    }
  }

  reportSummary(campaignId: number): Promise<ReportSummary> {
    return this.op(() => this.reports.summary(campaignId));
  }

  reportCharts(campaignId: number, query: ReportChartQuery): Promise<ReportCharts> {
    return this.op(() => this.reports.charts(campaignId, query));
  }
}
