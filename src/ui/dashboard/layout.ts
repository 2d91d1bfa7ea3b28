import { cleanText, clock, duration, int, latency, percent, rate, shortClock } from './format.js';
import type { HostHealth } from '../../engine/hosts.js';
import type { DashboardSnapshot, DomainRow, ErrorRow, FinishedLine, ThrottleView } from './model.js';
import type { Tone } from './theme.js';

/**
 * The live region as lines of toned segments, from a snapshot and the terminal
 * size: pure, so the width and height rules are tested without a terminal.
 * Every segment's text is single-width (see format.cleanText), so a line's
 * length is its width in cells, and every line is cut to the width here:
 * nothing is left for the terminal to wrap.
 *
 * Widths: from 60 columns everything shows (80 is the design width); from 40
 * the domain table drops its deferred and rate columns and the header its
 * transport; below 40 the error replies go and the domain table keeps the
 * name, sent count and state. Height: the region stays below the terminal's
 * height (Ink clears the whole screen on every frame when it does not), by
 * dropping, in order, domain rows, error rows, the health and queue lines,
 * then alerts; the header, progress, counts and rates go last.
 */

export interface Seg {
  readonly text: string;
  readonly tone?: Tone | undefined;
}
export type Line = readonly Seg[];

export interface LayoutOptions {
  readonly columns: number;
  readonly rows: number;
  /** The key list in place of the errors and domains. */
  readonly help: boolean;
  /** "? help" in the header: only while keys are read. */
  readonly hints: boolean;
}

/** At least this wide: the full layout. */
export const WIDE = 60;
/** Narrower than this: the minimal layout. */
export const NARROW = 40;

const ELLIPSIS = '…';

export function lineWidth(line: Line): number {
  let n = 0;
  for (const s of line) n += s.text.length;
  return n;
}

/** Cuts a line to `max` cells, marking the cut with an ellipsis. */
export function fitLine(line: Line, max: number): Line {
  if (lineWidth(line) <= max) return line;
  if (max <= 0) return [];
  const out: Seg[] = [];
  let left = max - 1;
  for (const s of line) {
    if (s.text.length <= left) {
      out.push(s);
      left -= s.text.length;
      continue;
    }
    if (left > 0) out.push({ text: s.text.slice(0, left), tone: s.tone });
    break;
  }
  out.push({ text: ELLIPSIS });
  return out;
}

/** Packs chips (small lines that must not be split) into as few lines of `max` cells as they need. */
export function flow(chips: readonly Line[], max: number, sep = '  '): Line[] {
  const lines: Seg[][] = [];
  let current: Seg[] = [];
  let used = 0;
  for (const chip of chips) {
    const w = lineWidth(chip);
    if (w === 0) continue;
    if (current.length > 0 && used + sep.length + w <= max) {
      current.push({ text: sep }, ...chip);
      used += sep.length + w;
      continue;
    }
    if (current.length > 0) lines.push(current);
    current = [...fitLine(chip, max)];
    used = Math.min(w, max);
  }
  if (current.length > 0) lines.push(current);
  return lines;
}

const padEnd = (s: string, w: number): string => (s.length >= w ? s.slice(0, w) : s + ' '.repeat(w - s.length));
const padStart = (s: string, w: number): string => (s.length >= w ? s : ' '.repeat(w - s.length) + s);
const cut = (s: string, w: number): string => (s.length <= w ? s : w <= 0 ? '' : `${s.slice(0, w - 1)}${ELLIPSIS}`);

function statusTag(s: DashboardSnapshot): Seg {
  const p = s.phase;
  if (p.kind === 'finished') {
    const o = p.outcome;
    return o.kind === 'finished' ? { text: 'FINISHED', tone: 'ok' } : o.kind === 'fatal' ? { text: 'FATAL', tone: 'bad' } : { text: `STOPPED (${o.reason})`, tone: 'warn' };
  }
  if (p.kind === 'stopping') return { text: p.graceful ? 'STOPPING' : 'ABORTING', tone: 'warn' };
  if (s.paused) return { text: 'PAUSED', tone: 'warn' };
  return p.kind === 'waiting' ? { text: 'starting', tone: 'dim' } : { text: 'sending', tone: 'ok' };
}

