import { describe, it, expect } from 'vitest';
import { backoffDelay, defaultBackoff, MAX_SERVER_RETRY_AFTER_MS, type BackoffPolicy } from '../../src/engine/backoff.js';

const MIN = 60_000;
const fixed = (r: number) => (): number => r;
const schedule = (policy: BackoffPolicy, r: number): number[] =>
  [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(policy, attempt, fixed(r)));

describe('defaultBackoff', () => {
  it('is 60 s doubling to a 40 min cap, ±25% jitter', () => {
    expect(defaultBackoff).toEqual({ initialMs: 60_000, factor: 2, maxMs: 40 * MIN, jitter: 0.5 });
  });

  it('gives 1, 2, 4, 8, 16, 32, 40, 40 minutes with random at 0.5 (no jitter offset)', () => {
    expect(schedule(defaultBackoff, 0.5)).toEqual([1, 2, 4, 8, 16, 32, 40, 40].map((m) => m * MIN));
  });

  it('is 25% shorter with random at 0', () => {
    expect(schedule(defaultBackoff, 0)).toEqual([0.75, 1.5, 3, 6, 12, 24, 30, 30].map((m) => m * MIN));
  });

  it('is up to 25% longer with random near 1, but never above the cap', () => {
    const got = schedule(defaultBackoff, 0.999);
    const factor = 1 + 0.5 * (0.999 - 0.5);
    expect(got).toEqual([1, 2, 4, 8, 16, 32, 40, 40].map((m) => Math.min(40 * MIN, Math.round(m * MIN * factor))));
    expect(got[4]).toBe(1_199_520); // 16 min * 1.2495
    expect(got[5]).toBe(2_399_040); // 32 min * 1.2495 = 39.98 min: just under the cap
    expect(got[6]).toBe(40 * MIN); // 40 min * 1.2495 clipped
    expect(Math.max(...got)).toBe(40 * MIN);
  });

  it('roughly matches DESIGN.md §8 (1, 2, 5, 10, 20, 40 minutes) within a factor of 1.3', () => {
    const design = [1, 2, 5, 10, 20, 40];
    schedule(defaultBackoff, 0.5)
      .slice(0, 6)
      .forEach((ms, i) => {
        const ratio = ms / ((design[i] ?? 0) * MIN);
        expect(ratio).toBeGreaterThanOrEqual(0.75);
        expect(ratio).toBeLessThanOrEqual(1.3);
      });
  });
});

describe('backoffDelay', () => {
  const policy: BackoffPolicy = { initialMs: 1_000, factor: 3, maxMs: 20_000, jitter: 0 };

  it('grows by the factor and stops at the cap', () => {
    expect(schedule(policy, 0.7)).toEqual([1_000, 3_000, 9_000, 20_000, 20_000, 20_000, 20_000, 20_000]);
  });

  it('survives huge attempt numbers (factor^n overflows to Infinity)', () => {
    expect(backoffDelay(defaultBackoff, 5_000, fixed(0.5))).toBe(40 * MIN);
  });

  it('calls random exactly once and is deterministic', () => {
    let calls = 0;
    const random = (): number => {
      calls += 1;
      return 0.3;
    };
    const a = backoffDelay(defaultBackoff, 3, random);
    const b = backoffDelay(defaultBackoff, 3, random);
    expect(calls).toBe(2);
    expect(a).toBe(b);
    expect(a).toBe(Math.round(4 * MIN * (1 + 0.5 * (0.3 - 0.5))));
  });

  it('returns whole milliseconds', () => {
    for (const r of [0.1234, 0.5555, 0.98765]) {
      expect(Number.isInteger(backoffDelay({ initialMs: 333, factor: 1.7, maxMs: 100_000, jitter: 0.33 }, 4, fixed(r)))).toBe(true);
    }
  });

  it('clamps a misbehaving random source into [0, 1]', () => {
    expect(backoffDelay(defaultBackoff, 1, fixed(-3))).toBe(45_000);
    expect(backoffDelay(defaultBackoff, 1, fixed(7))).toBe(75_000);
  });

  describe('server retry-after', () => {
    it('is honoured when longer than our delay', () => {
      expect(backoffDelay(defaultBackoff, 1, fixed(0.5), 300_000)).toBe(300_000);
    });

    it('does not shorten our delay', () => {
      expect(backoffDelay(defaultBackoff, 4, fixed(0.5), 30_000)).toBe(8 * MIN);
    });

    it('wins over the cap (the server asked for more)', () => {
      expect(backoffDelay(defaultBackoff, 8, fixed(0.999), 3 * 3_600_000)).toBe(3 * 3_600_000);
    });

    it('is itself capped at 24 h', () => {
      expect(MAX_SERVER_RETRY_AFTER_MS).toBe(86_400_000);
      expect(backoffDelay(defaultBackoff, 1, fixed(0.5), 7 * 86_400_000)).toBe(86_400_000);
    });

    it('rounds fractional ms up (never earlier than asked)', () => {
      expect(backoffDelay(policy, 1, fixed(0.5), 1_500.2)).toBe(1_501);
    });

    it.each([0, -5_000, Number.NaN, Number.POSITIVE_INFINITY])('ignores a meaningless value %d', (v) => {
      expect(backoffDelay(defaultBackoff, 2, fixed(0.5), v)).toBe(2 * MIN);
    });
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses attempt %d', (attempt) => {
    expect(() => backoffDelay(defaultBackoff, attempt, fixed(0.5))).toThrow(RangeError);
  });

  it.each<[string, BackoffPolicy]>([
    ['zero initial', { initialMs: 0, factor: 2, maxMs: 10, jitter: 0 }],
    ['shrinking factor', { initialMs: 10, factor: 0.5, maxMs: 100, jitter: 0 }],
    ['max below initial', { initialMs: 100, factor: 2, maxMs: 10, jitter: 0 }],
    ['jitter above 1', { initialMs: 10, factor: 2, maxMs: 100, jitter: 1.5 }],
  ])('refuses an invalid policy: %s', (_name, bad) => {
    expect(() => backoffDelay(bad, 1, fixed(0.5))).toThrow(RangeError);
  });
});
