/**
 * Inline SVG charts for the HTML report: no script, no external resource, so
 * the page renders the same offline, in a mail attachment and on paper. Each
 * chart scales with its container through a viewBox; bars carry a <title> so
 * hovering shows the exact figure. Every label goes through esc().
 */
import { esc, num } from './escape.js';

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly values: readonly number[];
}

export interface Segment {
  readonly name: string;
  readonly color: string;
  readonly value: number;
}

export interface ColumnChartSpec {
  /** Read by screen readers and shown on hover. */
  readonly title: string;
  /** One label per column. */
  readonly labels: readonly string[];
  /** Stacked bottom to top in this order; every series has one value per column. */
  readonly series: readonly Series[];
  /** Caption of the y axis, e.g. "per minute". */
  readonly yCaption: string;
  /** Show every n-th x label (long time axes); default 1. */
  readonly labelEvery?: number;
  /** Counts: no fractional gridlines (a step of at least 1). */
  readonly integer?: boolean;
}

const W = 1000;

/** The smallest "nice" step (1, 2, 2.5, 5 x 10^k) at least `raw`. */
export function niceStep(raw: number, integer = false): number {
  if (!(raw > 0)) return 1;
  if (integer && raw <= 1) return 1;
  const pow = 10 ** Math.floor(Math.log10(raw));
  // 2.5 would put counts on fractional gridlines below 10.
  const steps = integer && pow < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  for (const m of steps) if (m * pow >= raw - 1e-9) return m * pow;
  return 10 * pow;
}

function axisNumber(v: number): string {
  return Number.isInteger(v) ? num(v) : v.toFixed(v < 1 ? 2 : 1).replace(/\.?0+$/, '');
}

function round1(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

/** Stacked columns with a y axis and gridlines: time series and histograms. */
export function columnChart(spec: ColumnChartSpec): string {
  const H = 280;
  const left = 64;
  const right = 12;
  const top = 16;
  const bottom = 44;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const n = spec.labels.length;
  const totals = spec.labels.map((_, i) => spec.series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
  const max = Math.max(0, ...totals);
  const step = niceStep(max / 4, spec.integer === true);
  const yMax = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const parts: string[] = [];
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    parts.push(
      `<line class="grid" x1="${left}" x2="${W - right}" y1="${round1(y(v))}" y2="${round1(y(v))}"/>`,
      `<text class="ytick" x="${left - 8}" y="${round1(y(v) + 4)}">${esc(axisNumber(v))}</text>`,
    );
  }
  const colW = n === 0 ? plotW : plotW / n;
  // Capped so a chart with two or three columns does not draw slabs.
  const barW = Math.min(60, Math.max(1, colW * 0.78));
  const every = Math.max(1, spec.labelEvery ?? 1);
  spec.labels.forEach((label, i) => {
    const x = left + i * colW + (colW - barW) / 2;
    let base = 0;
    for (const s of spec.series) {
      const v = s.values[i] ?? 0;
      if (v > 0) {
        const y1 = y(base + v);
        const h = Math.max(0.5, y(base) - y1);
        parts.push(
          `<rect x="${round1(x)}" y="${round1(y1)}" width="${round1(barW)}" height="${round1(h)}" fill="${s.color}">` +
            `<title>${esc(`${label}: ${s.name} ${axisNumber(v)}`)}</title></rect>`,
        );
      }
      base += v;
    }
    if (i % every === 0) {
      parts.push(`<text class="xtick" x="${round1(left + i * colW + colW / 2)}" y="${H - bottom + 18}">${esc(label)}</text>`);
    }
  });
  parts.push(
    `<line class="axis" x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}"/>`,
    `<text class="ycaption" x="${left}" y="${top - 4}">${esc(spec.yCaption)}</text>`,
  );
  return svg(spec.title, H, parts);
}

export interface BarRow {
  readonly label: string;
  readonly segments: readonly Segment[];
}

/** Horizontal bars, one per row, segments stacked left to right, total at the end. */
export function barList(title: string, rows: readonly BarRow[]): string {
  const rowH = 28;
  const labelW = 240;
  const valueW = 90;
  const H = rows.length * rowH + 8;
  const max = Math.max(1, ...rows.map((r) => r.segments.reduce((a, s) => a + s.value, 0)));
  const scale = (W - labelW - valueW) / max;
  const parts: string[] = [];
  rows.forEach((row, i) => {
    const yMid = 4 + i * rowH + rowH / 2;
    const label = row.label.length > 34 ? `${row.label.slice(0, 33)}…` : row.label;
    parts.push(`<text class="rowlabel" x="${labelW - 10}" y="${yMid + 4}">${esc(label)}<title>${esc(row.label)}</title></text>`);
    let x = labelW;
    let total = 0;
    for (const s of row.segments) {
      if (s.value <= 0) continue;
      const w = Math.max(1, s.value * scale);
      parts.push(
        `<rect x="${round1(x)}" y="${yMid - 9}" width="${round1(w)}" height="18" fill="${s.color}">` +
          `<title>${esc(`${row.label}: ${s.name} ${num(s.value)}`)}</title></rect>`,
      );
      x += w;
      total += s.value;
    }
    parts.push(`<text class="rowvalue" x="${round1(x + 8)}" y="${yMid + 4}">${esc(num(total))}</text>`);
  });
  return svg(title, H, parts);
}

/** The frame of a chart with nothing to show yet: an empty campaign still renders. */
export function noData(title: string, why: string): string {
  const H = 120;
  return svg(title, H, [
    `<rect class="empty" x="1" y="1" width="${W - 2}" height="${H - 2}" rx="6"/>`,
    `<text class="nodata" x="${W / 2}" y="${H / 2 - 4}">no data</text>`,
    `<text class="nodatawhy" x="${W / 2}" y="${H / 2 + 20}">${esc(why)}</text>`,
  ]);
}

/** An HTML legend (wraps with the page, unlike SVG text). */
export function legend(items: ReadonlyArray<{ readonly name: string; readonly color: string }>): string {
  return `<ul class="legend">${items
    .map((i) => `<li><span class="swatch" style="background:${i.color}"></span>${esc(i.name)}</li>`)
    .join('')}</ul>`;
}

function svg(title: string, height: number, parts: readonly string[]): string {
  return `<svg class="chart" viewBox="0 0 ${W} ${height}" role="img" aria-label="${esc(title)}" preserveAspectRatio="xMidYMid meet">` +
    `<title>${esc(title)}</title>${parts.join('')}</svg>`;
}