function header(s: DashboardSnapshot, w: number, hints: boolean): Line {
  const tag = statusTag(s);
  const right: Seg[] = [tag];
  if (hints && w >= WIDE) right.push({ text: '  ? help', tone: 'dim' });
  const rightW = lineWidth(right);
  const left: Seg[] = [{ text: 'mailq', tone: 'bold' }];
  if (s.campaign !== undefined) left.push({ text: ` ${s.campaign}` });
  if (s.transport !== undefined && w >= NARROW) left.push({ text: ` → ${s.transport}`, tone: 'dim' });
  if (rightW + 2 > w) return fitLine([tag], w);
  const l = fitLine(left, w - rightW - 1);
  return [...l, { text: ' '.repeat(w - lineWidth(l) - rightW) }, ...right];
}

function progressBar(s: DashboardSnapshot, w: number): Line {
  const pct = percent(s.progress.total === 0 ? 0 : s.progress.fraction);
  const barW = w - pct.length - 1;
  if (barW < 4) return [{ text: pct }];
  const filled = Math.min(barW, Math.floor(s.progress.fraction * barW));
  return [
    { text: '█'.repeat(filled), tone: 'ok' },
    { text: '░'.repeat(barW - filled), tone: 'dim' },
    { text: ` ${pct}` },
  ];
}

const chip = (label: string, value: string, tone?: Tone): Line => [{ text: `${label} `, tone: 'dim' }, { text: value, tone }];

function countChips(s: DashboardSnapshot): Line[] {
  const p = s.progress;
  const chips: Line[] = [chip('sent', int(p.sent), 'ok'), chip('failed', int(p.failed), p.failed > 0 ? 'bad' : undefined)];
  if (p.suppressed > 0) chips.push(chip('suppressed', int(p.suppressed)));
  if (p.cancelled > 0) chips.push(chip('cancelled', int(p.cancelled)));
  chips.push([...chip('left', int(p.remaining)), { text: ' of ', tone: 'dim' }, { text: int(p.total) }]);
  return chips;
}

function rateChips(s: DashboardSnapshot): Line[] {
  const chips: Line[] = [chip('rate', rate(s.rate.last10s), 'accent'), chip('avg', rate(s.rate.overall))];
  if (s.phase.kind === 'running' && s.progress.total > 0) {
    const eta = s.progress.etaMs;
    chips.push(chip('ETA', eta === undefined ? '?' : eta === 0 ? 'done' : duration(eta)));
  }
  chips.push(chip('p50', latency(s.latency.p50)), chip('p95', latency(s.latency.p95)));
  return chips;
}

function queueChips(s: DashboardSnapshot, w: number): Line[] {
  const q = s.queue;
  const chips: Line[] = [];
  if (w >= WIDE) chips.push([{ text: 'queue', tone: 'bold' }]);
  chips.push(chip('queued', int(q.queued)), chip('sending', int(q.sending)), chip('deferred', int(q.deferred), q.deferred > 0 ? 'warn' : undefined));
  if (q.deferred > 0 && q.nextRetryAt !== undefined) {
    const wait = q.nextRetryAt - s.at;
    chips.push(chip('next retry', wait <= 0 ? 'now' : w >= WIDE ? `${clock(q.nextRetryAt)} (in ${duration(wait)})` : `in ${duration(wait)}`));
  }
  return chips;
}

function healthChips(s: DashboardSnapshot, w: number): Line[] {
  const h = s.health;
  const chips: Line[] = [];
  if (w >= WIDE) chips.push([{ text: 'health', tone: 'bold' }]);
  chips.push(chip('connections', int(h.openConnections)), chip('in flight', int(h.inFlight)), chip('stalled', int(h.stalled), h.stalled > 0 ? 'bad' : undefined));
  if (h.possibleDuplicates > 0) chips.push(chip('possible duplicates', int(h.possibleDuplicates), 'warn'));
  return chips;
}

function alertLines(s: DashboardSnapshot, w: number): Line[] {
  return s.alerts.map((a) =>
    fitLine([{ text: 'ALERT', tone: a.severity === 'critical' ? 'bad' : 'warn' }, { text: ` ${a.severity} ${a.rule}: ${a.message}` }], w),
  );
}

