import { domainToASCII } from 'node:url';
import { InputError } from '../errors.js';

/**
 * Parsing and formatting of the operator-facing units: durations, rates,
 * per-domain rate specs and backoff specs. Every parse error is an InputError
 * (exit 2) that names the flag and quotes the text, with a hint showing the
 * accepted forms.
 */

const MS_PER_UNIT = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Unsigned decimal with digits on both sides of an optional dot: '5', '0.5', '1.25'; not '.5', '5.', '1.5.2', '-1', '1e3'. */
const DECIMAL = String.raw`(\d+(?:\.\d+)?)`;
const DURATION_RE = new RegExp(`^${DECIMAL}(ms|s|m|h|d)?$`);

const DURATION_HINT = 'use a number with a unit: 250ms, 30s, 5m, 2h, 1d (a bare number means seconds)';

/**
 * '250ms', '30s', '5m', '2h', '1d' to milliseconds; a bare number is seconds
 * (the unit SMTP retry hints and most CLIs use). Decimals are allowed
 * ('1.5s' = 1500) and rounded to whole ms. Zero is accepted: callers that
 * need a positive duration check for it, as parseBackoff does.
 */
export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (trimmed === '') throw new InputError(`${flag}: a duration is required, got an empty value`, DURATION_HINT);
  const m = DURATION_RE.exec(trimmed);
  const digits = m?.[1];
  if (m === null || digits === undefined) {
    throw new InputError(`${flag} ${JSON.stringify(text)} is not a duration`, DURATION_HINT);
  }
  const unit = (m[2] ?? 's') as keyof typeof MS_PER_UNIT;
  const ms = Math.round(Number(digits) * MS_PER_UNIT[unit]);
  // 2^53 ms is 285,000 years: anything beyond is a typo, and would lose integer precision.
  if (!Number.isSafeInteger(ms)) {
    throw new InputError(`${flag} ${JSON.stringify(text)} is too large`, DURATION_HINT);
  }
  return ms;
}

export interface Rate {
  readonly perSecond: number;
}

/** Unit aliases: 's', 'm', 'h' are documented; the long forms are what people (and KumoMTA's "10/minute") write. */
const SECONDS_PER_RATE_UNIT: Readonly<Record<string, number>> = {
  s: 1,
  sec: 1,
  second: 1,
  m: 60,
  min: 60,
  minute: 60,
  h: 3_600,
  hr: 3_600,
  hour: 3_600,
};
const RATE_RE = new RegExp(`^${DECIMAL}(?:/([a-z]+))?$`);
const RATE_HINT = "use N/s, N/m or N/h with N > 0, e.g. 20/s, 300/m, 0.5/s ('20' alone means 20/s)";

/** 'N/s', 'N/m', 'N/h' with N a decimal > 0; 'N' alone is per second. */
export function parseRate(text: string, flag: string): Rate {
  const trimmed = text.trim();
  if (trimmed === '') throw new InputError(`${flag}: a rate is required, got an empty value`, RATE_HINT);
  const m = RATE_RE.exec(trimmed);
  const digits = m?.[1];
  const seconds = m?.[2] === undefined ? 1 : SECONDS_PER_RATE_UNIT[m[2]];
  if (m === null || digits === undefined || seconds === undefined) {
    throw new InputError(`${flag} ${JSON.stringify(text)} is not a rate`, RATE_HINT);
  }
  const count = Number(digits);
  if (!(count > 0) || !Number.isFinite(count)) {
    throw new InputError(`${flag} ${JSON.stringify(text)}: the rate must be greater than 0`, RATE_HINT);
  }
  return { perSecond: count / seconds };
}

export interface DomainRateSpec {
  readonly domain: string;
  readonly rate: Rate;
  readonly connections: number | undefined;
}

