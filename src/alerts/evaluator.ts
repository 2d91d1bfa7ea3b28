import type { AlertRule, EngineEvent } from '../engine/events.js';
import { ALERT_RULES, type AlertSettings } from './config.js';
import { checkRule, type ProgressSnapshot } from './rules.js';
import { OutcomeWindow } from './window.js';

/**
 * Turns engine events into alert events. Pure: no timers and no clock of its
 * own. Outcomes (message-sent/-deferred/-failed) feed a sliding window, and
 * each `progress` event drives `tick(at)`, which checks every enabled rule
 * and emits an `alert` event when a rule starts to hold (`firing`) or has
 * been clear for `clearForMs` (`resolved`). `run-finished` drives a last
 * tick over the outcome window only, so a run shorter than one progress
 * interval still raises its bounce or error alerts before the summary.
 *
 * The alert goes out through `emit`, i.e. the same listener list as engine
 * events (reporters, NDJSON, metrics, actions); this listener ignores alerts.
 */

interface RuleState {
  firing: boolean;
  /** When the condition became clear while firing; resolves after clearForMs. */
  clearSince: number | undefined;
}

export class AlertEvaluator {
  private readonly window: OutcomeWindow;
  private readonly state = new Map<AlertRule, RuleState>();
  private readonly throttled = new Set<string>();
  private runStartedAt: number | undefined;
  private lastOutcomeAt: number | undefined;
  private progress: ProgressSnapshot | undefined;
  private dueSince: number | undefined;
  private paused = false;
  private finished = false;

  constructor(
    private readonly settings: AlertSettings,
    private readonly emit: (event: EngineEvent) => void,
  ) {
    const s = settings;
    this.window = new OutcomeWindow(Math.max(s['error-rate'].windowMs, s['bounce-rate'].windowMs, s['rate-floor'].windowMs, s['connections-failing'].windowMs));
  }

  readonly onEvent = (e: EngineEvent): void => {
    this.runStartedAt ??= e.at;
    this.lastOutcomeAt ??= e.at;
    switch (e.type) {
      case 'run-started':
        this.runStartedAt = e.at;
        this.lastOutcomeAt = e.at;
        // Queued work is due from the start; deferred rows wait for the first progress event's nextRetryAt.
        if (e.counts.queued > 0) this.dueSince = e.at;
        break;
      case 'message-sent':
        this.outcome(e.at, 'sent', false, false);
        break;
      case 'message-deferred':
        this.outcome(e.at, 'deferred', e.category === 'bad-recipient', e.category === 'connection');
        break;
      case 'message-failed':
        this.outcome(e.at, 'failed', e.category === 'bad-recipient', e.category === 'connection');
        break;
      case 'domain-throttled':
        this.throttled.add(e.key);
        break;
      case 'domain-resumed':
        this.throttled.delete(e.key);
        break;
      case 'leasing-paused':
        this.paused = true;
        this.dueSince = undefined;
        break;
      case 'leasing-resumed':
        this.paused = false;
        break;
      case 'progress': {
        this.progress = { counts: e.counts, inFlight: e.inFlight, openConnections: e.openConnections, stalled: e.stalled };
        this.paused = e.paused;
        const due = e.counts.queued > 0 || (e.counts.deferred > 0 && e.nextRetryAt !== undefined && e.nextRetryAt <= e.at);
        // The stall clock starts when work became due (or leasing was continued), not at the last outcome.
        this.dueSince = due && !e.paused ? (this.dueSince ?? e.at) : undefined;
        this.tick(e.at);
        break;
      }
      case 'run-finished':
        this.tick(e.at, true);
        this.finished = true;
        break;
      default:
        break;
    }
  };

  /** Rules currently firing. */
  firing(): AlertRule[] {
    return ALERT_RULES.filter((r) => this.state.get(r)?.firing === true);
  }

  tick(now: number, final = false): void {
    if (this.finished) return;
    this.window.prune(now);
    const ctx = {
      now,
      window: this.window,
      runStartedAt: this.runStartedAt ?? now,
      lastOutcomeAt: this.lastOutcomeAt ?? now,
      progress: this.progress,
      dueSince: this.dueSince,
      paused: this.paused,
      throttledKeys: this.throttled.size,
      final,
    };
    for (const rule of ALERT_RULES) {
      const settings = this.settings[rule];
      if (!settings.enabled) continue;
      const verdict = checkRule(rule, this.settings, ctx);
      const st = this.state.get(rule) ?? { firing: false, clearSince: undefined };
      this.state.set(rule, st);
      if (!st.firing) {
        if (verdict.kind !== 'holds') continue;
        st.firing = true;
        st.clearSince = undefined;
        this.emit({ type: 'alert', at: now, alert: { rule, state: 'firing', severity: settings.severity, message: verdict.message } });
      } else if (verdict.kind === 'clear') {
        st.clearSince ??= now;
        if (now - st.clearSince < this.settings.clearForMs) continue;
        st.firing = false;
        st.clearSince = undefined;
        this.emit({ type: 'alert', at: now, alert: { rule, state: 'resolved', severity: settings.severity, message: verdict.message } });
      } else {
        // Still holding, or in the band between: the clear period starts over.
        st.clearSince = undefined;
      }
    }
  }

  private outcome(at: number, kind: 'sent' | 'failed' | 'deferred', bounced: boolean, connection: boolean): void {
    this.window.add(at, kind, { bounced, connection });
    this.lastOutcomeAt = Math.max(this.lastOutcomeAt ?? at, at);
  }
}