function errorCounts(e: ErrorRow): string {
  if (e.deferred > 0 && e.failed > 0) return `${int(e.deferred)} deferred, ${int(e.failed)} failed`;
  return e.deferred > 0 ? `${int(e.deferred)} deferred` : `${int(e.failed)} failed`;
}

function errorLines(s: DashboardSnapshot, w: number): Line[] {
  if (s.errors.length === 0) return [];
  const tone = (e: ErrorRow): Tone => (e.failed > 0 ? 'bad' : 'warn');
  if (w < NARROW) return flow(s.errors.map((e) => chip(e.category, int(e.deferred + e.failed), tone(e))), w);
  const catW = Math.max(...s.errors.map((e) => e.category.length));
  const cntW = Math.max(...s.errors.map((e) => errorCounts(e).length));
  return s.errors.map((e) => {
    const line: Seg[] = [{ text: padEnd(e.category, catW), tone: tone(e) }, { text: ` ${padEnd(errorCounts(e), cntW)}` }];
    const room = w - catW - cntW - 3;
    // A reply cut to less than 12 cells says nothing; leave the space empty.
    if (e.reply !== undefined && room >= 12) line.push({ text: `  ${cut(e.reply, room)}`, tone: 'dim' });
    return fitLine(line, w);
  });
}

function throttleText(t: ThrottleView, domain: string, at: number, w: number): string {
  if (t.until <= at) return cut('resuming', w);
  const verb = t.paused ? 'paused' : 'slowed';
  const rel = duration(t.until - at);
  const candidates = [`${verb} until ${clock(t.until)} (${rel})`, `${verb} ${shortClock(t.until)} (${rel})`, `${verb} ${rel}`, verb];
  const group = t.key === domain ? undefined : t.key;
  for (const c of candidates) {
    if (group !== undefined && c.length + group.length + 3 <= w) return `${c} [${group}]`;
    if (c.length <= w) return c;
  }
  return cut(verb, w);
}

interface Column {
  readonly title: string;
  readonly value: (r: DomainRow) => string;
}

function domainLines(s: DashboardSnapshot, w: number, maxLines: number): Line[] {
  if (s.domains.length === 0 || maxLines < 2) return [];
  const cols: Column[] =
    w >= WIDE
      ? [
          { title: 'sent', value: (r) => int(r.sent) },
          { title: 'def', value: (r) => int(r.deferred) },
          { title: 'fail', value: (r) => int(r.failed) },
          { title: 'rate', value: (r) => rate(r.rate) },
        ]
      : w >= NARROW
        ? [
            { title: 'sent', value: (r) => int(r.sent) },
            { title: 'fail', value: (r) => int(r.failed) },
          ]
        : [{ title: 'sent', value: (r) => int(r.sent) }];
  // Throttle-only rows are named by their key, so the table can hold more rows than domains.
  const total = Math.max(s.domainCount, s.domains.length);
  let shown = Math.min(s.domains.length, maxLines - 1);
  // Keep the last line for "+N more domains" when some are left out.
  if (total > shown && shown >= 2 && shown + 2 > maxLines) shown--;
  const rows = s.domains.slice(0, shown);
  const widths = cols.map((c) => Math.max(c.title.length, ...rows.map((r) => c.value(r).length)));
  const numbersW = widths.reduce((a, b) => a + b + 1, 0);
  const stateMin = w >= WIDE ? 14 : w >= NARROW ? 10 : 7;
  // Up to 24 cells of name (longer ones are cut), so the state column has room for "paused until 14:05:00 (1h59m)" at 80.
  const longest = Math.max(6, ...rows.map((r) => r.domain.length));
  const domainW = Math.max(4, Math.min(longest, 24, w - numbersW - stateMin - 1));
  const stateW = Math.max(0, w - domainW - numbersW - 1);

  const head: Seg[] = [{ text: padEnd('domain', domainW) }];
  cols.forEach((c, i) => head.push({ text: ` ${padStart(c.title, widths[i] ?? 0)}` }));
  if (stateW > 0) head.push({ text: ` ${cut('state', stateW)}` });
  const lines: Line[] = [fitLine([{ text: head.map((x) => x.text).join(''), tone: 'dim' }], w)];

  for (const r of rows) {
    const line: Seg[] = [{ text: padEnd(cut(r.domain, domainW), domainW) }];
    cols.forEach((c, i) => line.push({ text: ` ${padStart(c.value(r), widths[i] ?? 0)}` }));
    if (stateW > 0) {
      if (r.throttle !== undefined) line.push({ text: ` ${throttleText(r.throttle, r.domain, s.at, stateW)}`, tone: r.throttle.paused ? 'bad' : 'warn' });
      else if (w >= WIDE) line.push({ text: ' ok', tone: 'dim' });
    }
    lines.push(fitLine(line, w));
  }
  const left = total - rows.length;
  if (left > 0 && lines.length < maxLines) lines.push(fitLine([{ text: `+${int(left)}${s.moreDomains ? '+' : ''} more domains`, tone: 'dim' }], w));
  return lines;
}

