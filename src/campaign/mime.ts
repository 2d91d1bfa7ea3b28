/**
 * RFC 5322 message bytes for one rendered message and one recipient.
 *
 * The recipient is always handed to nodemailer as an address object and an
 * explicit envelope, never as a string nodemailer would parse: a CSV cell
 * "a@x.com, b@y.com" must never become two recipients (DESIGN.md section 5).
 */
import { createHash } from 'node:crypto';
import { domainToASCII } from 'node:url';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { InputError } from '../errors.js';
import { describeHeaderBreak, reservedHeaderReason } from './template/config.js';
import { parseSingleMailbox } from './template/mailbox.js';
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
export async function buildMime(m: RenderedMessage, to: string, messageId: string, date?: Date): Promise<Buffer> {
  return (await buildMessage(m, to, messageId, date)).raw;
}

export async function buildMessage(m: RenderedMessage, to: string, messageId: string, date: Date = new Date()): Promise<BuiltMessage> {
  if (!isSingleBareAddress(to)) {
    throw new InputError(`recipient ${JSON.stringify(to)} is not a single plain address`, 'addresses are validated at import; this row should not have been queued');
  }
  const from = parseSingleMailbox(m.from);
  if (!from.ok) throw new InputError(`From ${JSON.stringify(m.from)} ${from.problem}`);
  if (!/^<?[^\s<>]+@[^\s<>]+>?$/.test(messageId)) throw new InputError(`invalid Message-ID ${JSON.stringify(messageId)}`);
  // renderMessage already refused these; a RenderedMessage built elsewhere
  // gets the same guarantee rather than nodemailer's silent newline stripping.
  const fields: ReadonlyArray<readonly [string, string | undefined]> = [['Subject', m.subject], ['From', m.from], ['Reply-To', m.replyTo], ...m.headers];
  for (const [name, value] of fields) {
    const brk = value === undefined ? undefined : describeHeaderBreak(value);
    if (brk !== undefined) throw new InputError(`${name} contains ${brk}`);
  }
  for (const [name] of m.headers) {
    if (reservedHeaderReason(name) !== undefined) throw new InputError(`header ${name} cannot be set by a template`);
  }

  const mail: Mail.Options = {
    from: { name: from.mailbox.name, address: from.mailbox.address },
    to: [{ name: '', address: to }],
    subject: m.subject,
    text: m.text,
    messageId,
    date,
    headers: m.headers.map(([key, value]) => ({ key, value })),
    envelope: { from: from.mailbox.address, to: [to] },
    // Content is always inline strings; never let a value be read as a path or URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  if (m.html !== undefined) mail.html = m.html;
  if (m.replyTo !== undefined) mail.replyTo = m.replyTo;

  const node = new MailComposer(mail).compile();
  const envelope = node.getEnvelope();
  const [rcpt, ...extra] = envelope.to;
  if (rcpt === undefined || extra.length > 0 || envelope.from === false) {
    // Cannot happen for an address that passed isSingleBareAddress; checked
    // because sending to more than the one row address is the worst bug here.
    throw new Error(`internal: envelope for ${to} has ${envelope.to.length} recipients`);
  }
  const raw = await node.build();
  return { raw, envelope: { from: envelope.from, to: [rcpt] } };
}

/**
 * local@domain with nothing nodemailer's address parser could split or
 * reinterpret: no whitespace, commas, semicolons, angle brackets, quotes,
 * parentheses or control characters. (Quoted local parts are not accepted.)
 */
function isSingleBareAddress(to: string): boolean {
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  return /^[^\s@<>,;:"()\\\x00-\x1f\x7f]+@[^\s@<>,;:"()\\\x00-\x1f\x7f]+$/.test(to);
}
