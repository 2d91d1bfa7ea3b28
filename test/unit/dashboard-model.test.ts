import { describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../src/engine/events.js';
import { emptyCounts, type MessageState } from '../../src/store/types.js';
import { normalizeReply } from '../../src/ui/dashboard/format.js';
import { createDashboardModel, type DashboardModelOptions } from '../../src/ui/dashboard/model.js';
import { SampleRing, SecondRing, TopStrings } from '../../src/ui/dashboard/rolling.js';

// Notices carry local clock times; pin the zone so the expected texts hold anywhere.
process.env['TZ'] = 'UTC';

/** 2023-11-14T22:13:20Z, a whole second, so window arithmetic in the tests is exact. */
const T0 = 1_700_000_000_000;

class Clock {
  t = T0;
  readonly now = (): number => this.t;
}

const counts = (c: Partial<Record<MessageState, number>>): Record<MessageState, number> => ({ ...emptyCounts(), ...c });

function setup(options: DashboardModelOptions = {}, queued = 10_000) {
  const clock = new Clock();
  const model = createDashboardModel(clock.now, options);
  model.apply({ type: 'run-started', at: T0, campaign: 'spring', owner: 'o', transport: 'smtp://127.0.0.1:2525', counts: counts({ queued }), reclaimed: 0 });
  let line = 0;
  const sent = (domain = 'example.com', latencyMs = 100): void => {
    model.apply({ type: 'message-sent', at: clock.t, line: ++line, domain, latencyMs, possibleDuplicate: false });
  };
  /** `n` messages evenly spread over `ms`, advancing the clock to the end. */
  const sendOver = (n: number, ms: number, domain = 'example.com'): void => {
    const step = ms / n;
    const end = clock.t + ms;
    for (let i = 1; i <= n; i++) {
      clock.t = Math.round(end - ms + i * step);
      sent(domain);
    }
    clock.t = end;
  };
  const progress = (c: Partial<Record<MessageState, number>>, extra: Partial<Extract<EngineEvent, { type: 'progress' }>> = {}): void => {
    model.apply({ type: 'progress', at: clock.t, counts: counts(c), inFlight: 0, openConnections: 0, stalled: 0, nextRetryAt: undefined, paused: false, ...extra });
  };
  return { clock, model, sent, sendOver, progress };
}

describe('dashboard model: rates and ETA', () => {
  it('measures the send rate over the last 10 s and since the start', () => {
    const { clock, model, sendOver } = setup();
    sendOver(200, 20_000); // 10/s for 20 s
    expect(model.snapshot().rate.last10s).toBeCloseTo(10, 0);
    sendOver(500, 10_000); // then 50/s for 10 s
    const s = model.snapshot();
    expect(s.rate.last10s).toBeCloseTo(50, 0);
    expect(s.rate.overall).toBeCloseTo(700 / 30, 1);
    // Nothing for 15 s: the window empties, the overall rate only decays.
    clock.t += 15_000;
    const idle = model.snapshot();
    expect(idle.rate.last10s).toBe(0);
    expect(idle.rate.overall).toBeCloseTo(700 / 45, 1);
  });

  it('divides by the time since the start while the run is younger than the window', () => {
    const { model, sendOver } = setup();
    sendOver(30, 3_000);
    expect(model.snapshot().rate.last10s).toBeCloseTo(10, 0);
  });

  it('estimates the time left from the last-10-s rate, and says when it cannot', () => {
    const { clock, model, sendOver, progress } = setup({}, 1_100);
    sendOver(100, 10_000); // 10/s
    progress({ sent: 100, queued: 1_000 });
    expect((model.snapshot().progress.etaMs ?? 0) / 1000).toBeCloseTo(100, -1);
    clock.t += 11_000; // everything throttled: no rate, no ETA
    expect(model.snapshot().progress.etaMs).toBeUndefined();
    progress({ sent: 1_100 });
    expect(model.snapshot().progress.etaMs).toBe(0);
  });

  it('counts outcomes between progress events on top of the last store count', () => {
    const { model, sent, progress } = setup({}, 100);
    progress({ queued: 90, sending: 10 });
    sent();
    sent();
    model.apply({ type: 'message-failed', at: T0, line: 9, domain: 'x.org', category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: '550 5.1.1 no' });
    let p = model.snapshot().progress;
    expect([p.sent, p.failed, p.done, p.remaining, p.total]).toEqual([2, 1, 3, 97, 100]);
    // The next progress event recounts the store: no double counting.
    progress({ queued: 85, sending: 12, sent: 2, failed: 1 });
    p = model.snapshot().progress;
    expect([p.sent, p.failed, p.remaining, p.total]).toEqual([2, 1, 97, 100]);
  });
});

describe('dashboard model: latency', () => {
  it('gives p50 and p95 of lease-to-250 latency', () => {
    const { model, sent } = setup();
    for (let ms = 100; ms >= 1; ms--) sent('example.com', ms);
    const l = model.snapshot().latency;
    expect([l.p50, l.p95, l.samples]).toEqual([50, 95, 100]);
  });

  it('keeps only the last 1,000 samples, so old latencies stop counting', () => {
    const { model, sent } = setup();
    for (let i = 0; i < 5_000; i++) sent('example.com', 2_000);
    for (let i = 0; i < 1_000; i++) sent('example.com', 20);
    const l = model.snapshot().latency;
    expect([l.p50, l.p95, l.samples]).toEqual([20, 20, 1_000]);
  });

  it('SampleRing percentiles are nearest-rank', () => {
    const r = new SampleRing(10);
    for (const v of [5, 1, 4, 2, 3]) r.add(v);
    expect([r.percentile(0), r.percentile(50), r.percentile(100)]).toEqual([1, 3, 5]);
  });
});

describe('dashboard model: domains', () => {
  it('lists the busiest domains first, with sent, deferred, failed and current rate', () => {
    const { clock, model, sent } = setup({ topDomains: 5 });
    for (let d = 1; d <= 30; d++) for (let i = 0; i < d; i++) sent(`d${d}.example`);
    model.apply({ type: 'message-deferred', at: clock.t, line: 1, domain: 'd30.example', category: 'retry', code: 451, reply: '451 4.3.0 later', retryAt: clock.t + 60_000 });
    const s = model.snapshot();
    expect(s.domains.map((d) => d.domain)).toEqual(['d30.example', 'd29.example', 'd28.example', 'd27.example', 'd26.example']);
    expect(s.domains[0]).toMatchObject({ sent: 30, deferred: 1, failed: 0 });
    expect(s.domains[0]?.rate).toBeGreaterThan(0);
    expect(s.domainCount).toBe(30);
  });

  it('puts a throttled domain first and shows a provider-group pause on its domains', () => {
    const keyFor = (d: string): string => (d === 'gmail.com' || d === 'googlemail.com' ? 'google' : d);
    const { clock, model, sent } = setup({ topDomains: 3, keyFor });
    for (let i = 0; i < 50; i++) sent('big.example');
    for (let i = 0; i < 40; i++) sent('gmail.com');
    for (let i = 0; i < 2; i++) sent('small.example');
    model.apply({ type: 'domain-throttled', at: clock.t, key: 'google', until: clock.t + 7_200_000, paused: true, reason: '421 4.7.28 unusual rate' });
    model.apply({ type: 'domain-throttled', at: clock.t, key: 'small.example', until: clock.t + 30_000, paused: false, reason: '421 slow down' });
    model.apply({ type: 'domain-throttled', at: clock.t, key: 'yahoo', until: clock.t + 60_000, paused: true, reason: '421 TSS04' });
    const rows = model.snapshot().domains;
    // Paused first (by volume), then slowed, then the rest; "yahoo" has no domain row of its own.
    expect(rows.map((r) => [r.domain, r.throttle?.paused])).toEqual([
      ['gmail.com', true],
      ['yahoo', true],
      ['small.example', false],
      ['big.example', undefined],
    ]);
    expect(rows[0]?.throttle).toMatchObject({ key: 'google', until: clock.t + 7_200_000, reason: '421 4.7.28 unusual rate' });
    model.apply({ type: 'domain-resumed', at: clock.t, key: 'google' });
    expect(model.snapshot().domains.find((r) => r.domain === 'gmail.com')?.throttle).toBeUndefined();
  });

  it('stops tracking new domains past the cap and says so', () => {
    const { model, sent } = setup({ maxDomains: 100 });
    for (let d = 0; d < 1_000; d++) sent(`d${d}.example`);
    const s = model.snapshot();
    expect(s.domainCount).toBe(100);
    expect(s.moreDomains).toBe(true);
    expect(s.progress.sent).toBe(1_000);
  });
});

describe('dashboard model: errors', () => {
  it('groups deferrals and failures by category with the most common reply, addresses masked', () => {
    const { clock, model } = setup();
    for (let i = 0; i < 40; i++) {
      model.apply({ type: 'message-failed', at: clock.t, line: i, domain: 'x.org', category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: `550 5.1.1 <user${i}@x.org>: Recipient address rejected: User unknown` });
    }
    for (let i = 0; i < 3; i++) {
      model.apply({ type: 'message-failed', at: clock.t, line: i, domain: 'x.org', category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: '550 5.1.1 mailbox unavailable' });
    }
    for (let i = 0; i < 300; i++) {
      model.apply({ type: 'message-deferred', at: clock.t, line: i, domain: 'y.org', category: 'retry', code: 451, reply: '451 4.3.0 Temporary failure', retryAt: clock.t + 60_000 });
    }
    model.apply({ type: 'message-failed', at: clock.t, line: 1, domain: 'y.org', category: 'retry', reason: 'expired', code: 451, reply: undefined });
    const errors = model.snapshot().errors;
    expect(errors).toEqual([
      { category: 'retry', deferred: 300, failed: 1, reply: '451 4.3.0 Temporary failure' },
      { category: 'bad-recipient', deferred: 0, failed: 43, reply: '550 5.1.1 <address>: Recipient address rejected: User unknown' },
    ]);
  });

  it('keeps the most common reply in bounded memory among 100,000 distinct texts', () => {
    const { clock, model } = setup();
    for (let i = 0; i < 100_000; i++) {
      // One reply in five is the common one; the rest are all different.
      const reply = i % 5 === 0 ? '554 5.7.1 Message rejected as spam' : `554 5.7.1 rejected by policy rule ${i}`;
      model.apply({ type: 'message-failed', at: clock.t, line: i, domain: 'x.org', category: 'message-rejected', reason: 'message-rejected', code: 554, reply });
    }
    expect(model.snapshot().errors[0]).toEqual({ category: 'message-rejected', deferred: 0, failed: 100_000, reply: '554 5.7.1 Message rejected as spam' });
    const top = new TopStrings(32);
    for (let i = 0; i < 100_000; i++) top.add(i % 5 === 0 ? 'common' : `rare ${i}`);
    expect(top.size).toBe(32);
    expect(top.top()).toBe('common');
  });

  it('never lets control sequences from a reply through', () => {
    const n = normalizeReply('550 \u001b[2J\u001b]8;;http://x\u0007click\u001b]8;;\u0007 bad\r\nline two\u2028x 漢');
    // eslint-disable-next-line no-control-regex -- asserting their absence
    expect(n).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028]/);
    expect(n).toBe('550 [2J ]8;;http://x click ]8;; bad line two?x ?');
  });

  it('masks every address in a reply, bracketed or bare', () => {
    expect(normalizeReply('550 5.7.1 MAIL FROM:<bounce@news.example> rejected for ann@x.org and <bob.b+tag@y.org>, sorry')).toBe(
      '550 5.7.1 MAIL FROM:<address> rejected for <address> and <address>, sorry',
    );
  });

  it('masks trace ids so replies differing only by them count as one', () => {
    expect(normalizeReply('421 4.7.0 Try again later d2e1a72fcca58-6f1c3b2a1sm12345pgd.12 - gsmtp')).toBe('421 4.7.0 Try again later # - gsmtp');
  });
});

