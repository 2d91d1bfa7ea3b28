/**
 * SMTP outcome classification (DESIGN.md §6): one pure function from what the
 * transport saw (stage, reply code and text, socket error, whether the body
 * was fully written) to the category that drives the next state, the back-off
 * and the throttle. The decisions live in classify-rules.ts as an ordered
 * table; this module only prepares the facts the rows test and runs the first
 * match. No I/O, no clock, every regex compiled once at module load.
 *
 * Decision order (first match wins):
 *  1. no usable reply: after the final "." → ambiguous, else connection
 *     (auth/TLS/local transport errors are fatal or message-rejected);
 *  2. authentication and TLS replies → fatal;
 *  3. text overrides (provider wording the codes get wrong);
 *  4. the RFC 3463 enhanced status code;
 *  5. the bare reply class, by stage.
 */
import {
  NO_REPLY_RULES,
  REPLY_RULES,
  type Category,
  type ClassifyRule,
  type ReplyClass,
  type SmtpStage,
} from './classify-rules.js';

export { CLASSIFY_RULES, CLASSIFY_RULES_VERSION, SEVERE_THROTTLE_RULES } from './classify-rules.js';
export type { Category, ClassifyRule, ReplyClass, RuleConditions, SmtpStage } from './classify-rules.js';

export interface SmtpOutcomeInput {
  readonly stage: SmtpStage;
  /** SMTP reply code when a reply was received (e.g. 550). */
  readonly code?: number;
  /** Full reply text as received (may contain the enhanced code and multiple lines joined by \n). */
  readonly reply?: string;
  /** A network/socket error code when no reply was received: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE, ENOTFOUND, EHOSTUNREACH, ESOCKET, ECONNECTION, ETLS, EAUTH, ... */
  readonly errorCode?: string;
  /** True when the whole body and the final "." were written to the socket before the failure. */
  readonly bodyWritten: boolean;
}

export interface Classification {
  readonly category: Category;
  /** The enhanced status code actually used (after the class-mismatch fallback), e.g. '5.1.1', or undefined. */
  readonly enhanced: string | undefined;
  /** Seconds the server asked us to wait ("try again in 60 seconds", "retry in 5 minutes"), if any. */
  readonly retryAfterSeconds: number | undefined;
  /** Id of the rule that matched (stable, for logs, reports and golden tests), e.g. 'gmail-rate-limit', 'enhanced-5.1.x', 'class-4xx'. */
  readonly rule: string;
  /** Short operator-facing explanation, one line. */
  readonly explanation: string;
}

/**
 * Longest reply text examined. RFC 5321 §4.5.3.1.5 limits a reply line to 512
 * octets; real multi-line replies (Gmail's six-line 421 4.7.28) stay under
 * 1 KiB. 8 KiB keeps every regex pass bounded on garbage input.
 */
const MAX_TEXT = 8192;

/** "550-" / "550 " at the start of a reply line (RFC 5321 §4.2: code, then "-" or SP). */
const CODE_PREFIX = /^\s*\d{3}(?:[ -]|$)/;
/** Leading reply code of a text whose code was not passed separately. */
const LEADING_CODE = /^\s*([2-5]\d\d)(?:[ -]|$)/;
/**
 * RFC 3463 §2 / RFC 2034 §4: class "." subject "." detail, subject and detail
 * 1-3 digits, right after the reply code; not part of a longer dotted number.
 */
const ENHANCED_AT_START = /^\s*(?:\d{3}(?:[ -]|$)\s*)?([245])\.(\d{1,3})\.(\d{1,3})(?!\d)(?!\.\d)/;
/** The same code repeated at the start of continuation lines, as Gmail and Microsoft do. */
const LINE_ENHANCED = /^\s*[245]\.\d{1,3}\.\d{1,3}(?!\d)(?!\.\d)\s*/;
const WHITESPACE = /\s+/g;
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * "try again in 60 seconds", "retry in 5 minutes", "Please try again later in
 * 1 hour", "wait 30s", "Greylisted for 300 seconds", "retry after 10 min".
 */
const RETRY_AFTER =
  /\b(?:try(?:ing)?\s+again|retry(?:ing)?|resend|wait|come\s+back|greylisted\s+for|deferred\s+for)(?:\s+later)?(?:\s+(?:in|after|for|at\s+least))?\s+(\d{1,9})\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b/i;
/** Bounds for a server-requested wait: at least 1 s, at most one day (86,400 s). */
const MIN_WAIT_S = 1;
const MAX_WAIT_S = 86_400;

/** The reply class of a usable code (2xx/4xx/5xx); 1xx, 3xx and junk are not final replies. */
function replyClassOf(code: number | undefined): ReplyClass | undefined {
  if (code === undefined || !Number.isInteger(code) || code < 200 || code > 599) return undefined;
  const cls = Math.floor(code / 100);
  return cls === 2 || cls === 4 || cls === 5 ? cls : undefined;
}

