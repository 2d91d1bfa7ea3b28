/**
 * template.json: the envelope-ish settings of a template (From, Reply-To,
 * extra headers). Every string value is a Liquid template. Validation is
 * strict because a typo here ("replyto") would otherwise be silently ignored
 * across a whole campaign.
 */
import { InputError } from '../../errors.js';

export interface TemplateConfig {
  /** Liquid source of the From header; must render to exactly one address. */
  readonly from: string;
  readonly replyTo?: string;
  /** [header name as written, Liquid source of the value], in file order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

const ALLOWED_KEYS = ['from', 'replyTo', 'headers'] as const;

/**
 * Header names template.json may not set through `headers`: mailq itself
 * sets them from the row/template (From, To, Subject, Message-ID, Date,
 * MIME structure), the MTA owns trace/signature fields, and letting a
 * template add Cc/Bcc would add recipients behind the one-RCPT rule.
 */
const RESERVED_HEADERS = new Set([
  'from', 'sender', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'message-id', 'date',
  'mime-version', 'return-path', 'received', 'dkim-signature',
]);
const RESERVED_PREFIXES = ['content-', 'resent-'];

/** RFC 5322 field-name: printable US-ASCII except ':'. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** Characters that end or corrupt a header line; shared with the render-time check. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const HEADER_BREAKING_CHARS = /[\r\n\x00\u0085\u2028\u2029]/;

export function describeHeaderBreak(value: string): string | undefined {
  const m = HEADER_BREAKING_CHARS.exec(value);
  if (m === null) return undefined;
  switch (m[0]) {
    case '\r':
    case '\n':
      return 'a line break (CR/LF)';
    case '\x00':
      return 'a NUL character';
    case '\u0085':
      return 'a next-line character (U+0085)';
    case '\u2028':
      return 'a Unicode line separator (U+2028)';
    default:
      return 'a Unicode paragraph separator (U+2029)';
  }
}

export function reservedHeaderReason(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower === 'from') return 'use the "from" key';
  if (lower === 'reply-to') return 'use the "replyTo" key';
  if (RESERVED_HEADERS.has(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
    return 'mailq sets this header itself';
  }
  return undefined;
}

/** Parses and validates template.json; `label` is the file as the operator knows it. */
export function parseTemplateConfig(text: string, label: string): TemplateConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InputError(`${label}: ${describeJsonError(text)}`, 'template.json must be a JSON object such as {"from": "Acme <news@acme.test>"}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputError(`${label}: must be a JSON object`, 'for example {"from": "Acme <news@acme.test>"}');
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(ALLOWED_KEYS as readonly string[]).includes(key)) {
      throw new InputError(`${label}: unknown key "${key}"`, `allowed keys: ${ALLOWED_KEYS.join(', ')}`);
    }
  }

  const from = obj['from'];
  if (from === undefined) throw new InputError(`${label}: "from" is required`, 'for example "from": "Acme News <news@acme.test>"');
  const fromSrc = headerSource(from, `${label}: "from"`);
  if (fromSrc.trim() === '') throw new InputError(`${label}: "from" is empty`);

  const replyTo = obj['replyTo'];
  const replyToSrc = replyTo === undefined ? undefined : headerSource(replyTo, `${label}: "replyTo"`);

  const headers: Array<readonly [string, string]> = [];
  const rawHeaders = obj['headers'];
  if (rawHeaders !== undefined) {
    if (typeof rawHeaders !== 'object' || rawHeaders === null || Array.isArray(rawHeaders)) {
      throw new InputError(`${label}: "headers" must be an object of header name to value`);
    }
    const seen = new Set<string>();
    for (const [name, v] of Object.entries(rawHeaders as Record<string, unknown>)) {
      const where = `${label}: header "${name}"`;
      if (!FIELD_NAME.test(name)) {
        throw new InputError(`${where}: not a valid header name`, 'header names are printable ASCII without spaces or ":"');
      }
      const reserved = reservedHeaderReason(name);
      if (reserved !== undefined) throw new InputError(`${where} cannot be set in template.json`, reserved);
      // Header names are case-insensitive: "X-Tag" and "x-tag" would both be sent.
      if (seen.has(name.toLowerCase())) throw new InputError(`${where} is given twice (header names ignore case)`);
      seen.add(name.toLowerCase());
      headers.push([name, headerSource(v, where)]);
    }
  }
  return replyToSrc === undefined ? { from: fromSrc, headers } : { from: fromSrc, replyTo: replyToSrc, headers };
}

function headerSource(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new InputError(`${where} must be a string`);
  // A literal line break in the source would break every message; say so now
  // rather than failing each recipient at render time.
  const brk = describeHeaderBreak(v);
  if (brk !== undefined) throw new InputError(`${where} contains ${brk}`, 'header values must be a single line');
  return v;
}

/**
 * Node 20's JSON.parse messages carry no position, so find the first syntax
 * error ourselves (a strict JSON scanner) and report line and column.
 */
export function describeJsonError(text: string): string {
  const at = jsonErrorOffset(text);
  if (at === undefined) return 'invalid JSON';
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  const found = at >= text.length ? 'end of file' : JSON.stringify(text.charAt(at));
  return `invalid JSON at line ${line} col ${at - lineStart + 1}: unexpected ${found}`;
}

const MAX_JSON_DEPTH = 512;

/** Offset of the first JSON syntax error in `s`, or undefined if `s` is valid JSON. */
export function jsonErrorOffset(s: string): number | undefined {
  let i = 0;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= s.length) fail();
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        const e = s[i];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(s[i] ?? '')) fail();
        } else fail();
      } else i++;
    }
  };
  const num = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (depth: number): void => {
    if (depth > MAX_JSON_DEPTH) fail();
    ws();
    const c = s[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (s[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (s[i] !== '"') fail();
          str();
          ws();
          if (s[i] !== ':') fail();
          i++;
        }
        value(depth + 1);
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return str();
    num.lastIndex = i;
    if (num.test(s)) {
      i = num.lastIndex;
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    fail();
  };
  try {
    value(0);
    ws();
    if (i < s.length) fail();
    return undefined;
  } catch (err) {
    if (err instanceof JsonStop) return err.at;
    throw err;
  }
}

/** Unwinds the scanner's recursion to the offending offset. */
class JsonStop extends Error {
  constructor(readonly at: number) {
    super(`JSON syntax error at offset ${at}`);
  }
}
