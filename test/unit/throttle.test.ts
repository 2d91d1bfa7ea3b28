import { describe, it, expect } from 'vitest';
import { InputError } from '../../src/errors.js';
import { defaultDomainLimit, defaultProviderGroups, defaultThrottleConfig } from '../../src/engine/providers.js';
import { Throttle, type DomainLimit, type ThrottleConfig, type ThrottleTuning } from '../../src/engine/throttle.js';

const MIN = 60_000;
const HOUR = 3_600_000;

class FakeClock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

const limit = (perSecond: number, connections = 100): DomainLimit => ({ rate: { perSecond }, connections });

function config(over: Partial<ThrottleConfig> = {}): ThrottleConfig {
  return { globalRate: undefined, defaultLimit: limit(10), overrides: new Map(), groups: [], ...over };
}

function setup(over: Partial<ThrottleConfig> = {}, tuning: Partial<ThrottleTuning> = {}): { clock: FakeClock; t: Throttle } {
  const clock = new FakeClock();
  return { clock, t: new Throttle(config(over), clock.now, tuning) };
}

/**
 * What a greedy scheduler gets: every 10 ms, for each domain in turn, start
 * messages while the throttle admits them, each finishing at once (release),
 * so only the rate limits. Returns how many started per domain.
 */
function admitted(t: Throttle, clock: FakeClock, domains: readonly string[], durationMs: number): Map<string, number> {
  const counts = new Map<string, number>(domains.map((d) => [d, 0]));
  const end = clock.t + durationMs;
  for (; clock.t < end; clock.advance(10)) {
    for (const d of domains) {
      // A broken bucket could admit forever; fail the test instead of hanging it.
      for (let burst = 0; t.tryAcquire(d); burst++) {
        if (burst > 100_000) throw new Error(`${d}: unbounded admissions at ${clock.t}`);
        counts.set(d, (counts.get(d) ?? 0) + 1);
        t.release(d);
      }
    }
  }
  return counts;
}

/** Start messages now until refused (without releasing); how many started. Bounded so a broken bucket fails fast. */
function drain(t: Throttle, domain: string): number {
  let n = 0;
  while (t.tryAcquire(domain)) {
    if (++n > 100_000) throw new Error(`${domain}: unbounded admissions`);
  }
  return n;
}

const admittedOne = (t: Throttle, clock: FakeClock, domain: string, durationMs: number): number =>
  admitted(t, clock, [domain], durationMs).get(domain) ?? 0;

describe('token bucket', () => {
  it('holds 10/s over a simulated minute: 600 ± 11 (10 of them the initial burst)', () => {
    const { clock, t } = setup();
    const n = admittedOne(t, clock, 'example.com', 60_000);
    expect(n).toBeGreaterThanOrEqual(589);
    expect(n).toBeLessThanOrEqual(611);
  });

  it('holds a per-minute rate too: 30/m over 10 minutes is 300 + 1', () => {
    const { clock, t } = setup({ overrides: new Map([['slow.example', limit(0.5)]]) });
    const n = admittedOne(t, clock, 'slow.example', 10 * MIN);
    expect(n).toBeGreaterThanOrEqual(299);
    expect(n).toBeLessThanOrEqual(301);
  });

  it('allows a 1-second burst: capacity = rate per second', () => {
    const { t } = setup();
    expect(drain(t, 'example.com')).toBe(10);
  });

  it('has a capacity of at least 1 token for slow rates, fractional above', () => {
    const { t } = setup({ overrides: new Map([['a.example', limit(0.2)], ['b.example', limit(2.5)]]) });
    expect(t.tryAcquire('a.example')).toBe(true);
    expect(t.tryAcquire('a.example')).toBe(false);
    expect(t.tryAcquire('b.example')).toBe(true);
    expect(t.tryAcquire('b.example')).toBe(true);
    expect(t.tryAcquire('b.example')).toBe(false);
  });

  it('refills continuously: one token per 100 ms at 10/s', () => {
    const { clock, t } = setup();
    drain(t, 'example.com');
    clock.advance(99);
    expect(t.tryAcquire('example.com')).toBe(false);
    clock.advance(1);
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.tryAcquire('example.com')).toBe(false);
  });

  it('does not bank tokens beyond the burst while idle', () => {
    const { clock, t } = setup();
    expect(t.tryAcquire('example.com')).toBe(true);
    t.release('example.com');
    clock.advance(HOUR);
    expect(drain(t, 'example.com')).toBe(10);
  });
});