function asText(value: unknown): string {
  if (typeof value !== 'string') return '';
  return value.length > MAX_TEXT ? value.slice(0, MAX_TEXT) : value;
}

function firstLine(text: string): string {
  const end = text.search(LINE_BREAK);
  return end < 0 ? text : text.slice(0, end);
}

/**
 * The reply as one line of words: per-line "550-5.1.1 " prefixes removed and
 * lines joined with a space, so phrases wrapped by the server still match.
 */
function normalizeReply(text: string): string {
  return text
    .split(LINE_BREAK)
    .map((line) => line.replace(CODE_PREFIX, '').replace(LINE_ENHANCED, ''))
    .join(' ')
    .replace(WHITESPACE, ' ')
    .trim();
}

/**
 * The enhanced status code at the start of the reply text (after the reply
 * code), e.g. '5.1.1'. When its class differs from the reply code's class the
 * reply code wins and the result is `${class}.0.0`, as Postfix's smtp_chat_resp
 * does ("550 4.2.2 ..." → '5.0.0'). Undefined when there is none, or when the
 * reply code is not a 2xx/4xx/5xx.
 */
export function parseEnhancedCode(reply: string, code: number): string | undefined {
  const cls = replyClassOf(code);
  if (cls === undefined) return undefined;
  const m = ENHANCED_AT_START.exec(firstLine(asText(reply)));
  if (!m) return undefined;
  if (Number(m[1]) !== cls) return `${cls}.0.0`;
  return `${m[1]}.${m[2]}.${m[3]}`;
}

/** Seconds the reply asks us to wait, bounded to [1, 86400]; undefined when it names no duration. */
export function parseRetryAfter(reply: string): number | undefined {
  const m = RETRY_AFTER.exec(normalizeReply(asText(reply)));
  if (!m?.[1] || !m[2]) return undefined;
  const amount = Number(m[1]);
  const unit = m[2].toLowerCase();
  const factor = unit.startsWith('h') ? 3600 : unit.startsWith('m') ? 60 : 1;
  return Math.min(MAX_WAIT_S, Math.max(MIN_WAIT_S, amount * factor));
}

interface Facts {
  readonly stage: SmtpStage;
  readonly code: number | undefined;
  readonly cls: ReplyClass | undefined;
  readonly enhanced: string | undefined;
  readonly text: string;
  readonly errorCode: string;
  readonly afterBody: boolean;
}

function matches(rule: ClassifyRule, f: Facts): boolean {
  const w = rule.when;
  if (w.stages && !w.stages.includes(f.stage)) return false;
  if (w.afterBody !== undefined && w.afterBody !== f.afterBody) return false;
  if (w.codes && (f.code === undefined || !w.codes.includes(f.code))) return false;
  if (w.classes && (f.cls === undefined || !w.classes.includes(f.cls))) return false;
  if (w.error && !w.error.test(f.errorCode)) return false;
  if (w.enhanced && !w.enhanced.test(f.enhanced ?? '')) return false;
  if (w.text && !w.text.test(f.text)) return false;
  return true;
}

/**
 * Not a table row: only reachable if the table stops covering a stage/class
 * combination (the golden test keeps it unreachable). Retrying is the choice
 * that loses nothing.
 */
const UNCLASSIFIED: ClassifyRule = {
  id: 'unclassified',
  category: 'retry',
  when: {},
  explanation: 'no classification rule matched: retry with back-off',
};

/** Classify one SMTP outcome. Pure; never throws, whatever the input. */
export function classify(input: SmtpOutcomeInput): Classification {
  const raw = asText(input.reply);
  const text = normalizeReply(raw);
  const passed = typeof input.code === 'number' ? input.code : undefined;
  // A transport that kept the text but lost (or zeroed) the number: take the code from the text.
  const fromText = replyClassOf(passed) === undefined ? LEADING_CODE.exec(raw)?.[1] : undefined;
  const code = fromText !== undefined ? Number(fromText) : passed;
  const cls = replyClassOf(code);
  const enhanced = cls !== undefined && code !== undefined ? parseEnhancedCode(raw, code) : undefined;
  const facts: Facts = {
    stage: input.stage,
    code,
    cls,
    enhanced,
    text,
    errorCode: typeof input.errorCode === 'string' ? input.errorCode : '',
    afterBody: input.bodyWritten === true && (input.stage === 'body' || input.stage === 'data'),
  };
  const table = cls === undefined ? NO_REPLY_RULES : REPLY_RULES;
  const rule = table.find((r) => matches(r, facts)) ?? UNCLASSIFIED;
  return {
    category: rule.category,
    enhanced,
    retryAfterSeconds: rule.category === 'sent' || raw === '' ? undefined : parseRetryAfter(raw),
    rule: rule.id,
    explanation: rule.explanation,
  };
}
