/**
 * Parsing of rendered From / Reply-To values with nodemailer's address
 * parser; the MIME encoder writes the headers from the mailboxes parsed here,
 * so what we validate is exactly what goes on the wire.
 */
import addressparser from 'nodemailer/lib/addressparser/index.js';

export interface Mailbox {
  readonly name: string;
  readonly address: string;
}

export type MailboxParse = { readonly ok: true; readonly mailboxes: readonly Mailbox[] } | { readonly ok: false; readonly problem: string };

/**
 * Results by value: a campaign's From and Reply-To are the same for nearly
 * every recipient, and render, the MIME build and the Message-ID each parse
 * them (~18 µs a message with nodemailer's parser). Cleared when full.
 */
const parsed = new Map<string, MailboxParse>();
const MAX_REMEMBERED = 16;

/**
 * Parses a header value into mailboxes. Groups ("Team: a@x, b@y;") are
 * refused rather than flattened: a sender field has no business being one,
 * and flattening would hide how many addresses it really holds.
 */
export function parseMailboxes(value: string): MailboxParse {
  const known = parsed.get(value);
  if (known !== undefined) return known;
  const result = parseUncached(value);
  if (parsed.size >= MAX_REMEMBERED) parsed.clear();
  parsed.set(value, result);
  return result;
}

function parseUncached(value: string): MailboxParse {
  const entries = addressparser(value);
  const mailboxes: Mailbox[] = [];
  for (const entry of entries) {
    if ('group' in entry) return { ok: false, problem: `is an address group ("${entry.name}: …;")` };
    if (!isPlausibleAddress(entry.address)) {
      return { ok: false, problem: entry.address === '' ? 'has no email address' : `has an invalid address "${entry.address}"` };
    }
    mailboxes.push({ name: entry.name, address: entry.address });
  }
  if (mailboxes.length === 0) return { ok: false, problem: 'is empty' };
  return { ok: true, mailboxes };
}

/** Exactly one mailbox, as From and the SMTP envelope sender require. */
export function parseSingleMailbox(value: string): { ok: true; mailbox: Mailbox } | { ok: false; problem: string } {
  const r = parseMailboxes(value);
  if (!r.ok) return r;
  const [first] = r.mailboxes;
  if (first === undefined || r.mailboxes.length !== 1) {
    return { ok: false, problem: `holds ${r.mailboxes.length} addresses; exactly one is required` };
  }
  return { ok: true, mailbox: first };
}

/** local@domain with both parts present and no whitespace/control characters. */
function isPlausibleAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  return at > 0 && at < address.length - 1 && !/[\s\x00-\x1f\x7f<>,;]/.test(address);
}