describe('connection cap', () => {
  it('admits up to N concurrent transactions, then one more per release', () => {
    const { t } = setup({ defaultLimit: limit(1_000, 3) });
    expect([1, 2, 3].map(() => t.tryAcquire('example.com'))).toEqual([true, true, true]);
    expect(t.inFlight('example.com')).toBe(3);
    expect(t.tryAcquire('example.com')).toBe(false);
    t.release('example.com');
    expect(t.inFlight('example.com')).toBe(2);
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.tryAcquire('example.com')).toBe(false);
  });

  it('a refusal for connections consumes no token', () => {
    const { t } = setup({ defaultLimit: limit(2, 1) });
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.tryAcquire('example.com')).toBe(false); // connection cap
    t.release('example.com');
    expect(t.tryAcquire('example.com')).toBe(true); // the second token is still there
  });

  it('throws on a release without an acquire (it would raise the cap)', () => {
    const { t } = setup();
    expect(() => t.release('example.com')).toThrow(/without a matching tryAcquire/);
    expect(t.tryAcquire('example.com')).toBe(true);
    t.release('example.com');
    expect(() => t.release('example.com')).toThrow(/without a matching tryAcquire/);
  });
});

describe('keys: groups and overrides', () => {
  const google = { name: 'google', domains: ['gmail.com', 'googlemail.com'], limit: limit(2, 3) };

  it('gmail.com and googlemail.com share one bucket', () => {
    const { t } = setup({ groups: [google] });
    expect(t.keyFor('gmail.com')).toBe('google');
    expect(t.keyFor('googlemail.com')).toBe('google');
    expect(t.tryAcquire('gmail.com')).toBe(true);
    expect(t.tryAcquire('googlemail.com')).toBe(true);
    expect(t.tryAcquire('gmail.com')).toBe(false);
    expect(t.tryAcquire('googlemail.com')).toBe(false);
  });

  it('they share one connection cap', () => {
    const { t } = setup({ groups: [{ ...google, limit: limit(100, 3) }] });
    expect(t.tryAcquire('gmail.com')).toBe(true);
    expect(t.tryAcquire('googlemail.com')).toBe(true);
    expect(t.tryAcquire('gmail.com')).toBe(true);
    expect(t.tryAcquire('googlemail.com')).toBe(false);
    expect(t.inFlight('googlemail.com')).toBe(3);
    t.release('gmail.com');
    expect(t.tryAcquire('googlemail.com')).toBe(true);
  });

  it('the group rate holds for the group as a whole over a minute', () => {
    const { clock, t } = setup({ groups: [{ ...google, limit: limit(10, 100) }] });
    const counts = admitted(t, clock, ['gmail.com', 'googlemail.com'], 60_000);
    const total = (counts.get('gmail.com') ?? 0) + (counts.get('googlemail.com') ?? 0);
    expect(total).toBeGreaterThanOrEqual(589);
    expect(total).toBeLessThanOrEqual(611);
  });

  it('matches exactly after lowercasing', () => {
    const { t } = setup({ groups: [google] });
    expect(t.keyFor('GMail.COM')).toBe('google');
    expect(t.keyFor('mail.gmail.com')).toBe('mail.gmail.com');
    expect(t.keyFor('Example.ORG')).toBe('example.org');
  });

  it('an override wins over the group: the domain gets its own bucket and cap', () => {
    const { t } = setup({ groups: [google], overrides: new Map([['GoogleMail.com', limit(1, 1)]]) });
    expect(t.keyFor('googlemail.com')).toBe('googlemail.com');
    expect(t.keyFor('gmail.com')).toBe('google');
    expect(t.limitFor('googlemail.com')).toEqual(limit(1, 1));
    expect(t.limitFor('gmail.com')).toEqual(limit(2, 3));
    expect(t.tryAcquire('googlemail.com')).toBe(true);
    expect(t.tryAcquire('googlemail.com')).toBe(false);
    expect(t.tryAcquire('gmail.com')).toBe(true);
    expect(t.tryAcquire('gmail.com')).toBe(true);
    expect(t.tryAcquire('gmail.com')).toBe(false);
  });

  it('other domains use the default limit, one bucket each', () => {
    const { t } = setup({ defaultLimit: limit(1, 10) });
    expect(t.limitFor('a.example')).toEqual(limit(1, 10));
    expect(t.tryAcquire('a.example')).toBe(true);
    expect(t.tryAcquire('a.example')).toBe(false);
    expect(t.tryAcquire('b.example')).toBe(true);
  });

  it('refuses a domain listed in two groups, and bad limits', () => {
    expect(() => setup({ groups: [google, { name: 'g2', domains: ['GMAIL.com'], limit: limit(1) }] })).toThrow(InputError);
    expect(() => setup({ groups: [google, google] })).toThrow(/defined twice/);
    expect(() => setup({ defaultLimit: limit(0) })).toThrow(InputError);
    expect(() => setup({ overrides: new Map([['x.example', limit(1, 0)]]) })).toThrow(/connections/);
    expect(() => setup({ globalRate: { perSecond: Number.NaN } })).toThrow(/global rate/);
  });
});

