/**
 * `mailq report --format html`: asks the store for the summary and the chart
 * aggregates (GROUP BY in the database, a few hundred rows whatever the
 * campaign's size) and renders the self-contained page.
 */
import type { Campaign, ReportChartQuery, Store } from '../store/types.js';
import { renderHtmlReport } from './html/page.js';
import { chooseAxis } from './html/timeline.js';

/**
 * Latency buckets (ms): a local sink answers in a few ms, a busy provider in a
 * few hundred, a tarpit in tens of seconds; roughly doubling steps cover that
 * range in 11 columns.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];

/** Bars in the domains chart and rows in the replies table: enough to see the shape, short enough to print. */
const TOP_DOMAINS = 10;
const TOP_REPLIES = 10;

export interface HtmlReportOptions {
  readonly now: () => number;
  readonly version: string;
}

export async function buildHtmlReport(store: Store, campaign: Campaign, options: HtmlReportOptions): Promise<string> {
  const summary = await store.reportSummary(campaign.id);
  const axis = summary.firstAttemptAt === undefined || summary.lastAttemptAt === undefined
    ? undefined
    : chooseAxis(summary.firstAttemptAt, summary.lastAttemptAt);
  const query: ReportChartQuery = {
    timeline: axis === undefined ? undefined : { fromMs: axis.fromMs, bucketMs: axis.bucketMs },
    latencyBoundsMs: LATENCY_BOUNDS_MS,
    topDomains: TOP_DOMAINS,
    topReplies: TOP_REPLIES,
  };
  const charts = await store.reportCharts(campaign.id, query);
  return renderHtmlReport({
    campaign: campaign.name,
    campaignStatus: campaign.status,
    generatedAt: options.now(),
    version: options.version,
    summary,
    charts,
    axis,
    latencyBoundsMs: LATENCY_BOUNDS_MS,
  });
}
