import { describe, it, expect } from 'vitest';
import { InputError } from '../../src/errors.js';
import { formatDuration, parseBackoff, parseDomainRate, parseDuration, parseRate } from '../../src/engine/units.js';

/** Runs fn, expects an InputError (exit 2) and returns it for message checks. */
function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError, nothing was thrown');
}

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['45', 45_000],
    ['0', 0],
    ['0ms', 0],
    ['1.5s', 1_500],
    ['0.5m', 30_000],
    ['  10s ', 10_000],
    ['2.0004s', 2_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text, '--max-age')).toBe(ms);
  });

  it.each(['', '   ', '-5s', '-1', '5x', '1.5.2', '.5s', '5.', 's', '5 m', '5M', '1e3', '+5s', '5ms5', 'NaN', 'Infinity', '0x10'])(
    'rejects %j naming the flag',
    (text) => {
      const err = inputError(() => parseDuration(text, '--max-age'));
      expect(err.message).toContain('--max-age');
      expect(err.hint).toMatch(/250ms, 30s, 5m, 2h, 1d/);
    },
  );

  it('quotes the bad text', () => {
    expect(inputError(() => parseDuration('5x', '--lease')).message).toBe('--lease "5x" is not a duration');
  });

  it('rejects values that lose integer precision', () => {
    const err = inputError(() => parseDuration('999999999999999d', '--max-age'));
    expect(err.message).toMatch(/too large/);
  });
});

describe('parseRate', () => {
  it.each([
    ['20/s', 20],
    ['300/m', 5],
    ['3600/h', 1],
    ['0.5/s', 0.5],
    ['1.5/m', 0.025],
    ['20', 20],
    ['10/minute', 10 / 60],
    ['10/min', 10 / 60],
    ['7200/hour', 2],
    ['7200/hr', 2],
    ['3/sec', 3],
  ])('%j is %d per second', (text, perSecond) => {
    expect(parseRate(text, '--rate').perSecond).toBeCloseTo(perSecond, 12);
  });

  it.each(['', '0', '0/s', '0.0/m', '-5/s', '5/d', '5/', '/s', 'fast', '5/s/s', '1.5.2/s', '5 /s'])('rejects %j naming the flag', (text) => {
    const err = inputError(() => parseRate(text, '--rate'));
    expect(err.message).toContain('--rate');
    expect(err.hint).toMatch(/N\/s, N\/m or N\/h/);
  });

  it('says why zero is refused', () => {
    expect(inputError(() => parseRate('0/s', '--rate')).message).toMatch(/greater than 0/);
  });
});

describe('parseDomainRate', () => {
  it('parses domain, rate and connections', () => {
    expect(parseDomainRate('gmail.com=20/s:5')).toEqual({ domain: 'gmail.com', rate: { perSecond: 20 }, connections: 5 });
  });

  it('leaves connections undefined when absent', () => {
    expect(parseDomainRate('example.org=300/m')).toEqual({ domain: 'example.org', rate: { perSecond: 5 }, connections: undefined });
  });

  it('lowercases the domain and converts it to punycode', () => {
    expect(parseDomainRate('GMail.COM=1/s').domain).toBe('gmail.com');
    expect(parseDomainRate('Bücher.de=1/s:2').domain).toBe('xn--bcher-kva.de');
  });

  it('accepts a bare rate as per second', () => {
    expect(parseDomainRate('a.example=2').rate.perSecond).toBe(2);
  });

  it.each([
    ['gmail.com', /expected <domain>=<rate>/],
    ['=20/s', /expected <domain>=<rate>/],
    ['gmail=20/s', /not a domain name/],
    ['gm ail.com=20/s', /not a domain name/],
    ['-gmail.com=20/s', /not a domain name/],
    ['gmail..com=20/s', /not a domain name/],
    ['gmail.com=', /rate/],
    ['gmail.com=fast', /not a rate/],
    ['gmail.com=0/s', /greater than 0/],
    ['gmail.com=20/s:', /connections must be a whole number/],
    ['gmail.com=20/s:0', /connections must be a whole number/],
    ['gmail.com=20/s:2.5', /connections must be a whole number/],
    ['gmail.com=20/s:-1', /connections must be a whole number/],
    ['gmail.com=20/s:1001', /connections must be a whole number/],
    ['gmail.com=20/s:5:5', /too many ':'/],
  ])('rejects %j', (text, why) => {
    const err = inputError(() => parseDomainRate(text));
    expect(err.message).toContain('--domain-rate');
    expect(err.message).toMatch(why);
  });
});

describe('parseBackoff', () => {
  it('parses initial and max', () => {
    expect(parseBackoff('1s:10s')).toEqual({ initialMs: 1_000, maxMs: 10_000 });
    expect(parseBackoff('60s:40m')).toEqual({ initialMs: 60_000, maxMs: 2_400_000 });
  });

  it('accepts max equal to initial', () => {
    expect(parseBackoff('5s:5s')).toEqual({ initialMs: 5_000, maxMs: 5_000 });
  });

  it('defaults max to 40 x initial, the shape of the default schedule', () => {
    expect(parseBackoff('1s')).toEqual({ initialMs: 1_000, maxMs: 40_000 });
    expect(parseBackoff('60')).toEqual({ initialMs: 60_000, maxMs: 2_400_000 });
  });

  it.each([
    ['', /duration is required/],
    ['0s', /initial delay must be greater than 0/],
    ['0s:10s', /initial delay must be greater than 0/],
    ['10s:1s', /maximum \(1s\) is below the initial delay \(10s\)/],
    ['1s:10s:20s', /too many ':'/],
    ['fast', /not a duration/],
    ['1s:soon', /not a duration/],
    ['1s:', /duration is required/],
  ])('rejects %j', (text, why) => {
    const err = inputError(() => parseBackoff(text));
    expect(err.message).toContain('--backoff');
    expect(err.message).toMatch(why);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [850, '850ms'],
    [999.4, '999ms'],
    [999.6, '1s'],
    [1_500, '1.5s'],
    [4_240, '4.2s'],
    [9_960, '10s'],
    [45_000, '45s'],
    [59_600, '1m 00s'],
    [130_000, '2m 10s'],
    [125_000, '2m 05s'],
    [3_599_600, '1h 00m'],
    [3_900_000, '1h 05m'],
    [86_399_000, '1d 00h'],
    [3 * 86_400_000 + 4 * 3_600_000, '3d 04h'],
    [-2_000, '-2s'],
    [Number.POSITIVE_INFINITY, '∞'],
    [Number.NaN, '?'],
  ])('%d ms is %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
