import type { AlertRule } from '../engine/events.js';
import { STALLED_MS } from '../engine/events.js';
import { formatDuration } from '../engine/units.js';
import type { StateCounts } from '../store/types.js';
import type { AlertSettings, ConnectionsFailingSettings, QueueStalledSettings, RateFloorSettings, RatioSettings } from './config.js';
import { total, type OutcomeWindow } from './window.js';

/**
 * The five alert conditions as pure functions of what the evaluator has seen.
 * Each answers `holds` (fire), `clear` (may resolve) or `between` (keep the
 * current state). The gap between holds and clear is the hysteresis band: a
 * rate fires above its threshold and clears only below 80 % of it, so a rate
 * hovering at the threshold does not flap.
 */

export const CLEAR_BAND = 0.8;

export interface ProgressSnapshot {
  readonly counts: StateCounts;
  readonly inFlight: number;
  readonly openConnections: number;
  readonly stalled: number;
}

export interface RuleContext {
  readonly now: number;
  readonly window: OutcomeWindow;
  readonly runStartedAt: number;
  /** The latest sent/failed/deferred outcome, or the run's start. */
  readonly lastOutcomeAt: number;
  /** The latest progress event; undefined before the first one. */
  readonly progress: ProgressSnapshot | undefined;
  /** Since when work has been due (queued, or deferred and due) with leasing not paused; undefined when not. */
  readonly dueSince: number | undefined;
  /** Leasing paused by the operator. */
  readonly paused: boolean;
  /** Throttle keys currently slowed or paused. */
  readonly throttledKeys: number;
  /** The run has finished: only the outcome window is still meaningful (no queue, no connections). */
  readonly final: boolean;
}

export interface Verdict {
  readonly kind: 'holds' | 'clear' | 'between';
  /** One line with the figures, used as the alert's message. */
  readonly message: string;
}

const holds = (message: string): Verdict => ({ kind: 'holds', message });
const clear = (message: string): Verdict => ({ kind: 'clear', message });
const between = (message: string): Verdict => ({ kind: 'between', message });

export function pct(fraction: number): string {
  const p = fraction * 100;
  return `${p >= 10 || Number.isInteger(p) ? Math.round(p) : p.toFixed(1)}%`;
}

function dueLine(ctx: RuleContext): string {
  const p = ctx.progress;
  if (p === undefined) return 'work due';
  const parts = [`${p.counts.queued} queued`, `${p.counts.deferred} deferred`, `${p.inFlight} in flight`];
  if (p.stalled > 0) parts.push(`${p.stalled} stalled over ${formatDuration(STALLED_MS)}`);
  if (ctx.throttledKeys > 0) parts.push(`${ctx.throttledKeys} throttled ${ctx.throttledKeys === 1 ? 'domain' : 'domains'}`);
  return parts.join(', ');
}

function queueStalled(s: QueueStalledSettings, ctx: RuleContext): Verdict {
  if (ctx.final) return between('the run ended');
  if (ctx.paused) return clear('leasing is paused by the operator');
  if (ctx.dueSince === undefined) return clear('no work is due');
  const quiet = ctx.now - Math.max(ctx.lastOutcomeAt, ctx.dueSince);
  if (quiet >= s.afterMs) return holds(`queue not draining: no message finished for ${formatDuration(quiet)} while work is due (${dueLine(ctx)})`);
  return clear(`messages are finishing again (${dueLine(ctx)})`);
}

function errorRate(s: RatioSettings, ctx: RuleContext): Verdict {
  const c = ctx.window.countSince(ctx.now - s.windowMs);
  const n = total(c);
  const bad = c.failed + c.deferred;
  const rate = n === 0 ? 0 : bad / n;
  const message = `error rate ${pct(rate)}: ${bad} of ${n} outcomes failed or deferred in the last ${formatDuration(s.windowMs)} (threshold ${pct(s.threshold)})`;
  if (n >= s.minSamples && rate > s.threshold) return holds(message);
  return n > 0 && rate < s.threshold * CLEAR_BAND ? clear(message) : between(message);
}

/** Over final outcomes (sent + failed), as providers count bounce rates: a deferral is not yet a delivery or a bounce. */
function bounceRate(s: RatioSettings, ctx: RuleContext): Verdict {
  const c = ctx.window.countSince(ctx.now - s.windowMs);
  const n = c.sent + c.failed;
  const rate = n === 0 ? 0 : c.bounced / n;
  const message = `bounce rate ${pct(rate)}: ${c.bounced} of ${n} final outcomes were bad-recipient in the last ${formatDuration(s.windowMs)} (threshold ${pct(s.threshold)})`;
  if (n >= s.minSamples && rate > s.threshold) return holds(message);
  return n > 0 && rate < s.threshold * CLEAR_BAND ? clear(message) : between(message);
}

function rateFloor(s: RateFloorSettings, ctx: RuleContext): Verdict {
  if (s.floor === undefined || ctx.final) return between('');
  if (ctx.paused) return clear('leasing is paused by the operator');
  if (ctx.dueSince === undefined) return clear('no work is due');
  // Measure only time past the warm-up during which work was due: an idle queue is not a slow one.
  const start = Math.max(ctx.now - s.windowMs, ctx.runStartedAt + s.warmupMs, ctx.dueSince);
  const span = ctx.now - start;
  if (span < s.windowMs / 2) return between('');
  const rate = (ctx.window.countSince(start).sent * 1000) / span;
  const floor = s.floor.perSecond;
  const message = `send rate ${rate.toFixed(2)}/s over the last ${formatDuration(span)} with work due (floor ${floor.toFixed(2)}/s; ${dueLine(ctx)})`;
  if (rate < floor) return holds(message);
  return rate >= floor / CLEAR_BAND ? clear(message) : between(message);
}

/**
 * mailq sends everything through one relay, so "every attempt failed to
 * connect" means the pool is down, not one recipient domain.
 */
function connectionsFailing(s: ConnectionsFailingSettings, ctx: RuleContext): Verdict {
  const c = ctx.window.countSince(ctx.now - s.windowMs);
  const n = total(c);
  const allFailed = n > 0 && c.connection === n;
  const open = ctx.progress?.openConnections;
  const message = `${c.connection} of ${n} attempts in the last ${formatDuration(s.windowMs)} failed to connect${ctx.final || open === undefined ? '' : `; ${open} connections open`}`;
  const many = allFailed && c.connection >= s.minFailures;
  const noneOpen = !ctx.final && allFailed && open === 0 && ctx.dueSince !== undefined;
  if (many || noneOpen) return holds(message);
  return n > c.connection ? clear(message) : between(message);
}

export function checkRule(rule: AlertRule, settings: AlertSettings, ctx: RuleContext): Verdict {
  switch (rule) {
    case 'queue-stalled':
      return queueStalled(settings['queue-stalled'], ctx);
    case 'error-rate':
      return errorRate(settings['error-rate'], ctx);
    case 'rate-floor':
      return rateFloor(settings['rate-floor'], ctx);
    case 'bounce-rate':
      return bounceRate(settings['bounce-rate'], ctx);
    case 'connections-failing':
      return connectionsFailing(settings['connections-failing'], ctx);
  }
}