describe('global cap', () => {
  it('caps the whole run across domains: 5/s over 60 s is 300 ± 6 in total', () => {
    const { clock, t } = setup({ globalRate: { perSecond: 5 }, defaultLimit: limit(100) });
    const domains = ['a.example', 'b.example', 'c.example', 'd.example'];
    const counts = admitted(t, clock, domains, 60_000);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(294);
    expect(total).toBeLessThanOrEqual(306);
  });

  it('never takes a domain token without a global one', () => {
    const { clock, t } = setup({
      globalRate: { perSecond: 1 },
      overrides: new Map([['slow.example', limit(1 / 60)]]),
    });
    expect(t.tryAcquire('fast.example')).toBe(true); // global bucket now empty
    expect(t.tryAcquire('slow.example')).toBe(false); // refused for the global cap
    clock.advance(1_000);
    // slow.example refills 1 token per minute: this only works if its token was left alone.
    expect(t.tryAcquire('slow.example')).toBe(true);
  });

  it('never takes a global token without a domain one', () => {
    const { t } = setup({
      globalRate: { perSecond: 2 },
      overrides: new Map([['slow.example', limit(1 / 60)]]),
    });
    expect(t.tryAcquire('slow.example')).toBe(true); // global 2 -> 1
    expect(t.tryAcquire('slow.example')).toBe(false); // domain empty: global must stay at 1
    expect(t.tryAcquire('other.example')).toBe(true);
    expect(t.tryAcquire('other.example')).toBe(false);
  });
});

describe('fairness', () => {
  it('a paused domain refuses while the others keep their full rate', () => {
    const baseline = setup();
    const alone = admittedOne(baseline.t, baseline.clock, 'b.example', 10_000);

    const { clock, t } = setup();
    t.pause('a.example', clock.t + HOUR, 'operator');
    // 60% of the attempts go to the paused domain: three A's for every two B's.
    const counts = admitted(t, clock, ['a.example', 'a.example', 'b.example', 'a.example', 'b.example'], 10_000);
    expect(counts.get('a.example')).toBe(0);
    expect(counts.get('b.example')).toBe(alone);
    expect(alone).toBeGreaterThanOrEqual(105);
  });

  it('a slowed group does not slow other domains', () => {
    const { clock, t } = setup({ groups: [{ name: 'google', domains: ['gmail.com'], limit: limit(10) }] });
    t.onThrottle('gmail.com', { reason: '421 4.7.28 unusual rate' });
    const counts = admitted(t, clock, ['gmail.com', 'b.example'], 60_000);
    expect(counts.get('gmail.com')).toBeLessThanOrEqual(306);
    expect(counts.get('b.example')).toBeGreaterThanOrEqual(589);
  });
});