describe('dashboard model: alerts, pauses and notices', () => {
  it('shows an alert while it fires and prints a notice when it starts and ends', () => {
    const { clock, model } = setup();
    const alert = (state: 'firing' | 'resolved'): void =>
      model.apply({ type: 'alert', at: clock.t, alert: { rule: 'error-rate', state, severity: 'critical', message: 'error rate 12% over 5 min' } });
    alert('firing');
    clock.t += 5_000;
    alert('firing'); // re-evaluated: same state, no new notice
    expect(model.snapshot().alerts).toEqual([{ rule: 'error-rate', severity: 'critical', message: 'error rate 12% over 5 min', since: T0 }]);
    clock.t += 60_000;
    alert('resolved');
    const s = model.snapshot();
    expect(s.alerts).toEqual([]);
    expect(s.finished.map((l) => [l.at, l.severity, l.text])).toEqual([
      [T0, 'critical', 'ALERT critical error-rate: error rate 12% over 5 min'],
      [T0 + 65_000, 'info', 'resolved error-rate: error rate 12% over 5 min'],
    ]);
  });

  it('follows the operator pause from events and progress', () => {
    const { model, progress } = setup();
    model.apply({ type: 'leasing-paused', at: T0 });
    expect(model.snapshot().paused).toBe(true);
    progress({ queued: 10 }, { paused: false });
    expect(model.snapshot().paused).toBe(false);
  });

  it('prints one notice per change of a domain throttle, not one per reply', () => {
    const { clock, model } = setup();
    for (let i = 0; i < 50; i++) model.apply({ type: 'domain-throttled', at: clock.t, key: 'yahoo', until: clock.t + 1000 + i, paused: false, reason: '421 slow' });
    model.apply({ type: 'domain-throttled', at: clock.t, key: 'yahoo', until: clock.t + 7_200_000, paused: true, reason: '421 4.7.0 [TSS04] Messages temporarily deferred' });
    model.apply({ type: 'domain-resumed', at: clock.t, key: 'yahoo' });
    model.apply({ type: 'domain-resumed', at: clock.t, key: 'yahoo' });
    expect(model.snapshot().finished.map((l) => l.text.split(':')[0])).toEqual(['yahoo slowed down until 22', 'yahoo paused until 00', 'yahoo resumed']);
  });

  it('notes a lowered rate once and shows no countdown for it (the engine sends no resume for it)', () => {
    const { clock, model, sent } = setup();
    sent('outlook.com');
    for (let i = 0; i < 5; i++) model.apply({ type: 'domain-throttled', at: clock.t, key: 'outlook.com', until: clock.t, paused: false, reason: '421 4.7.500 Server busy' });
    const s = model.snapshot();
    expect(s.finished.map((l) => l.text)).toEqual(['outlook.com rate lowered: 421 4.7.500 Server busy']);
    expect(s.domains[0]).toMatchObject({ domain: 'outlook.com', throttle: undefined });
  });

  it('caps notices but always keeps stops and breaker trips', () => {
    const { clock, model } = setup({ maxLines: 10 });
    for (let i = 0; i < 100; i++) model.apply({ type: 'lease-lost', at: clock.t, line: i });
    model.apply({ type: 'breaker-tripped', at: clock.t, cause: 'message-rejected', count: 10 });
    model.apply({ type: 'stopping', at: clock.t, reason: 'breaker', graceful: true });
    const s = model.snapshot();
    expect(s.finished).toHaveLength(12);
    expect(s.droppedLines).toBe(90);
    expect(s.finished.slice(-2).map((l) => l.severity)).toEqual(['critical', 'warning']);
    expect(s.phase).toEqual({ kind: 'stopping', reason: 'breaker', graceful: true });
  });

  it('hands out the same notices array until a notice is added (Ink <Static> prints only new ones)', () => {
    const { model } = setup();
    const a = model.snapshot().finished;
    expect(model.snapshot().finished).toBe(a);
    model.apply({ type: 'leasing-paused', at: T0 });
    const b = model.snapshot().finished;
    expect(b).not.toBe(a);
    expect(a).toHaveLength(0);
    expect(b).toHaveLength(1);
  });

  it('takes the final counts and outcome from run-finished', () => {
    const { model, sent } = setup({}, 3);
    sent();
    model.apply({ type: 'run-finished', at: T0 + 1_000, outcome: { kind: 'finished' }, counts: counts({ sent: 3 }), possibleDuplicates: 1 });
    const s = model.snapshot();
    expect(s.phase).toEqual({ kind: 'finished', outcome: { kind: 'finished' } });
    expect([s.progress.sent, s.progress.remaining, s.progress.fraction, s.health.possibleDuplicates]).toEqual([3, 0, 1, 1]);
  });
});

describe('SecondRing', () => {
  it('sums the current second and the ones before it within the window, and forgets older ones', () => {
    const r = new SecondRing(10);
    r.add(T0 + 500);
    r.add(T0 + 5_500, 2);
    r.add(T0 + 9_999, 3);
    expect(r.sum(T0 + 9_999)).toBe(6);
    expect(r.sum(T0 + 10_000)).toBe(5); // second T0 left the window
    r.add(T0 + 100); // late sample: older than the newest second but still in the window
    expect(r.sum(T0 + 9_000)).toBe(7);
    r.add(T0 + 30_000);
    expect(r.sum(T0 + 30_000)).toBe(1);
  });
});
