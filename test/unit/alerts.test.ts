import { describe, expect, it } from 'vitest';
import { applyAlertConfig, defaultAlertSettings, type AlertSettings } from '../../src/alerts/config.js';
import { AlertEvaluator } from '../../src/alerts/evaluator.js';
import type { Category } from '../../src/engine/classify.js';
import type { Alert, EngineEvent } from '../../src/engine/events.js';
import { emptyCounts, type MessageState, type StateCounts } from '../../src/store/types.js';
import { PlainReporter } from '../../src/ui/plain-reporter.js';

/**
 * The alert rules with a fake clock: every event carries its own `at`, and
 * progress events drive the evaluator's ticks, as in a real run.
 */

const T0 = 1_700_000_000_000;
const S = 1000;
const MIN = 60_000;

function counts(c: Partial<Record<MessageState, number>> = {}): StateCounts {
  return { ...emptyCounts(), ...c };
}

const ev = {
  started: (at: number): EngineEvent => ({ type: 'run-started', at, campaign: 'c', owner: 'o', transport: 'smtp://127.0.0.1:25', counts: counts({ queued: 100 }), reclaimed: 0 }),
  sent: (at: number): EngineEvent => ({ type: 'message-sent', at, line: 2, domain: 'a.test', latencyMs: 40, possibleDuplicate: false }),
  deferred: (at: number, category: Category = 'retry'): EngineEvent => ({ type: 'message-deferred', at, line: 2, domain: 'a.test', category, code: 451, reply: '451 4.3.0 later', retryAt: at + MIN }),
  failed: (at: number, category: Category = 'message-rejected'): EngineEvent => ({ type: 'message-failed', at, line: 2, domain: 'a.test', category, reason: category, code: 550, reply: '550 no' }),
  progress: (at: number, o: { queued?: number; deferred?: number; nextRetryAt?: number; paused?: boolean; openConnections?: number } = {}): EngineEvent => ({
    type: 'progress',
    at,
    counts: counts({ queued: o.queued ?? 50, deferred: o.deferred ?? 0 }),
    inFlight: 2,
    openConnections: o.openConnections ?? 2,
    stalled: 0,
    nextRetryAt: o.nextRetryAt,
    paused: o.paused ?? false,
  }),
  finished: (at: number): EngineEvent => ({ type: 'run-finished', at, outcome: { kind: 'finished' }, counts: counts({ sent: 10 }), possibleDuplicates: 0 }),
};

/** Only the rule under test is on, so another rule's alerts never muddle the assertions. */
function only(rule: keyof AlertSettings, config: Record<string, unknown> = {}): AlertSettings {
  const off = { 'queue-stalled': false, 'error-rate': false, 'bounce-rate': false, 'connections-failing': false, 'rate-floor': false };
  return applyAlertConfig(defaultAlertSettings(), { ...off, [rule]: config, clearFor: '1m' }, 'test', '/');
}

function harness(settings: AlertSettings): { feed: (...events: EngineEvent[]) => void; alerts: Alert[]; evaluator: AlertEvaluator } {
  const alerts: Alert[] = [];
  const evaluator = new AlertEvaluator(settings, (e) => {
    if (e.type === 'alert') alerts.push(e.alert);
    evaluator.onEvent(e); // alerts come back through the listener list; the evaluator must ignore them
  });
  evaluator.onEvent(ev.started(T0));
  return { feed: (...events) => events.forEach((e) => evaluator.onEvent(e)), alerts, evaluator };
}

/** n outcomes spread over one second each, starting at `from`. */
function outcomes(from: number, n: number, make: (at: number) => EngineEvent): EngineEvent[] {
  return Array.from({ length: n }, (_, i) => make(from + i * 100));
}