describe('nextOpportunity', () => {
  it('is now for an open domain with tokens (and for a domain never seen)', () => {
    const { clock, t } = setup();
    expect(t.nextOpportunity('never.example')).toBe(clock.t);
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.nextOpportunity('example.com')).toBe(clock.t);
  });

  it('is when the next token arrives once the bucket is empty', () => {
    const { clock, t } = setup({ defaultLimit: limit(2) });
    const start = clock.t;
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.tryAcquire('example.com')).toBe(true);
    const next = t.nextOpportunity('example.com');
    expect(next).toBe(start + 500);
    clock.t = next - 1;
    expect(t.tryAcquire('example.com')).toBe(false);
    clock.t = next;
    expect(t.tryAcquire('example.com')).toBe(true);
  });

  it('is exact for awkward rates too (7/s)', () => {
    const { clock, t } = setup({ defaultLimit: limit(7) });
    drain(t, 'example.com');
    for (let i = 0; i < 20; i++) {
      const next = t.nextOpportunity('example.com');
      expect(next).toBeGreaterThan(clock.t);
      clock.t = next - 1;
      expect(t.tryAcquire('example.com')).toBe(false);
      clock.t = next;
      expect(t.tryAcquire('example.com')).toBe(true);
    }
  });

  it('is the end of a pause', () => {
    const { clock, t } = setup();
    t.pause('example.com', clock.t + 5 * MIN, 'maintenance');
    expect(t.nextOpportunity('example.com')).toBe(clock.t + 5 * MIN);
  });

  it('is the later of the pause end and the next token', () => {
    const { clock, t } = setup({ overrides: new Map([['slow.example', limit(1 / 60)]]) });
    expect(t.tryAcquire('slow.example')).toBe(true);
    t.pause('slow.example', clock.t + 10_000, 'x');
    expect(t.nextOpportunity('slow.example')).toBe(clock.t + 60_000);
  });

  it('waits for the global bucket', () => {
    const { clock, t } = setup({ globalRate: { perSecond: 4 } });
    for (let i = 0; i < 4; i++) expect(t.tryAcquire(`d${i}.example`)).toBe(true);
    expect(t.nextOpportunity('fresh.example')).toBe(clock.t + 250);
    expect(t.nextOpportunity('d0.example')).toBe(clock.t + 250);
  });

  it('is Infinity while every connection is taken (only a release helps)', () => {
    const { t } = setup({ defaultLimit: limit(100, 1) });
    expect(t.tryAcquire('example.com')).toBe(true);
    expect(t.nextOpportunity('example.com')).toBe(Number.POSITIVE_INFINITY);
    t.release('example.com');
    expect(t.nextOpportunity('example.com')).toBeLessThan(Number.POSITIVE_INFINITY);
  });
});

