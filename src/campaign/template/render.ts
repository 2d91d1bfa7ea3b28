/**
 * Renders one recipient's message from a compiled template. Failures are
 * returned, not thrown: a bad row (missing column, a name with a line break)
 * fails that message with a reason the reports can count, and the send goes on.
 */
import { Context, UndefinedVariableError } from 'liquidjs';
import { convert } from 'html-to-text';
import { describeHeaderBreak } from './config.js';
import { describeLiquidError, type LiquidErrorInfo } from './liquid-env.js';
import { missingInclude, type CompiledPart, type CompiledTemplate } from './compile.js';
import { parseMailboxes, parseSingleMailbox } from './mailbox.js';

export type RenderFailureReason = 'undefined-variable' | 'header-injection' | 'render-limit' | 'output-too-large' | 'render-error';

export interface RenderedMessage {
  subject: string;
  from: string;
  replyTo?: string;
  headers: ReadonlyArray<readonly [string, string]>;
  html?: string;
  text: string;
  /** True when text was derived from html (the template has no text.liquid). */
  textDerived: boolean;
}

export type RenderResult = { ok: true; message: RenderedMessage } | { ok: false; reason: RenderFailureReason; message: string };

class RenderFailure extends Error {
  constructor(readonly reason: RenderFailureReason, message: string) {
    super(message);
  }
}

export async function renderMessage(c: CompiledTemplate, vars: Readonly<Record<string, unknown>>): Promise<RenderResult> {
  // Rendering is synchronous (the snapshot fs is in memory); the async
  // signature leaves room for a worker-thread pool behind the same call.
  await Promise.resolve();
  try {
    return { ok: true, message: renderAll(c, vars) };
  } catch (err) {
    return { ok: false, ...classify(err, c) };
  }
}

function renderAll(c: CompiledTemplate, vars: Readonly<Record<string, unknown>>): RenderedMessage {
  const { limits } = c;
  // Null prototype: names like "constructor" must be undefined, not Object's.
  const globals: Record<string, unknown> = Object.assign(Object.create(null) as Record<string, unknown>, vars);
  // One time and memory budget for the whole recipient, shared by every part
  // through the limiter objects of this first context: five parts must not
  // get five times the budget.
  const budget = new Context({}, c.subject.engine.options, {
    sync: true, globals, renderLimit: limits.renderLimitMs, memoryLimit: limits.memoryLimit,
  });
  let bytes = 0;
  const render = (part: CompiledPart): string => {
    if (part.constant !== undefined) return counted(part, part.constant);
    // Recipient data goes in as *globals*, which liquidjs also exposes inside
    // `{% render %}` partials (they are isolated from the caller's assigns,
    // not from globals). That matches the static analysis, which counts a
    // partial's free variables as required.
    const ctx = new Context(Object.create(null) as object, part.engine.options, { sync: true, globals }, {
      renderLimit: budget.renderLimit, memoryLimit: budget.memoryLimit, liquid: part.engine,
    });
    const out: unknown = part.engine.renderSync(part.templates, ctx);
    return counted(part, typeof out === 'string' ? out : String(out));
  };
  const counted = (part: CompiledPart, s: string): string => {
    bytes += Buffer.byteLength(s, 'utf8');
    if (bytes > limits.maxOutputBytes) {
      throw new RenderFailure('output-too-large', `rendered message exceeds ${formatBytes(limits.maxOutputBytes)} (limit maxOutputBytes) at ${part.label}`);
    }
    return s;
  };

  // Only surrounding blanks/newlines: templates usually end with a newline.
  // Anything else (a U+2028 at the end, a CR inside) is left for checkHeader to refuse.
  const subject = checkHeader('Subject', render(c.subject).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, ''));
  const from = checkHeader('From', render(c.from));
  const replyToRaw = c.replyTo === undefined ? undefined : checkHeader('Reply-To', render(c.replyTo));
  const headers: Array<readonly [string, string]> = [];
  for (const h of c.headers) {
    const value = checkHeader(h.name, render(h.value));
    // An empty header says nothing (e.g. an optional per-row header left
    // blank): drop it here, so RenderedMessage shows what is sent.
    if (value.trim() !== '') headers.push([h.name, value]);
  }

  const fromCheck = parseSingleMailbox(from);
  if (!fromCheck.ok) throw new RenderFailure('render-error', `rendered From ${JSON.stringify(from)} ${fromCheck.problem}`);
  // An optional column may leave Reply-To empty for some rows: then omit it.
  const replyTo = replyToRaw === undefined || replyToRaw.trim() === '' ? undefined : replyToRaw;
  if (replyTo !== undefined) {
    const r = parseMailboxes(replyTo);
    if (!r.ok) throw new RenderFailure('render-error', `rendered Reply-To ${JSON.stringify(replyTo)} ${r.problem}`);
  }

  const html = c.html === undefined ? undefined : render(c.html);
  let text: string;
  let textDerived = false;
  if (c.text !== undefined) {
    text = render(c.text);
  } else {
    text = htmlToText(html ?? '');
    textDerived = true;
  }

  const message: RenderedMessage = { subject, from, headers, text, textDerived };
  if (replyTo !== undefined) message.replyTo = replyTo;
  if (html !== undefined) message.html = html;
  return message;
}

