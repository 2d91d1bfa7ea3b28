/**
 * RFC 5322 message bytes for one rendered message and one recipient.
 *
 * The recipient is written into To and the envelope as the single address it
 * is, never through an address parser: a CSV cell "a@x.com, b@y.com" must
 * never become two recipients (DESIGN.md section 5).
 */
import { createHash } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { InputError } from '../errors.js';
import { addressHeader, asciiAddress, assembleMessage, rfc5322Date, unstructuredHeader } from './mime-encode.js';
import { describeHeaderBreak, reservedHeaderReason } from './template/config.js';
import { parseMailboxes, parseSingleMailbox, type Mailbox } from './template/mailbox.js';
import type { RenderedMessage } from './template/render.js';

export interface BuiltMessage {
  readonly raw: Buffer;
  /** The SMTP envelope the raw message is meant for: MAIL FROM and exactly one RCPT TO. */
  readonly envelope: { readonly from: string; readonly to: readonly [string] };
}

/**
 * Deterministic Message-ID for (campaign, recipient): a retry or a resume on
 * another host reuses the same id, so receivers (and our reconciliation of
 * possible duplicates) can tell a resend of the same message. The domain is
 * the From domain (RFC 5322 wants a domain the sender controls).
 */
export function messageIdFor(campaign: string, recipientKey: string, fromAddress: string): string {
  const parsed = parseSingleMailbox(fromAddress);
  const address = (parsed.ok ? parsed.mailbox.address : fromAddress).trim().toLowerCase();
  const hex = createHash('sha256').update(JSON.stringify([campaign, recipientKey, address]), 'utf8').digest('hex').slice(0, 24);
  const slug = campaign.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+/, '').slice(0, 32).replace(/-+$/, '') || 'campaign';
  const at = address.lastIndexOf('@');
  // domainToASCII: IDN From domains become punycode; '' means invalid.
  const domain = (at >= 0 ? domainToASCII(address.slice(at + 1)) : '') || 'mailq.invalid';
  return `<${hex}.${slug}@${domain}>`;
}

/** The raw message only; see buildMessage for the matching envelope. */
export function buildMime(m: RenderedMessage, to: string, messageId: string, date?: Date): Buffer {
  return buildMessage(m, to, messageId, date).raw;
}

/**
 * What the rendered From, Reply-To and template headers turn into: the same
 * for every recipient of most campaigns, so it is built once and reused
 * while those rendered values stay the same (the parses, checks and encoded
 * lines were ~30 µs of a message's ~120 µs of MIME on bench/send).
 */
interface SenderBlock {
  readonly from: string;
  readonly replyTo: string | undefined;
  readonly headers: RenderedMessage['headers'];
  readonly fromLine: string;
  readonly replyToLine: string | undefined;
  readonly headerLines: readonly string[];
  readonly envelopeFrom: string;
}

let lastSender: SenderBlock | undefined;
const senderStats = { built: 0, reused: 0 };

/** How often the sender block was built and reused in this thread (tests, profiling). */
export function senderBlockStats(): { readonly built: number; readonly reused: number } {
  return { ...senderStats };
}

function sameHeaders(a: RenderedMessage['headers'], b: RenderedMessage['headers']): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined || x[0] !== y[0] || x[1] !== y[1]) return false;
  }
  return true;
}

function senderBlock(m: RenderedMessage): SenderBlock {
  const last = lastSender;
  if (last !== undefined && last.from === m.from && last.replyTo === m.replyTo && sameHeaders(last.headers, m.headers)) {
    senderStats.reused++;
    return last;
  }
  const from = parseSingleMailbox(m.from);
  if (!from.ok) throw new InputError(`From ${JSON.stringify(m.from)} ${from.problem}`);
  // renderMessage already refused these; a RenderedMessage built elsewhere
  // gets the same guarantee rather than a header silently altered.
  const fields: ReadonlyArray<readonly [string, string | undefined]> = [['From', m.from], ['Reply-To', m.replyTo], ...m.headers];
  for (const [name, value] of fields) {
    const brk = value === undefined ? undefined : describeHeaderBreak(value);
    if (brk !== undefined) throw new InputError(`${name} contains ${brk}`);
  }
  for (const [name] of m.headers) {
    if (reservedHeaderReason(name) !== undefined) throw new InputError(`header ${name} cannot be set by a template`);
  }
  let replyTo: readonly Mailbox[] = [];
  if (m.replyTo !== undefined) {
    const parsed = parseMailboxes(m.replyTo);
    if (!parsed.ok) throw new InputError(`Reply-To ${JSON.stringify(m.replyTo)} ${parsed.problem}`);
    replyTo = parsed.mailboxes;
  }
  const block: SenderBlock = {
    from: m.from,
    replyTo: m.replyTo,
    headers: m.headers,
    fromLine: addressHeader('From', [from.mailbox]),
    replyToLine: replyTo.length > 0 ? addressHeader('Reply-To', replyTo) : undefined,
    headerLines: m.headers.map(([name, value]) => unstructuredHeader(name, value)),
    envelopeFrom: asciiAddress(from.mailbox.address),
  };
  senderStats.built++;
  lastSender = block;
  return block;
}

export function buildMessage(m: RenderedMessage, to: string, messageId: string, date: Date = new Date()): BuiltMessage {
  if (!isSingleBareAddress(to)) {
    throw new InputError(`recipient ${JSON.stringify(to)} is not a single plain address`, 'addresses are validated at import; this row should not have been queued');
  }
  if (!/^<?[^\s<>]+@[^\s<>]+>?$/.test(messageId)) throw new InputError(`invalid Message-ID ${JSON.stringify(messageId)}`);
  const brk = describeHeaderBreak(m.subject);
  if (brk !== undefined) throw new InputError(`Subject contains ${brk}`);
  const sender = senderBlock(m);
  // The recipient goes in as the one address it is, never through a parser.
  const headers = [
    sender.fromLine,
    addressHeader('To', [{ name: '', address: to }]),
    ...(sender.replyToLine === undefined ? [] : [sender.replyToLine]),
    unstructuredHeader('Subject', m.subject),
    `Message-ID: ${messageId}`,
    `Date: ${rfc5322Date(date)}`,
    ...sender.headerLines,
  ];
  // Derived from the Message-ID: the same message is built byte for byte the same on a resend.
  const boundary = createHash('sha256').update(messageId).digest('hex').slice(0, 24);
  const raw = assembleMessage(headers, m.text, m.html, boundary);
  return { raw, envelope: { from: sender.envelopeFrom, to: [to] } };
}

/**
 * local@domain with nothing an address parser (the SMTP server's, a mail
 * client's) could split or reinterpret: no whitespace, commas, semicolons, angle brackets, quotes,
 * parentheses or control characters. (Quoted local parts are not accepted.)
 */
function isSingleBareAddress(to: string): boolean {
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  return /^[^\s@<>,;:"()\\\x00-\x1f\x7f]+@[^\s@<>,;:"()\\\x00-\x1f\x7f]+$/.test(to);
}