describe('adaptive: onThrottle and onSuccess (AIMD)', () => {
  it('halves the rate: the observed rate over the next minute is about half', () => {
    const { clock, t } = setup();
    const before = admittedOne(t, clock, 'example.com', 60_000);
    const status = t.onThrottle('example.com', { reason: '421 4.7.0 try later' });
    expect(status).toEqual({ kind: 'slowed', factor: 0.5, until: clock.t + 10 * MIN });
    const after = admittedOne(t, clock, 'example.com', 60_000);
    expect(before).toBeGreaterThanOrEqual(600);
    // 5 tokens of burst (the capacity shrinks with the rate) + 5/s for 60 s.
    expect(after).toBeGreaterThanOrEqual(295);
    expect(after).toBeLessThanOrEqual(306);
  });

  it('shrinks the burst with the rate: a full 10-token bucket keeps 5 after halving', () => {
    const { t } = setup();
    expect(t.tryAcquire('example.com')).toBe(true);
    t.release('example.com');
    t.onThrottle('example.com', { reason: '421' });
    expect(drain(t, 'example.com')).toBe(5);
  });

  it('counts replies within the 10 s reaction window as one episode', () => {
    const { clock, t } = setup();
    for (let i = 0; i < 5; i++) t.onThrottle('example.com', { reason: '421' }); // 5 connections, same moment
    clock.advance(9_999);
    t.onThrottle('example.com', { reason: '421' });
    expect(t.status('example.com')).toMatchObject({ kind: 'slowed', factor: 0.5 });
    clock.advance(1);
    expect(t.onThrottle('example.com', { reason: '421' })).toMatchObject({ kind: 'slowed', factor: 0.25 });
  });

  it('never slows below 1 message per minute', () => {
    const { clock, t } = setup({}, { strikesBeforePause: 1_000 });
    for (let i = 0; i < 20; i++) {
      t.onThrottle('example.com', { reason: '421' });
      clock.advance(11_000);
    }
    const status = t.status('example.com');
    expect(status.kind).toBe('slowed');
    expect(status.kind === 'slowed' ? status.factor * 10 : 0).toBeCloseTo(1 / 60, 12);
    const n = admittedOne(t, clock, 'example.com', 10 * MIN);
    expect(n).toBeGreaterThanOrEqual(10);
    expect(n).toBeLessThanOrEqual(11);
  });

  it('recovers additively after the cool-down: +10% per minute with successes', () => {
    const { clock, t } = setup();
    t.onThrottle('example.com', { reason: '421' });
    const factor = (): number => {
      const s = t.status('example.com');
      return s.kind === 'slowed' ? s.factor : s.kind === 'open' ? 1 : Number.NaN;
    };
    clock.advance(10 * MIN - 1);
    t.onSuccess('example.com');
    expect(factor()).toBe(0.5); // still cooling down
    clock.advance(1);
    t.onSuccess('example.com');
    expect(factor()).toBeCloseTo(0.6, 12);
    t.onSuccess('example.com');
    expect(factor()).toBeCloseTo(0.6, 12); // one step per minute at most
    expect(t.status('example.com')).toMatchObject({ until: clock.t + MIN });
    clock.advance(5 * MIN); // no successes: no recovery, however long
    expect(factor()).toBeCloseTo(0.6, 12);
    for (let i = 0; i < 4; i++) {
      t.onSuccess('example.com');
      clock.advance(MIN);
    }
    expect(t.status('example.com')).toEqual({ kind: 'open' });
    const n = admittedOne(t, clock, 'example.com', 60_000);
    expect(n).toBeGreaterThanOrEqual(589);
  });

  it('a new throttle during recovery halves again and restarts the cool-down', () => {
    const { clock, t } = setup();
    t.onThrottle('example.com', { reason: '421' });
    clock.advance(10 * MIN);
    t.onSuccess('example.com'); // 0.6
    clock.advance(MIN);
    expect(t.onThrottle('example.com', { reason: '421' })).toEqual({ kind: 'slowed', factor: 0.3, until: clock.t + 10 * MIN });
  });

  it('pauses for the server retry-after (capped at 24 h) and halves for when it comes back', () => {
    const { clock, t } = setup();
    const status = t.onThrottle('example.com', { retryAfterMs: 90_000, reason: '421 try again in 90 seconds' });
    expect(status).toEqual({ kind: 'paused', until: clock.t + 90_000, reason: '421 try again in 90 seconds' });
    expect(t.tryAcquire('example.com')).toBe(false);
    clock.advance(90_000);
    expect(t.status('example.com')).toEqual({ kind: 'slowed', factor: 0.5, until: clock.t + 10 * MIN });
    expect(t.tryAcquire('example.com')).toBe(true);
    clock.advance(HOUR);
    expect(t.onThrottle('x.example', { retryAfterMs: 30 * 86_400_000, reason: 'r' })).toMatchObject({ until: clock.t + 24 * HOUR });
  });

  it('pauses on the third halving in a row (each within the cool-down of the previous)', () => {
    const { clock, t } = setup();
    expect(t.onThrottle('example.com', { reason: '421 #1' }).kind).toBe('slowed');
    clock.advance(5 * MIN);
    expect(t.onThrottle('example.com', { reason: '421 #2' }).kind).toBe('slowed');
    clock.advance(5 * MIN);
    expect(t.onThrottle('example.com', { reason: '421 #3' })).toEqual({ kind: 'paused', until: clock.t + 30 * MIN, reason: '421 #3' });
  });

  it('does not count halvings a full cool-down apart as repeated', () => {
    const { clock, t } = setup();
    for (let i = 0; i < 5; i++) {
      expect(t.onThrottle('example.com', { reason: '421' }).kind).toBe('slowed');
      clock.advance(10 * MIN);
    }
  });

  it('severe throttling pauses yahoo for 2 h (TSS04), the whole group, then expires', () => {
    const clock = new FakeClock();
    const t = new Throttle(defaultThrottleConfig(), clock.now);
    const reason = '421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints';
    const start = clock.t;
    expect(t.onThrottle('yahoo.com', { severe: true, reason })).toEqual({ kind: 'paused', until: start + 2 * HOUR, reason });
    expect(t.status('aol.com')).toEqual({ kind: 'paused', until: start + 2 * HOUR, reason });
    expect(t.tryAcquire('ymail.com')).toBe(false);
    expect(t.tryAcquire('gmail.com')).toBe(true);
    clock.t = start + 2 * HOUR - 1;
    expect(t.tryAcquire('yahoo.com')).toBe(false);
    clock.t = start + 2 * HOUR;
    expect(t.tryAcquire('yahoo.com')).toBe(true);
    expect(t.status('yahoo.com')).toMatchObject({ kind: 'slowed', factor: 0.5 });
  });

  it('severe throttling pauses other providers and plain domains for 30 min', () => {
    const clock = new FakeClock();
    const t = new Throttle(defaultThrottleConfig(), clock.now);
    expect(t.onThrottle('gmail.com', { severe: true, reason: 'r' })).toMatchObject({ until: clock.t + 30 * MIN });
    expect(t.onThrottle('example.org', { severe: true, reason: 'r' })).toMatchObject({ until: clock.t + 30 * MIN });
  });

  it('an overridden yahoo domain keeps the yahoo severe pause', () => {
    const clock = new FakeClock();
    const t = new Throttle(defaultThrottleConfig(new Map([['yahoo.fr', limit(1, 1)]])), clock.now);
    expect(t.keyFor('yahoo.fr')).toBe('yahoo.fr');
    expect(t.onThrottle('yahoo.fr', { severe: true, reason: 'TSS04' })).toMatchObject({ until: clock.t + 2 * HOUR });
    expect(t.status('yahoo.com')).toEqual({ kind: 'open' });
  });
});

