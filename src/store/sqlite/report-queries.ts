/**
 * SQL behind `mailq report`. Per-recipient rows are paged by id (flat memory on
 * a campaign of any size); every chart is a GROUP BY, so the HTML report reads a
 * few hundred aggregate rows whatever the campaign's size. Plain SELECTs with
 * bound parameters and CASE instead of SQLite-only functions, so the PostgreSQL
 * backend can run the same statements.
 *
 * The attempts table has no campaign index (only attempts_message), so each
 * attempts aggregate is one scan of that table: on the order of a second per
 * few million attempts, paid only when a report is asked for.
 */
import type Database from 'better-sqlite3';
import {
  emptyCounts,
  messageStates,
  type DomainOutcome,
  type MessageState,
  type ReportChartQuery,
  type ReportCharts,
  type ReportRow,
  type ReportSummary,
} from '../types.js';

interface ReportRecord {
  id: number;
  address: string;
  state: string;
  attempts: number;
  last_category: string | null;
  last_code: number | null;
  last_reply: string | null;
  sent_at: number | null;
  message_id: string | null;
  possible_duplicate: number;
}

/** The latency of an attempt, as one SQL expression. */
const LATENCY = `(finished_at - started_at)`;

function prepareReports(db: Database.Database) {
  return {
    // `+campaign_id` keeps SQLite off the (campaign_id, address_key) index: with it,
    // every page sorted the whole campaign in a temp b-tree to find the next 1,000
    // ids (a 1,000,000-recipient CSV took 84 s); walking the primary key from the
    // last id takes 3 s. Unary plus is plain SQL, valid in PostgreSQL too.
    rowsPage: db.prepare<[number, number, number], ReportRecord>(
      `SELECT id, address, state, attempts, last_category, last_code, last_reply, sent_at, message_id, possible_duplicate
       FROM messages WHERE +campaign_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ),
    byState: db.prepare<[number], { state: string; n: number }>(
      `SELECT state, count(*) AS n FROM messages WHERE campaign_id = ? GROUP BY state`,
    ),
    possibleDuplicates: db.prepare<[number], { n: number }>(
      `SELECT count(*) AS n FROM messages WHERE campaign_id = ? AND possible_duplicate = 1`,
    ),
    attemptSpan: db.prepare<[number], { n: number; first: number | null; last: number | null }>(
      `SELECT count(*) AS n, min(started_at) AS first, max(finished_at) AS last FROM attempts WHERE campaign_id = ?`,
    ),
    runs: db.prepare<[number], { n: number }>(`SELECT count(*) AS n FROM runs WHERE campaign_id = ?`),
    timeline: db.prepare<{ c: number; from: number; size: number }, { b: number; sent: number; n: number }>(
      // better-sqlite3 binds JS numbers as REAL: without the casts this is a
      // float division and every attempt gets a bucket of its own.
      `SELECT (finished_at - CAST(@from AS BIGINT)) / CAST(@size AS BIGINT) AS b,
              sum(CASE WHEN next_state = 'sent' THEN 1 ELSE 0 END) AS sent, count(*) AS n
       FROM attempts WHERE campaign_id = @c AND finished_at >= @from GROUP BY b ORDER BY b`,
    ),
    categories: db.prepare<[number], { category: string; n: number }>(
      `SELECT category, count(*) AS n FROM attempts WHERE campaign_id = ? GROUP BY category ORDER BY n DESC, category`,
    ),
    domainStates: db.prepare<{ c: number; top: number }, { domain: string; state: string; n: number }>(
      `SELECT domain, state, count(*) AS n FROM messages
       WHERE campaign_id = @c AND domain IN (
         SELECT domain FROM messages WHERE campaign_id = @c GROUP BY domain ORDER BY count(*) DESC, domain LIMIT @top)
       GROUP BY domain, state`,
    ),
    latencyAt: db.prepare<[number, number], { ms: number }>(
      `SELECT ${LATENCY} AS ms FROM attempts WHERE campaign_id = ? AND next_state = 'sent' ORDER BY ms LIMIT 1 OFFSET ?`,
    ),
    attemptsPerRecipient: db.prepare<[number], { attempts: number; n: number }>(
      `SELECT attempts, count(*) AS n FROM messages WHERE campaign_id = ? GROUP BY attempts ORDER BY attempts`,
    ),
    topReplies: db.prepare<[number, number], { category: string | null; code: number | null; reply: string | null; n: number }>(
      `SELECT last_category AS category, last_code AS code, last_reply AS reply, count(*) AS n FROM messages
       WHERE campaign_id = ? AND state IN ('failed','deferred')
       GROUP BY last_category, last_code, last_reply ORDER BY n DESC, last_reply LIMIT ?`,
    ),
  };
}

function toReportRow(r: ReportRecord): ReportRow {
  return {
    id: r.id,
    address: r.address,
    state: r.state as MessageState,
    attempts: r.attempts,
    category: r.last_category ?? undefined,
    code: r.last_code ?? undefined,
    reply: r.last_reply ?? undefined,
    sentAt: r.sent_at ?? undefined,
    smtpMessageId: r.message_id ?? undefined,
    possibleDuplicate: r.possible_duplicate === 1,
  };
}

function isState(s: string): s is MessageState {
  return (messageStates as readonly string[]).includes(s);
}

/** The report statements of one connection; SqliteStore delegates to it. */
export class ReportQueries {
  private readonly q: ReturnType<typeof prepareReports>;
  /** Latency histogram statements by number of bounds (the CASE has one branch per bound). */
  private readonly histograms = new Map<number, Database.Statement<unknown[], { b: number; n: number; top: number }>>();

  constructor(private readonly db: Database.Database) {
    this.q = prepareReports(db);
  }

  rowsPage(campaignId: number, afterId: number, limit: number): ReportRow[] {
    return this.q.rowsPage.all(campaignId, afterId, limit).map(toReportRow);
  }

  summary(campaignId: number): ReportSummary {
    const counts = emptyCounts();
    for (const r of this.q.byState.all(campaignId)) if (isState(r.state)) counts[r.state] = r.n;
    const span = this.q.attemptSpan.get(campaignId);
    return {
      counts,
      possibleDuplicates: this.q.possibleDuplicates.get(campaignId)?.n ?? 0,
      attempts: span?.n ?? 0,
      firstAttemptAt: span?.first ?? undefined,
      lastAttemptAt: span?.last ?? undefined,
      runs: this.q.runs.get(campaignId)?.n ?? 0,
    };
  }

  charts(campaignId: number, query: ReportChartQuery): ReportCharts {
    // One read transaction: every chart describes the same moment even while a send is running.
    return this.db.transaction((): ReportCharts => {
      const t = query.timeline;
      const timeline = t === undefined
        ? []
        : this.q.timeline.all({ c: campaignId, from: t.fromMs, size: t.bucketMs }).map((r) => ({ index: r.b, sent: r.sent, other: r.n - r.sent }));
      const { counts: latency, max } = this.latency(campaignId, query.latencyBoundsMs);
      const sentAttempts = latency.reduce((a, b) => a + b, 0);
      return {
        timeline,
        categories: this.q.categories.all(campaignId),
        domains: this.domains(campaignId, query.topDomains),
        latency,
        latencyPercentiles: sentAttempts === 0
          ? undefined
          : {
              p50: this.latencyRank(campaignId, Math.ceil(sentAttempts * 0.5) - 1),
              p95: this.latencyRank(campaignId, Math.ceil(sentAttempts * 0.95) - 1),
              max,
            },
        attemptsPerRecipient: this.q.attemptsPerRecipient.all(campaignId),
        topReplies: this.q.topReplies.all(campaignId, query.topReplies).map((r) => ({
          category: r.category ?? undefined,
          code: r.code ?? undefined,
          reply: r.reply ?? undefined,
          n: r.n,
        })),
      };
    })();
  }

  private domains(campaignId: number, top: number): DomainOutcome[] {
    const byDomain = new Map<string, Record<MessageState, number>>();
    for (const r of this.q.domainStates.all({ c: campaignId, top })) {
      let counts = byDomain.get(r.domain);
      if (counts === undefined) byDomain.set(r.domain, (counts = emptyCounts()));
      if (isState(r.state)) counts[r.state] = r.n;
    }
    const out = [...byDomain].map(([domain, counts]): DomainOutcome => ({
      domain,
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      counts,
    }));
    return out.sort((a, b) => b.total - a.total || (a.domain < b.domain ? -1 : 1));
  }

  /** Sent attempts per latency bucket, and the slowest (its own max per bucket: no extra scan or sort). */
  private latency(campaignId: number, bounds: readonly number[]): { counts: number[]; max: number } {
    let stmt = this.histograms.get(bounds.length);
    if (stmt === undefined) {
      const branches = bounds.map((_, i) => `WHEN ${LATENCY} < ? THEN ${i}`).join(' ');
      const bucket = bounds.length === 0 ? '0' : `CASE ${branches} ELSE ${bounds.length} END`;
      stmt = this.db.prepare<unknown[], { b: number; n: number; top: number }>(
        `SELECT ${bucket} AS b, count(*) AS n, max(${LATENCY}) AS top FROM attempts
         WHERE campaign_id = ? AND next_state = 'sent' GROUP BY b`,
      );
      this.histograms.set(bounds.length, stmt);
    }
    const counts = new Array<number>(bounds.length + 1).fill(0);
    let max = 0;
    for (const r of stmt.all(...bounds, campaignId)) {
      counts[r.b] = r.n;
      max = Math.max(max, r.top);
    }
    return { counts, max };
  }

  /** The latency at a rank among sent attempts: p50 and p95 are exact, at the cost of a sort each. */
  private latencyRank(campaignId: number, offset: number): number {
    return this.q.latencyAt.get(campaignId, Math.max(0, offset))?.ms ?? 0;
  }
}
