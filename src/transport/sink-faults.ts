/**
 * Scripted faults of the capture sink, chosen by the recipient's local part.
 *
 * The local part starts with a fault tag, then `-`, `+`, `.` or the `@` itself:
 * `bounce-ada@example.com`, `transient2+x@example.com`, `slow500.bob@example.com`.
 * Counted faults (transientN, greylist, throttleN, dropN) count attempts per
 * recipient address (case-insensitive) in server memory, across connections, so a
 * sender that retries after N failures then succeeds, as it would with a real MTA.
 *
 *   tag            stage       reply
 *   bounce         RCPT        550 5.1.1 The email account that you tried to reach does not exist
 *   unknown        RCPT        same as bounce
 *   transientN     RCPT        451 4.3.0 Temporary local problem, try again (first N attempts, N default 1)
 *   greylist       RCPT        451 4.7.1 Greylisted, please try again in 1 seconds (first attempt)
 *   throttleN      RCPT        421 4.7.28 ... unusual rate ... then the server closes the connection
 *                              (first N attempts, N default 1)
 *   dropN          after "."   message stored (recorded with dropped: true), then the socket is
 *                              destroyed before the final reply (first N attempts, N default 1)
 *   slowMS         after "."   final 250 delayed by MS milliseconds (default 1000)
 *   reject         after "."   554 5.7.1 Message rejected due to content policy
 *   blocked        RCPT        550 5.7.26 Unauthenticated email from <sender domain> is not accepted
 *                              due to domain's DMARC policy
 *   quota          RCPT        550 5.4.5 Daily user sending quota exceeded
 *   tempfail-data  after "."   451 4.3.0 Temporary local problem, try again
 *
 * Replies carry their enhanced status code in the text because smtp-server would
 * otherwise derive one from the basic code alone (550 -> 5.1.1 for every 550), and
 * the classifier under test keys on 5.7.26 vs 5.4.5 vs 5.1.1.
 */

export const FAULTS_HELP = `Faults, chosen by the recipient's local part (tag, then "-", "+", "." or "@"),
counted per recipient address across connections, so a retry after N failures succeeds:
  bounce-x, unknown-x  RCPT: 550 5.1.1 The email account that you tried to reach does not exist
  transientN-x         RCPT: 451 4.3.0 Temporary local problem, try again (first N tries; N=1)
  greylist-x           RCPT: 451 4.7.1 Greylisted, please try again in 1 seconds (first try)
  throttleN-x          RCPT: 421 4.7.28 unusual rate of unsolicited mail, then the server
                       closes the connection (first N tries; N=1)
  dropN-x              after ".": message stored, connection cut before the final reply
                       (first N tries; N=1): the SMTP duplicate window
  slowMS-x             after ".": 250 delayed by MS milliseconds (slow500-x; default 1000)
  reject-x             after ".": 554 5.7.1 Message rejected due to content policy
  blocked-x            RCPT: 550 5.7.26 Unauthenticated email from <sender domain> is not
                       accepted due to domain's DMARC policy
  quota-x              RCPT: 550 5.4.5 Daily user sending quota exceeded
  tempfail-data-x      after ".": 451 4.3.0 Temporary local problem, try again
Any other recipient: 250 2.0.0 Ok: queued as <id>.`;

export interface SinkReply {
  readonly code: number;
  /** Reply text after the code, starting with the enhanced status code. */
  readonly text: string;
}

export type FaultTag =
  | 'bounce'
  | 'unknown'
  | 'transient'
  | 'greylist'
  | 'throttle'
  | 'drop'
  | 'slow'
  | 'reject'
  | 'blocked'
  | 'quota'
  | 'tempfail-data';

export interface Fault {
  readonly tag: FaultTag;
  /** The number after the tag: attempts for counted faults, milliseconds for slow. */
  readonly n: number;
}

/** What happens after the body's final ".". */
export type DataVerdict =
  | { readonly kind: 'accept'; readonly delayMs: number }
  | { readonly kind: 'reject'; readonly reply: SinkReply }
  | { readonly kind: 'drop' };

const FAULT_RE =
  /^(bounce|unknown|transient|greylist|throttle|drop|slow|reject|blocked|quota|tempfail-data)(\d*)(?:[-+.]|$)/i;