describe('error-rate', () => {
  it('fires when failed + deferred exceed the threshold over at least minSamples outcomes, with the figures', () => {
    const h = harness(only('error-rate'));
    h.feed(...outcomes(T0 + S, 15, ev.sent), ...outcomes(T0 + 3 * S, 6, (at) => ev.failed(at)), ...outcomes(T0 + 4 * S, 4, (at) => ev.deferred(at)));
    h.feed(ev.progress(T0 + 5 * S));
    expect(h.alerts).toEqual([{ rule: 'error-rate', state: 'firing', severity: 'warning', message: 'error rate 40%: 10 of 25 outcomes failed or deferred in the last 5m 00s (threshold 20%)' }]);
    expect(h.evaluator.firing()).toEqual(['error-rate']);
  });

  it('does not fire below the minimum sample, however bad the ratio', () => {
    const h = harness(only('error-rate'));
    h.feed(ev.sent(T0 + S), ev.failed(T0 + S), ev.progress(T0 + 2 * S));
    h.feed(...outcomes(T0 + 3 * S, 17, (at) => ev.failed(at)), ev.progress(T0 + 6 * S));
    expect(h.alerts).toEqual([]); // 18 of 19 failed: still under minSamples 20
    h.feed(ev.failed(T0 + 7 * S), ev.progress(T0 + 8 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
  });

  it('forgets outcomes older than the window', () => {
    const h = harness(only('error-rate', { window: '1m' }));
    h.feed(...outcomes(T0, 30, (at) => ev.failed(at)), ev.progress(T0 + 30 * S));
    expect(h.alerts).toHaveLength(1);
    const late = harness(only('error-rate', { window: '1m' }));
    late.feed(...outcomes(T0, 30, (at) => ev.failed(at)), ev.progress(T0 + 2 * MIN));
    expect(late.alerts).toEqual([]);
  });

  it('resolves only after the rate stayed below 80 % of the threshold for clearFor, then may fire again', () => {
    const h = harness(only('error-rate', { window: '1m', minSamples: 10 }));
    h.feed(...outcomes(T0, 10, (at) => ev.failed(at)), ev.progress(T0 + 5 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
    // The failures leave the window; successes bring the rate to 0 %.
    let t = T0 + 70 * S;
    h.feed(...outcomes(t, 20, ev.sent), ev.progress(t + 5 * S));
    expect(h.alerts).toHaveLength(1); // clear for 0 s: not yet
    t += 35 * S;
    h.feed(ev.sent(t), ev.progress(t));
    expect(h.alerts).toHaveLength(1); // clear for 30 s
    t += 31 * S;
    h.feed(ev.sent(t), ev.progress(t));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved']);
    expect(h.alerts[1]?.message).toMatch(/^error rate 0%: 0 of \d+ outcomes/);
    expect(h.evaluator.firing()).toEqual([]);
    // A new burst fires again.
    t += 10 * S;
    h.feed(...outcomes(t, 40, (at) => ev.failed(at)), ev.progress(t + 5 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved', 'firing']);
  });

  it('does not flap while the rate hovers around the threshold', () => {
    const h = harness(only('error-rate', { window: '30s', minSamples: 10 }));
    // Each 10 s: 10 outcomes at 30 % then at 10 %: the 30 s window swings between about 17 % and 23 %.
    for (let k = 0; k < 60; k++) {
      const t = T0 + k * 10 * S;
      const bad = k % 2 === 0 ? 3 : 1;
      h.feed(...outcomes(t, bad, (at) => ev.failed(at)), ...outcomes(t + 500, 10 - bad, ev.sent), ev.progress(t + 9 * S));
    }
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
  });
});

describe('bounce-rate', () => {
  it('counts bad-recipient failures over final outcomes only (deferrals are neither delivered nor bounced)', () => {
    const h = harness(only('bounce-rate', { threshold: 10, minSamples: 20 }));
    // 3 bounces of 20 finals = 15 %; with the 40 deferrals counted it would be 5 %.
    h.feed(...outcomes(T0, 17, ev.sent), ...outcomes(T0 + 2 * S, 3, (at) => ev.failed(at, 'bad-recipient')), ...outcomes(T0 + 3 * S, 40, (at) => ev.deferred(at)));
    h.feed(ev.progress(T0 + 8 * S));
    expect(h.alerts).toEqual([{ rule: 'bounce-rate', state: 'firing', severity: 'critical', message: 'bounce rate 15%: 3 of 20 final outcomes were bad-recipient in the last 10m 00s (threshold 10%)' }]);
  });

  it('other failures are not bounces', () => {
    const h = harness(only('bounce-rate', { threshold: 10, minSamples: 20 }));
    h.feed(...outcomes(T0, 30, (at) => ev.failed(at, 'message-rejected')), ev.progress(T0 + 5 * S));
    expect(h.alerts).toEqual([]);
  });

  it('fires on the last tick at run-finished, so a run shorter than one progress interval still alerts', () => {
    const h = harness(only('bounce-rate', { threshold: 10, minSamples: 5 }));
    h.feed(...outcomes(T0, 6, (at) => ev.failed(at, 'bad-recipient')), ev.sent(T0 + S), ev.finished(T0 + 2 * S));
    expect(h.alerts.map((a) => `${a.rule} ${a.state}`)).toEqual(['bounce-rate firing']);
    // Nothing is evaluated after the end.
    h.feed(ev.progress(T0 + 10 * MIN));
    expect(h.alerts).toHaveLength(1);
  });
});

describe('queue-stalled', () => {
  it('fires after N minutes without an outcome while work is due, naming the queue', () => {
    const h = harness(only('queue-stalled', { after: '5m' }));
    h.feed(ev.sent(T0 + S));
    for (let t = T0 + 5 * S; t < T0 + S + 5 * MIN; t += 5 * S) h.feed(ev.progress(t));
    expect(h.alerts).toEqual([]);
    h.feed(ev.progress(T0 + S + 5 * MIN));
    expect(h.alerts).toHaveLength(1);
    expect(h.alerts[0]).toMatchObject({ rule: 'queue-stalled', state: 'firing', severity: 'critical' });
    expect(h.alerts[0]?.message).toBe('queue not draining: no message finished for 5m 00s while work is due (50 queued, 0 deferred, 2 in flight)');
  });

  it('does not fire while the operator has paused leasing, nor while deferred work is not yet due', () => {
    const paused = harness(only('queue-stalled', { after: '1m' }));
    for (let t = T0; t <= T0 + 10 * MIN; t += 5 * S) paused.feed(ev.progress(t, { paused: true }));
    expect(paused.alerts).toEqual([]);

    const waiting = harness(only('queue-stalled', { after: '1m' }));
    const retryAt = T0 + 10 * MIN;
    for (let t = T0; t < retryAt; t += 5 * S) waiting.feed(ev.progress(t, { queued: 0, deferred: 5, nextRetryAt: retryAt }));
    expect(waiting.alerts).toEqual([]);
    // The retry comes due after 10 quiet minutes: the stall clock starts now, not at the last outcome.
    waiting.feed(ev.progress(retryAt + S, { queued: 0, deferred: 5, nextRetryAt: retryAt }));
    expect(waiting.alerts).toEqual([]);
    waiting.feed(ev.progress(retryAt + S + MIN, { queued: 0, deferred: 5, nextRetryAt: retryAt }));
    expect(waiting.alerts.map((a) => a.state)).toEqual(['firing']);
  });

  it('restarts the stall clock when the operator continues leasing', () => {
    const h = harness(only('queue-stalled', { after: '1m' }));
    for (let t = T0; t <= T0 + 5 * MIN; t += 5 * S) h.feed(ev.progress(t, { paused: true }));
    h.feed({ type: 'leasing-resumed', at: T0 + 5 * MIN + S });
    h.feed(ev.progress(T0 + 5 * MIN + 5 * S));
    expect(h.alerts).toEqual([]);
    h.feed(ev.progress(T0 + 6 * MIN + 5 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
  });

  it('resolves once messages finish again and stay that way for clearFor', () => {
    const h = harness(only('queue-stalled', { after: '1m' }));
    h.feed(ev.progress(T0 + MIN));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
    const t = T0 + 2 * MIN;
    h.feed(ev.sent(t), ev.progress(t + S));
    h.feed(ev.sent(t + 30 * S), ev.progress(t + 31 * S));
    expect(h.alerts).toHaveLength(1);
    h.feed(ev.sent(t + 60 * S), ev.progress(t + 61 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved']);
    expect(h.alerts[1]?.message).toBe('messages are finishing again (50 queued, 0 deferred, 2 in flight)');
  });

  it('does not fire at run-finished, when there is no queue left to watch', () => {
    const h = harness(only('queue-stalled', { after: '1m' }));
    h.feed(ev.progress(T0 + 30 * S), ev.finished(T0 + 10 * MIN));
    expect(h.alerts).toEqual([]);
  });
});

describe('rate-floor', () => {
  it('is off by default', () => {
    const h = harness({ ...defaultAlertSettings(), 'queue-stalled': { ...defaultAlertSettings()['queue-stalled'], enabled: false } });
    for (let t = T0; t <= T0 + 20 * MIN; t += 5 * S) h.feed(ev.progress(t));
    expect(h.alerts).toEqual([]);
  });

  it('requires a floor to be turned on', () => {
    expect(() => only('rate-floor', { window: '1m' })).toThrow(/rate-floor: a floor is required/);
  });

  it('fires below the floor past the warm-up with work due, and resolves above it', () => {
    const h = harness(only('rate-floor', { floor: '2/s', window: '1m', warmup: '1m' }));
    let t = T0;
    // 1 message/s for 3 minutes: nothing during the warm-up, nor until half a window has passed after it.
    for (; t < T0 + MIN + 25 * S; t += S) {
      h.feed(ev.sent(t));
      if ((t - T0) % (5 * S) === 0) h.feed(ev.progress(t));
    }
    expect(h.alerts).toEqual([]);
    for (; t <= T0 + 3 * MIN; t += S) {
      h.feed(ev.sent(t));
      if ((t - T0) % (5 * S) === 0) h.feed(ev.progress(t));
    }
    expect(h.alerts.map((a) => a.state)).toEqual(['firing']);
    expect(h.alerts[0]?.message).toMatch(/^send rate 1\.0\d\/s over the last .* with work due \(floor 2\.00\/s; 50 queued/);
    // 3/s from now on: above floor / 0.8 = 2.5/s once the window has filled with it.
    for (; t <= T0 + 6 * MIN; t += S) {
      h.feed(ev.sent(t), ev.sent(t + 300), ev.sent(t + 600));
      if ((t - T0) % (5 * S) === 0) h.feed(ev.progress(t));
    }
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved']);
  });

  it('does not fire when the queue is empty or leasing is paused', () => {
    const h = harness(only('rate-floor', { floor: '2/s', window: '1m', warmup: '0s' }));
    for (let t = T0; t <= T0 + 5 * MIN; t += 5 * S) h.feed(ev.progress(t, { queued: 0 }));
    for (let t = T0 + 5 * MIN; t <= T0 + 10 * MIN; t += 5 * S) h.feed(ev.progress(t, { paused: true }));
    expect(h.alerts).toEqual([]);
  });
});

describe('connections-failing', () => {
  it('fires when every attempt in the window failed to connect, at least minFailures of them', () => {
    const h = harness(only('connections-failing', { minFailures: 5 }));
    h.feed(...outcomes(T0, 4, (at) => ev.deferred(at, 'connection')), ev.progress(T0 + 5 * S));
    expect(h.alerts).toEqual([]);
    h.feed(ev.deferred(T0 + 6 * S, 'connection'), ev.progress(T0 + 10 * S));
    expect(h.alerts).toEqual([{ rule: 'connections-failing', state: 'firing', severity: 'critical', message: '5 of 5 attempts in the last 2m 00s failed to connect; 2 connections open' }]);
  });

  it('does not fire when the server answers some attempts (one domain refused, the relay works)', () => {
    const h = harness(only('connections-failing', { minFailures: 5 }));
    h.feed(...outcomes(T0, 10, (at) => ev.deferred(at, 'connection')), ev.sent(T0 + 2 * S), ev.progress(T0 + 5 * S));
    expect(h.alerts).toEqual([]);
  });

  it('fires on fewer failures when no connection is open and work is due', () => {
    const h = harness(only('connections-failing', { minFailures: 5 }));
    h.feed(ev.deferred(T0 + S, 'connection'), ev.progress(T0 + 5 * S, { openConnections: 0, queued: 0, deferred: 1, nextRetryAt: T0 + MIN }));
    expect(h.alerts).toEqual([]); // nothing due: the pool is simply idle
    h.feed(ev.progress(T0 + 10 * S, { openConnections: 0, queued: 30 }));
    expect(h.alerts.map((a) => a.message)).toEqual(['1 of 1 attempts in the last 2m 00s failed to connect; 0 connections open']);
  });

  it('resolves once the server answers again for clearFor', () => {
    const h = harness(only('connections-failing', { minFailures: 3 }));
    h.feed(...outcomes(T0, 3, (at) => ev.deferred(at, 'connection')), ev.progress(T0 + 5 * S));
    expect(h.alerts).toHaveLength(1);
    h.feed(ev.sent(T0 + 20 * S), ev.progress(T0 + 20 * S), ev.progress(T0 + 50 * S));
    expect(h.alerts).toHaveLength(1);
    h.feed(ev.progress(T0 + 81 * S));
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved']);
    expect(h.alerts[1]?.message).toBe('3 of 4 attempts in the last 2m 00s failed to connect; 2 connections open');
  });
});

describe('alert configuration', () => {
  it('turns rules off, overrides fields and severity, and refuses unknown keys and bad values, naming the place', () => {
    const s = applyAlertConfig(defaultAlertSettings(), { 'error-rate': false, 'bounce-rate': { threshold: '2%', severity: 'warning' } }, 'f.yaml: alerts', '/cfg');
    expect(s['error-rate'].enabled).toBe(false);
    expect(s['bounce-rate']).toMatchObject({ enabled: true, threshold: 0.02, severity: 'warning', minSamples: 50, windowMs: 10 * MIN });
    expect(() => applyAlertConfig(defaultAlertSettings(), { 'eror-rate': {} }, 'f.yaml: alerts', '/')).toThrow('f.yaml: alerts: unknown key "eror-rate"');
    expect(() => applyAlertConfig(defaultAlertSettings(), { 'error-rate': { threshold: 0 } }, 'f.yaml: alerts', '/')).toThrow(/f\.yaml: alerts\.error-rate\.threshold must be a percentage/);
    expect(() => applyAlertConfig(defaultAlertSettings(), { 'queue-stalled': { after: 'soon' } }, 'a', '/')).toThrow(/a\.queue-stalled\.after/);
    expect(() => applyAlertConfig(defaultAlertSettings(), { actions: { command: 'notify.sh' } }, 'a', '/')).toThrow(/a\.actions\.command must be a non-empty array/);
    expect(() => applyAlertConfig(defaultAlertSettings(), { actions: { webhook: 'ftp://x/y' } }, 'a', '/')).toThrow(/must be an http/);
  });

  it('resolves a relative command path against the file it is written in; a bare name is left to PATH', () => {
    expect(applyAlertConfig(defaultAlertSettings(), { actions: { command: ['./bin/page', '-v'] } }, 'a', '/etc/mailq').actions.command).toEqual(['/etc/mailq/bin/page', '-v']);
    expect(applyAlertConfig(defaultAlertSettings(), { actions: { command: ['logger', '-t', 'mailq'] } }, 'a', '/etc/mailq').actions.command).toEqual(['logger', '-t', 'mailq']);
  });
});

describe('plain reporter', () => {
  it('prints firing and resolved lines and lists the run\'s alerts in the final summary', () => {
    const lines: string[] = [];
    const r = new PlainReporter((l) => lines.push(l));
    r.onEvent(ev.started(T0));
    r.onEvent({ type: 'alert', at: T0 + S, alert: { rule: 'error-rate', state: 'firing', severity: 'warning', message: 'error rate 40%' } });
    r.onEvent({ type: 'alert', at: T0 + 2 * S, alert: { rule: 'error-rate', state: 'resolved', severity: 'warning', message: 'error rate 1%' } });
    r.onEvent({ type: 'alert', at: T0 + 3 * S, alert: { rule: 'bounce-rate', state: 'firing', severity: 'critical', message: 'bounce rate 60%' } });
    r.onEvent(ev.finished(T0 + 4 * S));
    expect(lines).toContain('mailq: ALERT error-rate firing (warning): error rate 40%');
    expect(lines).toContain('mailq: alert error-rate resolved: error rate 1%');
    expect(lines.at(-1)).toBe('mailq: alerts during the run: error-rate (warning, fired 1×, resolved); bounce-rate (critical, fired 1×, still firing)');
  });

  it('prints no alert summary for a run without alerts', () => {
    const lines: string[] = [];
    const r = new PlainReporter((l) => lines.push(l));
    r.onEvent(ev.started(T0));
    r.onEvent(ev.finished(T0 + S));
    expect(lines.some((l) => l.includes('alert'))).toBe(false);
  });
});
