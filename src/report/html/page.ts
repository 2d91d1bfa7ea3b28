/**
 * The HTML report page: a pure function from aggregates to one self-contained
 * document (inline CSS and SVG, no script, no font or image fetched), so it can
 * be archived, mailed or printed as is. Inputs are figures computed by the store
 * (GROUP BY), never per-recipient rows.
 */
import { messageStates, type MessageState, type ReportCharts, type ReportSummary } from '../../store/types.js';
import { barList, columnChart, legend, noData, type BarRow } from './charts.js';
import { duration, esc, num, utc } from './escape.js';
import { CSS, OTHER_ATTEMPTS_COLOR, STATE_COLORS, categoryColor } from './style.js';
import { axisLabels, bucketName, type TimelineAxis } from './timeline.js';

export interface HtmlReportInput {
  readonly campaign: string;
  readonly campaignStatus: string;
  readonly generatedAt: number;
  readonly version: string;
  readonly summary: ReportSummary;
  readonly charts: ReportCharts;
  /** Undefined when nothing has been attempted yet. */
  readonly axis: TimelineAxis | undefined;
  readonly latencyBoundsMs: readonly number[];
}

const MINUTE = 60_000;

function card(value: string, label: string, options: { color?: string; wide?: boolean; title?: string } = {}): string {
  const dot = options.color === undefined ? '' : `<span class="dot" style="background:${options.color}"></span>`;
  const title = options.title === undefined ? '' : ` title="${esc(options.title)}"`;
  return `<div class="card${options.wide === true ? ' wide' : ''}"${title}><div class="v">${value}</div><div class="k">${dot}${esc(label)}</div></div>`;
}

function panel(title: string, note: string, body: string): string {
  return `<section class="panel"><h2>${esc(title)}</h2><p class="note">${esc(note)}</p>${body}</section>`;
}

function total(counts: Readonly<Record<MessageState, number>>): number {
  return messageStates.reduce((a, s) => a + counts[s], 0);
}

function summaryCards(input: HtmlReportInput): string {
  const s = input.summary;
  const c = s.counts;
  const recipients = total(c);
  const cards = [card(num(recipients), 'recipients')];
  for (const state of messageStates) cards.push(card(num(c[state]), state, { color: STATE_COLORS[state] }));
  cards.push(card(num(s.possibleDuplicates), 'possible duplicates', { title: 'the connection dropped after the message body: the server may have received these twice' }));
  const first = s.firstAttemptAt;
  const last = s.lastAttemptAt;
  if (first !== undefined && last !== undefined) {
    const span = Math.max(0, last - first);
    cards.push(card(esc(duration(span)), `sending span: ${spanText(first, last)}`, { wide: true }));
    cards.push(card(span > 0 ? esc(rate((c.sent * MINUTE) / span)) : '—', 'sent per minute, average'));
    const peak = peakPerMinute(input);
    if (peak !== undefined) cards.push(card(esc(rate(peak)), `sent per minute, busiest ${bucketName(input.axis?.bucketMs ?? MINUTE)}`));
  } else {
    cards.push(card('—', 'sending span: nothing sent yet', { wide: true }), card('—', 'sent per minute'));
  }
  cards.push(card(num(s.attempts), 'SMTP attempts'), card(num(s.runs), 'send / resume runs'));
  const p = input.charts.latencyPercentiles;
  cards.push(card(p === undefined ? '—' : esc(`${duration(p.p50)} / ${duration(p.p95)}`), 'latency p50 / p95 (sent)', { wide: true }));
  return `<div class="cards">${cards.join('')}</div>${stateBar(c, recipients)}`;
}

/** "2024-05-01 14:03:07 UTC → 14:05:31 UTC": the date once when both ends share it, seconds for short spans. */
function spanText(first: number, last: number): string {
  const seconds = last - first < 3_600_000;
  const a = utc(first, seconds);
  const b = utc(last, seconds);
  return `${a} → ${a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b}`;
}

