/**
 * SQL behind `mailq report` on PostgreSQL: the statements of
 * src/store/sqlite/report-queries.ts. Rows are paged by id (flat memory);
 * every chart is a GROUP BY, so a report reads a few hundred aggregate rows
 * whatever the campaign's size. The charts run in one REPEATABLE READ
 * transaction, so they describe the same moment while other hosts send.
 */
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
import { statement, type PgDb, type Queryable, type Statement } from './db.js';

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
  possible_duplicate: boolean;
}

/** The latency of an attempt, as one SQL expression. */
const LATENCY = `(finished_at - started_at)`;

const R = {
  rowsPage: statement(
    'report_rows_page',
    `SELECT id, address, state, attempts, last_category, last_code, last_reply, sent_at, message_id, possible_duplicate
     FROM messages WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
  ),
  byState: statement('report_by_state', `SELECT state, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY state`),
  possibleDuplicates: statement(
    'report_possible_duplicates',
    `SELECT count(*) AS n FROM messages WHERE campaign_id = $1 AND possible_duplicate`,
  ),
  attemptSpan: statement(
    'report_attempt_span',
    `SELECT count(*) AS n, min(started_at) AS first, max(finished_at) AS last FROM attempts WHERE campaign_id = $1`,
  ),
  runs: statement('report_runs', `SELECT count(*) AS n FROM runs WHERE campaign_id = $1`),
  // Integer division of bigints: a bucket index, as on SQLite with its casts.
  timeline: statement(
    'report_timeline',
    `SELECT (finished_at - $2::bigint) / $3::bigint AS b,
            count(*) FILTER (WHERE next_state = 'sent') AS sent, count(*) AS n
     FROM attempts WHERE campaign_id = $1 AND finished_at >= $2::bigint GROUP BY b ORDER BY b`,
  ),
  categories: statement(
    'report_categories',
    `SELECT category, count(*) AS n FROM attempts WHERE campaign_id = $1 GROUP BY category ORDER BY n DESC, category`,
  ),
  domainStates: statement(
    'report_domain_states',
    `SELECT domain, state, count(*) AS n FROM messages
     WHERE campaign_id = $1 AND domain IN (
       SELECT domain FROM messages WHERE campaign_id = $1 GROUP BY domain ORDER BY count(*) DESC, domain LIMIT $2)
     GROUP BY domain, state`,
  ),
  latencyAt: statement(
    'report_latency_at',
    `SELECT ${LATENCY} AS ms FROM attempts WHERE campaign_id = $1 AND next_state = 'sent' ORDER BY ms LIMIT 1 OFFSET $2`,
  ),
  attemptsPerRecipient: statement(
    'report_attempts_per_recipient',
    `SELECT attempts, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY attempts ORDER BY attempts`,
  ),
  topReplies: statement(
    'report_top_replies',
    `SELECT last_category AS category, last_code AS code, last_reply AS reply, count(*) AS n FROM messages
     WHERE campaign_id = $1 AND state IN ('failed','deferred')
     GROUP BY last_category, last_code, last_reply ORDER BY n DESC, last_reply LIMIT $2`,
  ),
};

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
    possibleDuplicate: r.possible_duplicate,
  };
}

function isState(s: string): s is MessageState {
  return (messageStates as readonly string[]).includes(s);
}

/** Latency histogram statement for a number of bounds (the CASE has one branch per bound). */
function histogram(bounds: number): Statement {
  const branches = Array.from({ length: bounds }, (_, i) => `WHEN ${LATENCY} < $${i + 2}::bigint THEN ${i}`).join(' ');
  const bucket = bounds === 0 ? '0' : `CASE ${branches} ELSE ${bounds} END`;
  return statement(
    `report_latency_${bounds}`,
    `SELECT ${bucket} AS b, count(*) AS n, max(${LATENCY}) AS top FROM attempts
     WHERE campaign_id = $1 AND next_state = 'sent' GROUP BY b`,
  );
}

export class PgReportQueries {
  constructor(private readonly db: PgDb) {}

  async rowsPage(campaignId: number, afterId: number, limit: number): Promise<ReportRow[]> {
    return (await this.db.rows<ReportRecord>(R.rowsPage, [campaignId, afterId, limit])).map(toReportRow);
  }

  async summary(campaignId: number): Promise<ReportSummary> {
    return this.db.tx(async (q) => {
      const counts = emptyCounts();
      for (const r of await q.rows<{ state: string; n: number }>(R.byState, [campaignId])) if (isState(r.state)) counts[r.state] = r.n;
      const [span] = await q.rows<{ n: number; first: number | null; last: number | null }>(R.attemptSpan, [campaignId]);
      const [dups] = await q.rows<{ n: number }>(R.possibleDuplicates, [campaignId]);
      const [runs] = await q.rows<{ n: number }>(R.runs, [campaignId]);
      return {
        counts,
        possibleDuplicates: dups?.n ?? 0,
        attempts: span?.n ?? 0,
        firstAttemptAt: span?.first ?? undefined,
        lastAttemptAt: span?.last ?? undefined,
        runs: runs?.n ?? 0,
      };
    }, 'snapshot');
  }

  charts(campaignId: number, query: ReportChartQuery): Promise<ReportCharts> {
    return this.db.tx(async (q): Promise<ReportCharts> => {
      const t = query.timeline;
      const timeline = t === undefined
        ? []
        : (await q.rows<{ b: number; sent: number; n: number }>(R.timeline, [campaignId, t.fromMs, t.bucketMs])).map((r) => ({
            index: r.b,
            sent: r.sent,
            other: r.n - r.sent,
          }));
      const { counts: latency, max } = await this.latency(q, campaignId, query.latencyBoundsMs);
      const sentAttempts = latency.reduce((a, b) => a + b, 0);
      const rank = async (offset: number): Promise<number> =>
        (await q.rows<{ ms: number }>(R.latencyAt, [campaignId, Math.max(0, offset)]))[0]?.ms ?? 0;
      return {
        timeline,
        categories: await q.rows<{ category: string; n: number }>(R.categories, [campaignId]),
        domains: await this.domains(q, campaignId, query.topDomains),
        latency,
        latencyPercentiles: sentAttempts === 0
          ? undefined
          : { p50: await rank(Math.ceil(sentAttempts * 0.5) - 1), p95: await rank(Math.ceil(sentAttempts * 0.95) - 1), max },
        attemptsPerRecipient: await q.rows<{ attempts: number; n: number }>(R.attemptsPerRecipient, [campaignId]),
        topReplies: (
          await q.rows<{ category: string | null; code: number | null; reply: string | null; n: number }>(R.topReplies, [campaignId, query.topReplies])
        ).map((r) => ({ category: r.category ?? undefined, code: r.code ?? undefined, reply: r.reply ?? undefined, n: r.n })),
      };
    }, 'snapshot');
  }

  private async domains(q: Queryable, campaignId: number, top: number): Promise<DomainOutcome[]> {
    const byDomain = new Map<string, Record<MessageState, number>>();
    for (const r of await q.rows<{ domain: string; state: string; n: number }>(R.domainStates, [campaignId, top])) {
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
  private async latency(q: Queryable, campaignId: number, bounds: readonly number[]): Promise<{ counts: number[]; max: number }> {
    const counts = new Array<number>(bounds.length + 1).fill(0);
    let max = 0;
    for (const r of await q.rows<{ b: number; n: number; top: number }>(histogram(bounds.length), [campaignId, ...bounds])) {
      counts[r.b] = r.n;
      max = Math.max(max, r.top);
    }
    return { counts, max };
  }
}