/**
 * A line break in a header value would start a new header (Bcc: …), or have
 * to be altered to fit in one. Refuse instead.
 */
function checkHeader(name: string, value: string): string {
  const brk = describeHeaderBreak(value);
  if (brk !== undefined) {
    throw new RenderFailure('header-injection', `rendered ${name} contains ${brk}; refusing to send a silently altered header`);
  }
  return value;
}

/** Plain-text alternative for HTML-only templates. */
export function htmlToText(html: string): string {
  return convert(html, {
    wordwrap: 78,
    selectors: [
      // "text [url]"; a bare URL link is not repeated.
      { selector: 'a', options: { linkBrackets: ['[', ']'], hideLinkHrefIfSameAsText: true } },
      // Images are decoration (logos, tracking pixels) in a text part.
      { selector: 'img', format: 'skip' },
      // html-to-text upper-cases headings by default, which mangles product
      // names and versions ("mailq" -> "MAILQ"); keep the author's case.
      ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
    ],
  });
}

function classify(err: unknown, c: CompiledTemplate): { reason: RenderFailureReason; message: string } {
  if (err instanceof RenderFailure) return { reason: err.reason, message: err.message };
  const info = describeLiquidError(err, (input) => c.sourceLabels.get(input));
  const at = info.where === undefined ? '' : ` in ${info.where}`;
  const undefinedName = findUndefinedVariable(err);
  if (undefinedName !== undefined) {
    return { reason: 'undefined-variable', message: `undefined variable "${undefinedName}"${at}` };
  }
  const limit = limitFailure(info, c);
  if (limit !== undefined) return limit;
  const missing = missingInclude(info.cause);
  if (missing !== undefined) return { reason: 'render-error', message: `template file "${missing}" not found${at}` };
  return { reason: 'render-error', message: `${info.where ?? 'template'}: ${info.message}` };
}

/** Walks the error chain for liquidjs's undefined-variable error and its variable name. */
function findUndefinedVariable(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 10 && cur instanceof Error; depth++) {
    if (cur instanceof UndefinedVariableError) {
      const inner: unknown = cur.originalError;
      const name: unknown = typeof inner === 'object' && inner !== null ? (inner as { variableName?: unknown }).variableName : undefined;
      if (typeof name === 'string') return name;
      return /undefined variable: (.*)$/.exec(inner instanceof Error ? inner.message : '')?.[1] ?? 'unknown';
    }
    cur = (cur as { originalError?: unknown }).originalError;
  }
  return undefined;
}

function limitFailure(info: LiquidErrorInfo, c: CompiledTemplate): { reason: RenderFailureReason; message: string } | undefined {
  const at = info.where === undefined ? '' : ` (at ${info.where})`;
  const { cause } = info;
  const msg = cause instanceof Error ? cause.message : '';
  // liquidjs's Limiter asserts with "<resource> limit exceeded".
  if (msg === 'template render limit exceeded') {
    return { reason: 'render-limit', message: `rendering took longer than ${c.limits.renderLimitMs} ms (renderLimitMs)${at}` };
  }
  if (msg === 'memory alloc limit exceeded') {
    return { reason: 'render-limit', message: `rendering allocated more than ${c.limits.memoryLimit} units (memoryLimit)${at}` };
  }
  if (msg === 'parse length limit exceeded') {
    return { reason: 'render-limit', message: `template exceeds ${c.limits.parseLimit} characters (parseLimit)${at}` };
  }
  if (cause instanceof RangeError && /call stack/i.test(msg)) {
    return { reason: 'render-limit', message: `template nesting too deep (a partial that includes itself?)${at}` };
  }
  if (cause instanceof RangeError && /string length/i.test(msg)) {
    return { reason: 'output-too-large', message: `rendered text too large for memory${at}` };
  }
  return undefined;
}

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / 1024 / 1024} MiB` : `${n} bytes`;
}