function rate(perMinute: number): string {
  return perMinute >= 100 ? num(perMinute) : perMinute.toFixed(perMinute >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';
}

function peakPerMinute(input: HtmlReportInput): number | undefined {
  const axis = input.axis;
  if (axis === undefined || input.charts.timeline.length === 0) return undefined;
  return Math.max(...input.charts.timeline.map((b) => b.sent)) * (MINUTE / axis.bucketMs);
}

function stateBar(counts: Readonly<Record<MessageState, number>>, recipients: number): string {
  if (recipients === 0) return '<div class="statebar" title="no recipients"></div>';
  const spans = messageStates
    .filter((s) => counts[s] > 0)
    .map((s) => `<span style="width:${((counts[s] / recipients) * 100).toFixed(3)}%;background:${STATE_COLORS[s]}" title="${esc(`${s}: ${num(counts[s])}`)}"></span>`);
  return `<div class="statebar" role="img" aria-label="recipients by state">${spans.join('')}</div>`;
}

function timelineChart(input: HtmlReportInput): string {
  const title = 'Sends per minute over time';
  const axis = input.axis;
  if (axis === undefined || input.charts.timeline.length === 0) {
    return panel(title, 'Messages accepted by the server per minute.', noData(title, 'nothing has been attempted yet'));
  }
  // Buckets with no attempt are absent from the SQL result: fill them with zeros.
  const sent = new Array<number>(axis.count).fill(0);
  const other = new Array<number>(axis.count).fill(0);
  const perMinute = MINUTE / axis.bucketMs;
  for (const b of input.charts.timeline) {
    if (b.index < 0 || b.index >= axis.count) continue;
    sent[b.index] = b.sent * perMinute;
    other[b.index] = b.other * perMinute;
  }
  const chart = columnChart({
    title,
    labels: axisLabels(axis),
    series: [
      { name: 'sent', color: STATE_COLORS.sent, values: sent },
      { name: 'other attempts', color: OTHER_ATTEMPTS_COLOR, values: other },
    ],
    yCaption: 'per minute',
    labelEvery: Math.ceil(axis.count / 10),
  });
  const note = `Attempts per minute in ${bucketName(axis.bucketMs)} buckets (UTC), by whether the server accepted the message.`;
  return panel(title, note, chart + legend([{ name: 'sent', color: STATE_COLORS.sent }, { name: 'other attempts (retried, failed, throttled)', color: OTHER_ATTEMPTS_COLOR }]));
}

function categoryChart(charts: ReportCharts): string {
  const title = 'Outcomes by category';
  const note = 'Every SMTP attempt, by the category its reply was classified into.';
  if (charts.categories.length === 0) return panel(title, note, noData(title, 'no attempt has been made yet'));
  const rows: BarRow[] = charts.categories.map((c) => ({
    label: c.category,
    segments: [{ name: 'attempts', color: categoryColor(c.category), value: c.n }],
  }));
  return panel(title, note, barList(title, rows));
}

function domainChart(charts: ReportCharts): string {
  const title = 'Top domains by outcome';
  const note = `The ${charts.domains.length === 1 ? 'recipient domain' : `${charts.domains.length} largest recipient domains`}, recipients by state.`;
  if (charts.domains.length === 0) return panel(title, 'Recipients by domain and state.', noData(title, 'the campaign has no recipients'));
  const used = messageStates.filter((s) => charts.domains.some((d) => d.counts[s] > 0));
  const rows: BarRow[] = charts.domains.map((d) => ({
    label: d.domain,
    segments: used.map((s) => ({ name: s, color: STATE_COLORS[s], value: d.counts[s] })),
  }));
  return panel(title, note, barList(title, rows) + legend(used.map((s) => ({ name: s, color: STATE_COLORS[s] }))));
}

export function latencyLabels(bounds: readonly number[]): string[] {
  const first = bounds[0];
  const last = bounds[bounds.length - 1];
  if (first === undefined || last === undefined) return ['all'];
  const one = (ms: number): string => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);
  // "100–250 ms", "0.5–1 s": short enough for 11 columns side by side.
  const range = (a: number, b: number): string => (b >= 1000 ? `${a / 1000}–${b / 1000} s` : `${a}–${b} ms`);
  return [`< ${one(first)}`, ...bounds.slice(1).map((b, i) => range(bounds[i] ?? 0, b)), `≥ ${one(last)}`];
}

function latencyChart(input: HtmlReportInput): string {
  const title = 'Latency of sent messages';
  const note = 'Time from the start of an attempt to the server\'s final reply, for attempts that ended sent.';
  const counts = input.charts.latency;
  if (counts.every((n) => n === 0)) return panel(title, note, noData(title, 'nothing has been sent yet'));
  return panel(title, note, columnChart({
    title,
    labels: latencyLabels(input.latencyBoundsMs),
    series: [{ name: 'sent attempts', color: '#1e88e5', values: counts }],
    yCaption: 'attempts',
    integer: true,
  }));
}

function retriesChart(charts: ReportCharts): string {
  const title = 'Attempts per recipient';
  const note = 'Recipients by the number of counted attempts (0: not attempted, or suppressed; throttled and connection failures are not counted).';
  const rows = charts.attemptsPerRecipient;
  if (rows.length === 0) return panel(title, note, noData(title, 'the campaign has no recipients'));
  const max = Math.max(...rows.map((r) => r.attempts));
  const values = new Array<number>(max + 1).fill(0);
  for (const r of rows) values[r.attempts] = r.n;
  return panel(title, note, columnChart({
    title,
    labels: values.map((_, i) => String(i)),
    series: [{ name: 'recipients', color: '#5c6bc0', values }],
    yCaption: 'recipients',
    integer: true,
  }));
}

function repliesTable(charts: ReportCharts): string {
  const title = 'Most frequent replies of failed and deferred recipients';
  const note = 'The last reply of each recipient not (yet) delivered, verbatim.';
  if (charts.topReplies.length === 0) return panel(title, note, '<p class="note">none</p>');
  const rows = charts.topReplies.map((r) =>
    `<tr><td class="n">${num(r.n)}</td><td>${esc(r.category ?? '')}</td><td class="n">${r.code === undefined ? '' : esc(r.code)}</td>` +
      `<td class="reply">${esc(r.reply ?? '')}</td></tr>`,
  );
  return panel(title, note, `<table><thead><tr><th>recipients</th><th>category</th><th>code</th><th>reply</th></tr></thead><tbody>${rows.join('')}</tbody></table>`);
}

export function renderHtmlReport(input: HtmlReportInput): string {
  const body = [
    `<h1>Campaign report: ${esc(input.campaign)}</h1>`,
    `<p class="sub">campaign status ${esc(input.campaignStatus)} · generated ${esc(utc(input.generatedAt, true))} by mailq ${esc(input.version)}</p>`,
    summaryCards(input),
    timelineChart(input),
    categoryChart(input.charts),
    domainChart(input.charts),
    latencyChart(input),
    retriesChart(input.charts),
    repliesTable(input.charts),
    `<footer>Times are UTC. Figures count recipients unless they say attempts. This page loads nothing from the network.</footer>`,
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>mailq report: ${esc(input.campaign)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body.join('\n')}
</main>
</body>
</html>
`;
}