const DOMAIN_RATE_FLAG = '--domain-rate';
const DOMAIN_RATE_HINT = 'use <domain>=<rate>[:<connections>], e.g. gmail.com=20/s:5 or example.org=300/m';
/** A connection cap above this is a typo: KumoMTA's most generous shipped limit is 25 (comcast.net). */
const MAX_CONNECTIONS = 1_000;
/** A letter-digit-hyphen host name with at least one dot (RFC 1035 §2.3.1 after IDNA), 253 octets at most. */
const LDH_DOMAIN_RE = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * '<domain>=<rate>[:<connections>]', e.g. 'gmail.com=20/s:5'. The domain is
 * lowercased and converted to punycode (an operator may type 'bücher.de'; the
 * throttle matches the recipients' punycode form, xn--bcher-kva.de).
 */
export function parseDomainRate(text: string): DomainRateSpec {
  const trimmed = text.trim();
  const eq = trimmed.indexOf('=');
  if (eq <= 0) {
    throw new InputError(`${DOMAIN_RATE_FLAG} ${JSON.stringify(text)}: expected <domain>=<rate>`, DOMAIN_RATE_HINT);
  }
  const rawDomain = trimmed.slice(0, eq).trim().toLowerCase();
  const ascii = domainToASCII(rawDomain);
  if (ascii === '' || !LDH_DOMAIN_RE.test(ascii)) {
    throw new InputError(
      `${DOMAIN_RATE_FLAG} ${JSON.stringify(text)}: ${JSON.stringify(rawDomain)} is not a domain name`,
      DOMAIN_RATE_HINT,
    );
  }
  const parts = trimmed.slice(eq + 1).split(':');
  if (parts.length > 2) {
    throw new InputError(`${DOMAIN_RATE_FLAG} ${JSON.stringify(text)}: too many ':' separators`, DOMAIN_RATE_HINT);
  }
  const rate = parseRate(parts[0] ?? '', `${DOMAIN_RATE_FLAG} ${ascii}`);
  const connText = parts[1]?.trim();
  let connections: number | undefined;
  if (connText !== undefined) {
    connections = /^\d+$/.test(connText) ? Number(connText) : Number.NaN;
    if (!(connections >= 1 && connections <= MAX_CONNECTIONS)) {
      throw new InputError(
        `${DOMAIN_RATE_FLAG} ${JSON.stringify(text)}: connections must be a whole number from 1 to ${MAX_CONNECTIONS}`,
        DOMAIN_RATE_HINT,
      );
    }
  }
  return { domain: ascii, rate, connections };
}

const BACKOFF_FLAG = '--backoff';
const BACKOFF_HINT = 'use <initial>[:<max>], e.g. 60s:40m or 1s:10s';
/**
 * Without a max, the cap is 40 times the initial delay: the shape of the
 * default schedule (60 s growing to a 40 min cap), scaled.
 */
export const BACKOFF_DEFAULT_MAX_RATIO = 40;

/** '<initial>[:<max>]', e.g. '1s:10s'. Initial must be > 0 and max >= initial. */
export function parseBackoff(text: string): { initialMs: number; maxMs: number } {
  const parts = text.trim().split(':');
  if (parts.length > 2) {
    throw new InputError(`${BACKOFF_FLAG} ${JSON.stringify(text)}: too many ':' separators`, BACKOFF_HINT);
  }
  const initialMs = parseDuration(parts[0] ?? '', BACKOFF_FLAG);
  if (initialMs <= 0) {
    throw new InputError(`${BACKOFF_FLAG} ${JSON.stringify(text)}: the initial delay must be greater than 0`, BACKOFF_HINT);
  }
  const maxText = parts[1];
  const maxMs = maxText === undefined ? initialMs * BACKOFF_DEFAULT_MAX_RATIO : parseDuration(maxText, BACKOFF_FLAG);
  if (maxMs < initialMs) {
    throw new InputError(
      `${BACKOFF_FLAG} ${JSON.stringify(text)}: the maximum (${formatDuration(maxMs)}) is below the initial delay (${formatDuration(initialMs)})`,
      BACKOFF_HINT,
    );
  }
  return { initialMs, maxMs };
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * A duration for humans, two units at most: '850ms', '4.2s', '45s', '2m 10s',
 * '1h 05m', '3d 04h'. Rounds at the shown precision first, so 59.6 s shows as
 * '1m 00s', never '60s'. Infinity (nextOpportunity's "only a release can
 * help") shows as '∞'.
 */
export function formatDuration(ms: number): string {
  if (Number.isNaN(ms)) return '?';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === Number.POSITIVE_INFINITY) return '∞';
  if (Math.round(ms) < 1_000) return `${Math.round(ms)}ms`;
  // Under 10 s one decimal matters (latencies); above it, whole seconds.
  const tenths = Math.round(ms / 100);
  if (tenths < 100) return `${(tenths / 10).toString()}s`;
  const secs = Math.round(ms / 1_000);
  if (secs < 60) return `${secs}s`;
  if (secs < 3_600) return `${Math.floor(secs / 60)}m ${pad2(secs % 60)}s`;
  const mins = Math.round(ms / 60_000);
  if (mins < 1_440) return `${Math.floor(mins / 60)}h ${pad2(mins % 60)}m`;
  const hours = Math.round(ms / 3_600_000);
  return `${Math.floor(hours / 24)}d ${pad2(hours % 24)}h`;
}
