import { MultiBar } from 'cli-progress';
import type { EngineEvent } from '../engine/events.js';
import { fmtDuration, PlainReporter } from './plain-reporter.js';

/**
 * stderr is a terminal but the dashboard is off (--no-tui, or CI with a TTY):
 * one cli-progress bar redrawn in place, with the plain reporter's lines for
 * notable events (throttles, alerts, stops) printed above it and its summary
 * after it.
 */
export class BarReporter {
  private readonly bars: MultiBar;
  private readonly bar;
  private readonly lines: PlainReporter;
  private window: { at: number; sent: number }[] = [];
  private stopped = false;

  constructor(stream: NodeJS.WritableStream, noColor: boolean) {
    this.bars = new MultiBar({
      stream,
      // etaText, not cli-progress's own {eta}: ours comes from the last 10 s of sends.
      format: ' {bar} {percentage}% | sent {sent} failed {failed} deferred {deferred} left {left} | {rate}/s | ETA {etaText}',
      barsize: 24,
      hideCursor: true,
      // Redraw at most 4 times a second: a progress event comes every 2 s, so more is waste.
      fps: 4,
      linewrap: false,
      ...(noColor ? { barCompleteChar: '#', barIncompleteChar: '-' } : {}),
    });
    this.bar = this.bars.create(1, 0, { sent: 0, failed: 0, deferred: 0, left: 0, rate: '0.0', etaText: '?' });
    // cli-progress needs the trailing newline on log lines, and only prints
    // them at its next redraw: once the bar is stopped, write directly.
    this.lines = new PlainReporter((line) => (this.stopped ? stream.write(`${line}\n`) : this.bars.log(`${line}\n`)));
  }

  readonly onEvent = (e: EngineEvent): void => {
    if (e.type === 'progress' || e.type === 'run-started' || e.type === 'run-finished') {
      const c = e.counts;
      const left = c.queued + c.deferred + c.sending;
      const done = c.sent + c.failed + c.suppressed + c.cancelled;
      this.window.push({ at: e.at, sent: c.sent });
      while (this.window.length > 1 && e.at - (this.window[0]?.at ?? e.at) > 10_000) this.window.shift();
      const first = this.window[0] ?? { at: e.at, sent: c.sent };
      const rate = e.at > first.at ? ((c.sent - first.sent) * 1000) / (e.at - first.at) : 0;
      this.bar.setTotal(Math.max(1, done + left));
      this.bar.update(done, { sent: c.sent, failed: c.failed, deferred: c.deferred, left, rate: rate.toFixed(1), etaText: rate > 0 ? fmtDuration((left / rate) * 1000) : '?' });
      if (e.type === 'progress') return;
    }
    if (e.type === 'run-finished') this.stop();
    this.lines.onEvent(e);
  };

  /** Leaves the terminal clean if the run ends without a run-finished event (an error). */
  stop(): void {
    if (this.stopped) return;
    this.bars.stop();
    this.stopped = true;
  }
}