const HOST_TONE = { alive: 'ok', silent: 'warn', lost: 'bad', finished: 'dim' } as const satisfies Record<HostHealth['state'], Tone>;
const HOST_RANK = { alive: 1, silent: 2, lost: 3, finished: 4 } as const satisfies Record<HostHealth['state'], number>;

/**
 * The runs sending this campaign, when there is more than this one (several
 * processes or hosts): name, sends in the last minute, heartbeat age, state.
 * This run first, then the others, troubled ones (lost, silent) before the
 * alive; finished runs are left out.
 */
function hostLines(s: DashboardSnapshot, w: number, maxLines: number): Line[] {
  const open = s.hosts.filter((h) => h.self || h.state !== 'finished');
  if (!open.some((h) => !h.self) || maxLines < 2) return [];
  const rows = [...open].sort((a, b) => Number(b.self) - Number(a.self) || HOST_RANK[b.state] - HOST_RANK[a.state] || a.startedAt - b.startedAt);
  const name = (h: HostHealth): string => cleanText(`${h.host}:${h.pid}`) + (h.self ? ' (this)' : '');
  const counts = (['alive', 'silent', 'lost'] as const).map((st) => [st, rows.filter((h) => h.state === st).length] as const).filter(([, n]) => n > 0);
  const head: Seg[] = [{ text: 'hosts', tone: 'bold' }];
  for (const [st, n] of counts) head.push({ text: `  ${n} ${st}`, tone: st === 'alive' ? undefined : HOST_TONE[st] });
  const lines: Line[] = [fitLine(head, w)];
  const wide = w >= NARROW;
  const rateW = Math.max(8, ...rows.map((h) => `${int(h.sentLastMinute)}/min`.length));
  const ageW = 9;
  const nameW = Math.max(4, Math.min(Math.max(...rows.map((h) => name(h).length)), 28, w - (wide ? rateW + ageW + 2 : 0) - 8));
  let shown = Math.min(rows.length, maxLines - 1);
  if (rows.length > shown && shown >= 2) shown--;
  for (const h of rows.slice(0, shown)) {
    const line: Seg[] = [{ text: padEnd(cut(name(h), nameW), nameW), tone: h.self ? 'bold' : undefined }];
    if (wide) {
      line.push({ text: ` ${padStart(h.state === 'alive' ? `${int(h.sentLastMinute)}/min` : '-', rateW)}` });
      line.push({ text: ` ${padStart(h.self ? '' : `hb ${duration(h.heartbeatAgeMs)}`, ageW)}`, tone: 'dim' });
    }
    line.push({ text: ` ${h.state}`, tone: HOST_TONE[h.state] });
    lines.push(fitLine(line, w));
  }
  if (rows.length > shown) lines.push(fitLine([{ text: `+${int(rows.length - shown)} more runs`, tone: 'dim' }], w));
  return lines;
}