describe('pause', () => {
  it('refuses until the pause expires, then admits again', () => {
    const { clock, t } = setup();
    t.pause('example.com', clock.t + 1_000, 'sender-blocked');
    expect(t.status('example.com')).toEqual({ kind: 'paused', until: clock.t + 1_000, reason: 'sender-blocked' });
    expect(t.tryAcquire('example.com')).toBe(false);
    clock.advance(999);
    expect(t.tryAcquire('example.com')).toBe(false);
    clock.advance(1);
    expect(t.status('example.com')).toEqual({ kind: 'open' });
    expect(t.tryAcquire('example.com')).toBe(true);
  });

  it('never shortens a pause in force', () => {
    const { clock, t } = setup();
    t.pause('example.com', clock.t + HOUR, 'long');
    t.pause('example.com', clock.t + MIN, 'short');
    expect(t.status('example.com')).toEqual({ kind: 'paused', until: clock.t + HOUR, reason: 'long' });
    t.pause('example.com', clock.t + 2 * HOUR, 'longer');
    expect(t.status('example.com')).toEqual({ kind: 'paused', until: clock.t + 2 * HOUR, reason: 'longer' });
  });

  it('onSuccess during a pause changes nothing', () => {
    const { clock, t } = setup();
    t.onThrottle('example.com', { reason: '421' });
    t.pause('example.com', clock.t + HOUR, 'p');
    clock.advance(30 * MIN);
    t.onSuccess('example.com');
    clock.advance(30 * MIN);
    expect(t.status('example.com')).toMatchObject({ kind: 'slowed', factor: 0.5, until: clock.t + 10 * MIN });
  });
});