/** Tags that take a number; the others must be followed by a separator directly. */
const NUMBERED: ReadonlySet<FaultTag> = new Set(['transient', 'throttle', 'drop', 'slow']);

export const REPLIES = {
  bounce: { code: 550, text: '5.1.1 The email account that you tried to reach does not exist' },
  transient: { code: 451, text: '4.3.0 Temporary local problem, try again' },
  greylist: { code: 451, text: '4.7.1 Greylisted, please try again in 1 seconds' },
  throttle: {
    code: 421,
    text: '4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address, try again later',
  },
  reject: { code: 554, text: '5.7.1 Message rejected due to content policy' },
  quota: { code: 550, text: '5.4.5 Daily user sending quota exceeded' },
  oversized: { code: 552, text: '5.3.4 Message size exceeds fixed maximum message size' },
  storeFailed: { code: 451, text: '4.3.0 Temporary local problem, try again' },
} as const satisfies Record<string, SinkReply>;

function blockedReply(senderDomain: string): SinkReply {
  return {
    code: 550,
    text: `5.7.26 Unauthenticated email from ${senderDomain} is not accepted due to domain's DMARC policy`,
  };
}

export function parseFault(address: string): Fault | undefined {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const match = FAULT_RE.exec(local);
  if (match === null) return undefined;
  const tag = (match[1] ?? '').toLowerCase() as FaultTag;
  const digits = match[2] ?? '';
  // "bounce2-x" is not a documented fault; treating it as a plain address keeps the
  // tag list strict instead of silently accepting near-misses.
  if (digits !== '' && !NUMBERED.has(tag)) return undefined;
  const fallback = tag === 'slow' ? 1000 : 1;
  return { tag, n: digits === '' ? fallback : Number(digits) };
}

/**
 * Per-address attempt counters: server memory, shared by every connection, so that a
 * retry on a new connection sees the earlier failures (like a real greylisting MTA).
 */
export class FaultBook {
  private readonly rcptAttempts = new Map<string, number>();
  private readonly dataAttempts = new Map<string, number>();

  /** The refusal for this RCPT, or undefined to accept it. */
  atRcpt(address: string, senderDomain: string): SinkReply | undefined {
    const fault = parseFault(address);
    if (fault === undefined) return undefined;
    switch (fault.tag) {
      case 'bounce':
      case 'unknown':
        return REPLIES.bounce;
      case 'blocked':
        return blockedReply(senderDomain);
      case 'quota':
        return REPLIES.quota;
      case 'transient':
        return this.bump(this.rcptAttempts, address) <= fault.n ? REPLIES.transient : undefined;
      case 'greylist':
        return this.bump(this.rcptAttempts, address) <= 1 ? REPLIES.greylist : undefined;
      case 'throttle':
        return this.bump(this.rcptAttempts, address) <= fault.n ? REPLIES.throttle : undefined;
      default:
        return undefined;
    }
  }

  /**
   * The outcome after the body of a transaction with these recipients. With several
   * recipients the worst fault wins (reject, then tempfail, then drop, then the
   * longest delay): one SMTP reply answers the whole transaction.
   */
  atDataEnd(recipients: readonly string[]): DataVerdict {
    let reject: SinkReply | undefined;
    let drop = false;
    let delayMs = 0;
    for (const address of recipients) {
      const fault = parseFault(address);
      if (fault === undefined) continue;
      if (fault.tag === 'reject') reject = REPLIES.reject;
      else if (fault.tag === 'tempfail-data') reject ??= REPLIES.transient;
      else if (fault.tag === 'drop') drop = this.bump(this.dataAttempts, address) <= fault.n || drop;
      else if (fault.tag === 'slow') delayMs = Math.max(delayMs, fault.n);
    }
    if (reject !== undefined) return { kind: 'reject', reply: reject };
    if (drop) return { kind: 'drop' };
    return { kind: 'accept', delayMs };
  }

  private bump(counts: Map<string, number>, address: string): number {
    const key = address.toLowerCase();
    const next = (counts.get(key) ?? 0) + 1;
    counts.set(key, next);
    return next;
  }
}
