/**
 * The report's look: one inline stylesheet (system fonts, no web fonts) and the
 * colour of each state and category. Light background on screen and paper; bar
 * colours are forced in print (print-color-adjust) because the charts mean
 * nothing in white, and no panel is split across pages.
 */
import type { MessageState } from '../../store/types.js';

export const STATE_COLORS: Readonly<Record<MessageState, string>> = {
  sent: '#2e7d32',
  failed: '#c62828',
  deferred: '#f9a825',
  sending: '#1e88e5',
  queued: '#90a4ae',
  suppressed: '#6d4c41',
  cancelled: '#8e24aa',
};

const CATEGORY_COLORS: Readonly<Record<string, string>> = {
  sent: '#2e7d32',
  retry: '#f9a825',
  throttle: '#ef6c00',
  connection: '#78909c',
  ambiguous: '#7b1fa2',
  'bad-recipient': '#c62828',
  'message-rejected': '#ad1457',
  'sender-blocked': '#4e342e',
  quota: '#00838f',
  fatal: '#212121',
};

export function categoryColor(category: string): string {
  return CATEGORY_COLORS[category] ?? '#607d8b';
}

export const OTHER_ATTEMPTS_COLOR = '#ffb74d';

export const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f6f8; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 0 0 4px; }
.sub { color: #57606a; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin-bottom: 14px; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 10px 12px; break-inside: avoid; page-break-inside: avoid; }
.card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: #57606a; font-size: 12px; }
.card.wide { grid-column: span 2; }
.card .dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 5px; }
.statebar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: #e6e9ed; margin: 4px 0 18px; }
.statebar span { display: block; height: 100%; }
.panel { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 14px 16px 10px; margin: 0 0 14px;
  break-inside: avoid; page-break-inside: avoid; }
.note { color: #57606a; margin: 0 0 8px; font-size: 13px; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-size: 12px; fill: #57606a; font-family: inherit; }
.chart .ytick { text-anchor: end; }
.chart .xtick { text-anchor: middle; }
.chart .rowlabel { text-anchor: end; fill: #1f2328; font-size: 13px; }
.chart .rowvalue { font-variant-numeric: tabular-nums; }
.chart .grid { stroke: #eaeef2; }
.chart .axis { stroke: #8c959f; }
.chart .empty { fill: #fafbfc; stroke: #d8dee4; stroke-dasharray: 6 4; }
.chart .nodata { text-anchor: middle; font-size: 18px; fill: #8c959f; }
.chart .nodatawhy { text-anchor: middle; font-size: 12px; fill: #8c959f; }
.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: #57606a; }
.legend .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { color: #57606a; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reply { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
tr { break-inside: avoid; page-break-inside: avoid; }
footer { color: #57606a; font-size: 12px; margin-top: 18px; }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  .card, .panel { border-color: #bbb; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  @page { margin: 14mm; }
}
`;
