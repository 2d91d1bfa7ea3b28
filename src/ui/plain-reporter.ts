import type { AlertRule, EngineEvent } from '../engine/events.js';
import type { StateCounts } from '../store/types.js';

/**
 * Plain status lines for logs and CI (no TTY): a line every few seconds, one
 * per notable event, a summary at the end. No recipient addresses: messages
 * are named by CSV line.
 */

export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function countsLine(c: StateCounts): string {
  return `sent ${c.sent}, failed ${c.failed}, deferred ${c.deferred}, queued ${c.queued}, sending ${c.sending}, suppressed ${c.suppressed}`;
}

export class PlainReporter {
  private startedAt = 0;
  private startSent = 0;
  private window: { at: number; sent: number }[] = [];
  /** Alerts that fired during the run, for the summary, in the order they first fired. */
  private readonly alerts = new Map<AlertRule, { severity: string; fired: number; firing: boolean }>();

  constructor(private readonly write: (line: string) => void) {}

  readonly onEvent = (e: EngineEvent): void => {
    switch (e.type) {
      case 'run-started':
        this.startedAt = e.at;
        this.startSent = e.counts.sent;
        this.write(`mailq: sending campaign ${e.campaign} via ${e.transport} (${countsLine(e.counts)})${e.reclaimed > 0 ? `; took over ${e.reclaimed} messages from a run that died` : ''}`);
        break;
      case 'progress': {
        this.window.push({ at: e.at, sent: e.counts.sent });
        // Rate over the last 10 s (DESIGN.md §9), ETA from it.
        while (this.window.length > 1 && e.at - (this.window[0]?.at ?? e.at) > 10_000) this.window.shift();
        const first = this.window[0] ?? { at: e.at, sent: e.counts.sent };
        const rate = e.at > first.at ? ((e.counts.sent - first.sent) * 1000) / (e.at - first.at) : 0;
        const left = e.counts.queued + e.counts.deferred + e.counts.sending;
        this.write(`mailq: ${countsLine(e.counts)}; ${rate.toFixed(1)}/s; ETA ${rate > 0 ? fmtDuration((left / rate) * 1000) : '?'}`);
        break;
      }
      case 'domain-throttled':
        this.write(`mailq: ${e.paused ? 'paused' : 'slowed'} ${e.key} until ${new Date(e.until).toISOString()}: ${e.reason}`);
        break;
      case 'breaker-tripped':
        this.write(`mailq: circuit breaker: ${e.count} ${e.cause} replies in a row; pausing the run`);
        break;
      case 'stopping':
        this.write(e.graceful ? `mailq: stopping (${e.reason}); finishing messages in flight (Ctrl-C again to abort them)` : 'mailq: aborting messages in flight');
        break;
      case 'alert': {
        const a = e.alert;
        const seen = this.alerts.get(a.rule) ?? { severity: a.severity, fired: 0, firing: false };
        if (a.state === 'firing') {
          seen.fired++;
          seen.firing = true;
          this.write(`mailq: ALERT ${a.rule} firing (${a.severity}): ${a.message}`);
        } else {
          seen.firing = false;
          this.write(`mailq: alert ${a.rule} resolved: ${a.message}`);
        }
        this.alerts.set(a.rule, seen);
        break;
      }
      case 'lease-lost':
        this.write(`mailq: line ${e.line}: lease lost to another run; its outcome was not recorded here`);
        break;
      case 'run-finished': {
        const secs = Math.max(0.001, (e.at - this.startedAt) / 1000);
        const sent = e.counts.sent - this.startSent;
        this.write(`mailq: ${e.outcome.kind === 'finished' ? 'finished' : e.outcome.kind === 'fatal' ? 'FATAL' : 'stopped'}: ${countsLine(e.counts)}; possible duplicates ${e.possibleDuplicates}; ${sent} sent in ${fmtDuration(secs * 1000)} (${(sent / secs).toFixed(1)}/s)`);
        if (e.outcome.kind !== 'finished') this.write(`mailq: ${e.outcome.message}`);
        if (this.alerts.size > 0) {
          const list = [...this.alerts].map(([rule, a]) => `${rule} (${a.severity}, fired ${a.fired}×, ${a.firing ? 'still firing' : 'resolved'})`);
          this.write(`mailq: alerts during the run: ${list.join('; ')}`);
        }
        break;
      }
      default:
        break;
    }
  };
}
