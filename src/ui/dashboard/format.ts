/**
 * Formatting and sanitising for the dashboard. Every string the dashboard
 * shows goes through `cleanText` first, so that its JavaScript length equals
 * its width in terminal cells: that is what lets the layout guarantee that no
 * line is wider than the terminal without a string-width dependency.
 */

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g;
/**
 * Anything outside printable ASCII and Latin-1/Latin Extended-A/B: wide CJK
 * and emoji (2 cells), combining marks (0 cells), bidi controls, U+2028...
 * SMTP replies are ASCII by RFC 5321 and domains are punycode, so this only
 * bites on exotic server texts and campaign names; a '?' keeps the layout exact.
 */
const NOT_SINGLE_WIDTH = /[^\u0020-\u007e\u00a0-\u024f]/gu;
const NOT_PRINTABLE_ASCII = /[^\u0020-\u007e]/;
const SPACES = /\s{2,}/g;
/**
 * Tokens of 16+ characters, masked when they hold a digit: queue ids and
 * trace ids that servers append ("... d2e1a72fcca58-6f1c3b2a1sm123456pgd.12 -
 * gsmtp"), so that replies differing only by them count as one text.
 * Enhanced codes (5.7.26) and IPv4 addresses (15 characters at most, and
 * fixed per sender) stay.
 */
const LONG_TOKEN = /[\w.:-]{16,}/g;
const DIGIT = /\d/;
/** Characters that end a mailbox when scanning out from its "@". */
const MAILBOX_END = new Set([' ', '<', '>', '"', "'", '(', ')', ',', ';', '[', ']']);

/** One line of printable, single-width text: no ESC sequences can reach the terminal from a server's reply. */
export function cleanText(s: string): string {
  // Fast path: plain ASCII, the usual SMTP reply.
  const t = NOT_PRINTABLE_ASCII.test(s) ? s.replace(CONTROL, ' ').replace(NOT_SINGLE_WIDTH, '?') : s;
  return (t.includes('  ') ? t.replace(SPACES, ' ') : t).trim();
}

/**
 * "550 5.1.1 <ann@example.com>: user unknown" → "550 5.1.1 <address>: user
 * unknown": addresses never reach the screen, and bounces differing only by
 * the address count as one reply. A linear scan out from each "@" (a regex
 * starting with a character class backtracks from every position: 12 µs a
 * reply, against about 1 µs for this).
 */
export function maskAddresses(s: string): string {
  let at = s.indexOf('@');
  if (at < 0) return s;
  let out = '';
  let from = 0;
  while (at >= 0) {
    let a = at;
    while (a > from && !MAILBOX_END.has(s.charAt(a - 1))) a--;
    let b = at + 1;
    while (b < s.length && !MAILBOX_END.has(s.charAt(b))) b++;
    if (a > from && s.charAt(a - 1) === '<' && s.charAt(b) === '>') {
      a--;
      b++;
    }
    out += `${s.slice(from, a)}<address>`;
    from = b;
    at = s.indexOf('@', b);
  }
  return out + s.slice(from);
}

/** Longest reply text kept per category (a reply line is at most 512 octets, RFC 5321 §4.5.3.1.5). */
export const MAX_REPLY_CHARS = 160;

/** A server reply as shown and grouped: one line, addresses and trace ids masked, capped. */
export function normalizeReply(reply: string): string {
  let s = maskAddresses(cleanText(reply.length > 4 * MAX_REPLY_CHARS ? reply.slice(0, 4 * MAX_REPLY_CHARS) : reply));
  if (s.length >= 16) s = s.replace(LONG_TOKEN, (t) => (DIGIT.test(t) ? '#' : t));
  return s.length > MAX_REPLY_CHARS ? `${s.slice(0, MAX_REPLY_CHARS - 1)}…` : s;
}

/** 12345 → "12,345" (no Intl: deterministic whatever the locale, and cheap at 4 Hz). */
export function int(n: number): string {
  const s = String(Math.round(Math.abs(n)));
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (i > 0 && (s.length - i) % 3 === 0) out += ',';
    out += s[i];
  }
  return n < 0 ? `-${out}` : out;
}

/** Messages per second: one decimal below 100/s, whole numbers above. */
export function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '0/s';
  return perSecond < 100 ? `${perSecond.toFixed(1)}/s` : `${int(perSecond)}/s`;
}

/** 45s, 3m05s, 2h03m, 3d04h. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Local wall-clock time, HH:MM:SS. */
export function clock(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
}

/** Local wall-clock time, HH:MM. */
export function shortClock(ms: number): string {
  return clock(ms).slice(0, 5);
}

/** Latency: 85ms, 1.2s, 45s. */
export function latency(ms: number | undefined): string {
  if (ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  return duration(ms);
}

export function percent(fraction: number): string {
  const p = Math.max(0, Math.min(1, fraction)) * 100;
  // Never show 100.0% before the last message is done.
  return `${(fraction < 1 ? Math.min(p, 99.9) : p).toFixed(1)}%`;
}