function helpLines(w: number): Line[] {
  const keys: readonly (readonly [string, string, string])[] = [
    ['p', 'pause or resume leasing; messages in flight finish', 'pause/resume'],
    ['q', 'stop gracefully, as Ctrl-C; mailq resume continues', 'stop'],
    ['Ctrl-C', 'stop gracefully; press again to abort messages in flight', 'stop; twice: abort'],
    ['?', 'close this help', 'close help'],
  ];
  const long = w >= WIDE;
  return [
    [{ text: 'keys', tone: 'bold' }],
    ...keys.map(([k, full, short]): Line => fitLine([{ text: ` ${padEnd(k, 8)}`, tone: 'accent' }, { text: long ? full : short }], w)),
  ];
}

/** The live region, top to bottom. */
export function layoutDashboard(s: DashboardSnapshot, o: LayoutOptions): Line[] {
  const w = Math.max(1, Math.floor(o.columns));
  // Ink prints a newline after the region and clears the screen on every frame
  // once the region is as tall as the terminal: stay at least one line short.
  let budget = Math.max(4, Math.floor(o.rows) - 1);
  const take = (lines: Line[], whole = true): Line[] => {
    if (lines.length <= budget) {
      budget -= lines.length;
      return lines;
    }
    if (whole) return [];
    const kept = lines.slice(0, budget);
    budget = 0;
    return kept;
  };
  // Claimed in priority order, shown in display order.
  const head = take([header(s, w, o.hints), progressBar(s, w), ...flow(countChips(s), w), ...flow(rateChips(s), w)], false);
  const pausedLine =
    s.paused && s.phase.kind !== 'finished'
      ? take([fitLine([{ text: w >= WIDE ? 'leasing paused: messages in flight finish, nothing new starts; p continues' : 'leasing paused; p continues', tone: 'warn' }], w)])
      : [];
  const alerts = take(alertLines(s, w), false);
  const help = o.help ? take(helpLines(w), false) : [];
  const queue = take(flow(queueChips(s, w), w));
  const health = take(flow(healthChips(s, w), w));
  const dropped = s.droppedLines > 0 ? take([fitLine([{ text: `${int(s.droppedLines)} notices not shown (cap reached)`, tone: 'dim' }], w)]) : [];
  const errors = o.help ? [] : take(errorLines(s, w).slice(0, 3), false);
  // Up to 6 runs: enough to spot the one in trouble; the rest is `mailq status`.
  const hosts = o.help ? [] : take(hostLines(s, w, Math.min(budget, 7)));
  const domains = o.help ? [] : take(domainLines(s, w, budget));
  return [...head, ...queue, ...health, ...hosts, ...pausedLine, ...alerts, ...help, ...errors, ...domains, ...dropped];
}

/** Words of `text` in lines of at most `w` cells; a word longer than a line is cut across lines. */
export function wrapWords(text: string, w: number): string[] {
  const width = Math.max(1, w);
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (word === '') continue;
    if (line !== '' && line.length + 1 + word.length <= width) {
      line += ` ${word}`;
      continue;
    }
    if (line !== '') out.push(line);
    let rest = word;
    while (rest.length > width) {
      out.push(rest.slice(0, width));
      rest = rest.slice(width);
    }
    line = rest;
  }
  if (line !== '' || out.length === 0) out.push(line);
  return out;
}

/**
 * A notice for <Static>: the time, then the text word-wrapped under itself.
 * Printed once and kept in the terminal's history, so it is wrapped here
 * rather than cut (Ink's own wrap starts continuation lines with a space).
 */
export function finishedLines(l: FinishedLine, columns: number): Line[] {
  const tone: Tone | undefined = l.severity === 'critical' ? 'bad' : l.severity === 'warning' ? 'warn' : undefined;
  const time = clock(l.at);
  // Below 30 columns the time would leave too little room for the words.
  const indent = columns >= 30 ? time.length + 1 : 0;
  const chunks = wrapWords(l.text, columns - indent);
  return chunks.map((chunk, i): Line => {
    if (indent === 0) return i === 0 ? fitLine([{ text: chunk, tone }], columns) : [{ text: chunk, tone }];
    return i === 0 ? [{ text: time, tone: 'dim' }, { text: ' ' }, { text: chunk, tone }] : [{ text: ' '.repeat(indent) }, { text: chunk, tone }];
  });
}