describe('exportState / importState', () => {
  it('round-trips pauses and slow-downs into a fresh throttle (a resume)', () => {
    const clock = new FakeClock();
    const t1 = new Throttle(defaultThrottleConfig(), clock.now);
    t1.onThrottle('yahoo.com', { severe: true, reason: 'TSS04' });
    t1.onThrottle('gmail.com', { reason: '421 4.7.28' });
    t1.tryAcquire('example.org');
    t1.release('example.org');
    const rows = t1.exportState();
    expect(rows).toEqual([
      { key: 'yahoo', status: { kind: 'paused', until: clock.t + 2 * HOUR, reason: 'TSS04' }, rateFactor: 0.5 },
      { key: 'google', status: { kind: 'slowed', factor: 0.5, until: clock.t + 10 * MIN }, rateFactor: 0.5 },
      { key: 'example.org', status: { kind: 'open' }, rateFactor: 1 },
    ]);

    clock.advance(MIN); // the process restarts a minute later
    const t2 = new Throttle(defaultThrottleConfig(), clock.now);
    t2.importState(JSON.parse(JSON.stringify(rows)) as typeof rows);
    expect(t2.exportState()).toEqual(t1.exportState());
    expect(t2.tryAcquire('aol.com')).toBe(false);

    // The slow-down keeps its schedule: same factor, recovery at the same time.
    clock.t = (rows[1]?.status.kind === 'slowed' ? rows[1].status.until : 0) - 1;
    t2.onSuccess('gmail.com');
    expect(t2.status('googlemail.com')).toMatchObject({ factor: 0.5 });
    clock.advance(1);
    t2.onSuccess('gmail.com');
    expect(t2.status('googlemail.com')).toMatchObject({ factor: 0.6 });

    // After the pause, yahoo holds its halved rate for one more cool-down, as t1 would.
    clock.t = (rows[0]?.status.kind === 'paused' ? rows[0].status.until : 0);
    expect(t2.status('yahoo.com')).toEqual(t1.status('yahoo.com'));
    expect(t2.status('yahoo.com')).toEqual({ kind: 'slowed', factor: 0.5, until: clock.t + 10 * MIN });
  });

  it('the imported rate factor governs the rate', () => {
    const { clock, t } = setup();
    t.importState([{ key: 'example.com', status: { kind: 'slowed', factor: 0.2, until: clock.t + HOUR }, rateFactor: 0.2 }]);
    const n = admittedOne(t, clock, 'example.com', 60_000);
    expect(n).toBeGreaterThanOrEqual(119);
    expect(n).toBeLessThanOrEqual(122);
  });

  it('an expired pause imports as open; a bad factor falls back to the status', () => {
    const { clock, t } = setup();
    t.importState([
      { key: 'a.example', status: { kind: 'paused', until: clock.t - 1, reason: 'old' }, rateFactor: 1 },
      { key: 'b.example', status: { kind: 'slowed', factor: 0.25, until: clock.t + MIN }, rateFactor: Number.NaN },
    ]);
    expect(t.status('a.example')).toEqual({ kind: 'open' });
    expect(t.tryAcquire('a.example')).toBe(true);
    expect(t.status('b.example')).toEqual({ kind: 'slowed', factor: 0.25, until: clock.t + MIN });
  });

  it('keeps in-flight counts across an import', () => {
    const { t } = setup({ defaultLimit: limit(10, 1) });
    expect(t.tryAcquire('example.com')).toBe(true);
    t.importState([{ key: 'example.com', status: { kind: 'open' }, rateFactor: 1 }]);
    expect(t.inFlight('example.com')).toBe(1);
    expect(t.tryAcquire('example.com')).toBe(false);
  });
});

describe('default provider table', () => {
  const clock = new FakeClock();
  const t = new Throttle(defaultThrottleConfig(), clock.now);

  it.each([
    ['gmail.com', 'google'],
    ['GoogleMail.com', 'google'],
    ['hotmail.fr', 'microsoft'],
    ['live.co.uk', 'microsoft'],
    ['msn.com', 'microsoft'],
    ['aol.com', 'yahoo'],
    ['rocketmail.com', 'yahoo'],
    ['yahoo.co.uk', 'yahoo'],
    ['me.com', 'apple'],
    ['wanadoo.fr', 'orange'],
    ['yahoo.co.jp', 'yahoo.co.jp'],
    ['example.org', 'example.org'],
  ])('%s -> %s', (domain, key) => {
    expect(t.keyFor(domain)).toBe(key);
  });

  it('has the connection caps of DESIGN.md §7 and KumoMTA defaults', () => {
    expect(defaultDomainLimit).toEqual({ rate: { perSecond: 100 }, connections: 10 });
    const caps = Object.fromEntries(defaultProviderGroups.map((g) => [g.name, g.limit.connections]));
    expect(caps).toEqual({ google: 5, microsoft: 5, yahoo: 5, apple: 10, orange: 2 });
    expect(t.limitFor('gmail.com')).toEqual({ rate: { perSecond: 20 }, connections: 5 });
    expect(t.limitFor('unknown.example')).toEqual(defaultDomainLimit);
  });

  it('lists every domain lowercase, once', () => {
    const all = defaultProviderGroups.flatMap((g) => g.domains);
    expect(new Set(all).size).toBe(all.length);
    for (const d of all) expect(d).toBe(d.toLowerCase());
  });
});
