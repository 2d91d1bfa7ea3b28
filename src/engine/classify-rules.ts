/**
 * The SMTP outcome table behind `classify()` (DESIGN.md §6): data, evaluated top
 * to bottom, first match wins. `classify.ts` holds the engine; this file holds
 * only rows, so a change in provider behaviour is a one-row diff plus a golden
 * case in test/unit/fixtures/replies.json (the test fails on any row no golden
 * case reaches).
 *
 * Sources for the reply texts and codes: RFC 5321 §4.2 (reply codes), RFC 3463
 * (enhanced status codes), RFC 4954 §6 (AUTH replies), RFC 3207 (STARTTLS),
 * Google "Gmail SMTP errors and codes" (support.google.com/a/answer/3726730),
 * Yahoo senders.yahooinc.com/smtp-error-codes, Microsoft Exchange Online NDR
 * docs, Apple support 102322, postmaster.comcast.net, postmaster.gmx.net, the
 * Orange/La Poste codes collected by sisimai, and Postfix/Exim/Sendmail/qmail
 * sources. Every row is exercised by a real reply in the golden file.
 *
 * Regexes run on the reply text with the per-line "550-5.1.1 " prefixes removed
 * and lines joined by one space, so a phrase that a server wrapped across lines
 * still matches. They must not carry the g or y flag (lastIndex is state).
 */

export type SmtpStage = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'body';

export type Category =
  | 'sent'
  | 'retry'
  | 'throttle'
  | 'connection'
  | 'ambiguous'
  | 'bad-recipient'
  | 'message-rejected'
  | 'sender-blocked'
  | 'quota'
  | 'fatal';

/** First digit of a usable SMTP reply code (RFC 5321 §4.2.1); 3yz is never a final outcome. */
export type ReplyClass = 2 | 4 | 5;

/** Every condition present must hold (logical AND); an absent condition always holds. */
export interface RuleConditions {
  readonly stages?: readonly SmtpStage[];
  /** Exact SMTP reply codes. */
  readonly codes?: readonly number[];
  readonly classes?: readonly ReplyClass[];
  /** Tested on the enhanced code after the class fallback, or on '' when the reply has none. */
  readonly enhanced?: RegExp;
  /** Tested on the normalised reply text. */
  readonly text?: RegExp;
  /** No-reply rows only: tested on the socket/transport error code ('' when absent). */
  readonly error?: RegExp;
  /** No-reply rows only: the whole body and the final "." had been written. */
  readonly afterBody?: boolean;
}

export interface ClassifyRule {
  /** Stable id: logs, reports and golden tests refer to it. */
  readonly id: string;
  readonly category: Category;
  readonly when: RuleConditions;
  /** One operator-facing line. */
  readonly explanation: string;
}

/** Bump whenever a row is added, removed, reordered or changes meaning. */
export const CLASSIFY_RULES_VERSION = 1;

/**
 * Throttle rows after which the provider is known to suspend the sending IP,
 * so the throttle should pause the domain rather than halve its rate (Yahoo
 * TSS04: KumoMTA suspends for 2 hours; see providers.ts severePauseMs).
 */
export const SEVERE_THROTTLE_RULES: ReadonlySet<string> = new Set(['yahoo-tss04']);

const RECIPIENT_STAGES: readonly SmtpStage[] = ['rcpt', 'data', 'body'];

/**
 * (1) No usable reply: the socket failed, timed out, or the transport refused
 * locally. Whether the server may already own the message decides everything
 * (RFC 5321 §6.1: the server takes responsibility when it answers the final
 * "."; RFC 1047: a reply lost after "." is how duplicates happen), so the
 * after-body row comes first, whatever the error.
 */
export const NO_REPLY_RULES: readonly ClassifyRule[] = [
  {
    id: 'no-reply-after-body',
    category: 'ambiguous',
    when: { afterBody: true, stages: ['data', 'body'] },
    explanation: 'connection lost after the final "." and before the reply: the server may have the message (possible duplicate)',
  },
  {
    // nodemailer ETLS/EREQUIRETLS, Node/OpenSSL certificate and handshake codes.
    id: 'tls-failure',
    category: 'fatal',
    when: { error: /^(?:ETLS|EREQUIRETLS|EPROTO|CERT_\w+|\w+_CERT(?:_\w+)?|UNABLE_TO_\w+|HOSTNAME_MISMATCH|ERR_(?:SSL|TLS)_\w+)$/ },
    explanation: 'TLS could not be established (handshake, certificate or STARTTLS required): fix the SMTP/TLS settings',
  },
  {
    id: 'auth-error',
    category: 'fatal',
    when: { error: /^(?:EAUTH|ENOAUTH)$/ },
    explanation: 'SMTP authentication failed before the server replied: check the SMTP credentials',
  },
  {
    // nodemailer EMESSAGE without a reply: empty message, or larger than the server's SIZE (RFC 1870).
    id: 'client-message-too-big',
    category: 'message-rejected',
    when: { error: /^EMESSAGE$/ },
    explanation: 'the transport refused the message before sending it (empty, or larger than the advertised SIZE)',
  },
  {
    id: 'client-envelope-rejected',
    category: 'message-rejected',
    when: { error: /^EENVELOPE$/ },
    explanation: 'the transport refused the envelope before sending it (invalid sender or recipient)',
  },
  {
    id: 'no-reply-before-body',
    category: 'connection',
    when: {},
    explanation: 'no reply from the server before the message was sent: safe to retry after a domain back-off',
  },
];

/**
 * (2) Authentication and TLS replies: a configuration problem on our side that
 * every later message would hit too, so the run stops.
 */
const AUTH_TLS_RULES: readonly ClassifyRule[] = [
  {
    // Gmail "530 5.7.0 Must issue a STARTTLS command first", "421 4.7.0 TLS required
    // for RCPT domain", "550 5.7.29 ... wasn't sent over a TLS connection".
    id: 'tls-required',
    category: 'fatal',
    when: {
      classes: [4, 5],
      text: /\bTLS (?:is )?required|must issue a STARTTLS|STARTTLS (?:is )?required|not using a TLS connection|sent over a TLS connection|encryption required/i,
    },
    explanation: 'the server requires TLS and the session is not encrypted: enable STARTTLS/TLS',
  },
  {
    // RFC 4954 §6: 530 authentication required, 534 mechanism too weak, 535 credentials
    // invalid, 538 encryption required for mechanism (Gmail 535 5.7.8, 534 5.7.9,
    // Microsoft 535 5.7.139 / 530 5.7.57).
    id: 'auth-failed',
    category: 'fatal',
    when: { codes: [530, 534, 535, 538] },
    explanation: 'the SMTP server rejected or requires authentication: check the SMTP user, password or app password',
  },
];

/** (3) Text overrides: what the enhanced code alone gets wrong or too coarse. */
const TEXT_RULES: readonly ClassifyRule[] = [
  {
    // Gmail 451 4.7.26: a DMARC verdict could not be reached because DNS failed.
    id: 'auth-dns-tempfail',
    category: 'retry',
    when: { classes: [4], text: /temporary DNS failures? prevents? authentication/i },
    explanation: 'the receiver could not check SPF/DKIM/DMARC because of a temporary DNS failure: retry later',
  },
  {
    // Gmail 5.7.26/4.7.26/4.7.27/4.7.30/4.7.32/4.7.40, Yahoo 5.7.9, Microsoft 5.7.509/5.7.515,
    // Apple, Comcast DM000001, GMX and Orange SPF/DMARC rejections.
    id: 'sender-auth-failed',
    category: 'sender-blocked',
    when: {
      classes: [4, 5],
      text: /unauthenticated|\bDMARC\b|\bSPF\b|\bDKIM\b|sender policy framework|authentication (?:checks|information)|required authentication level/i,
    },
    explanation: 'SPF/DKIM/DMARC failed for the sending domain: fix DNS authentication before sending more',
  },
  {
    // Gmail 5.7.25/4.7.23, Postfix reject_unknown_reverse_client_hostname, Microsoft IPv6 rDNS.
    id: 'sender-ptr',
    category: 'sender-blocked',
    when: { classes: [4, 5], text: /\bPTR\b|reverse DNS|reverse hostname|cannot find your hostname|\brDNS\b/i },
    explanation: 'the sending IP has no valid reverse DNS (PTR): fix it with the IP owner',
  },
  {
    // DNSBL and provider block lists: Spamhaus, Cloudmark, Microsoft S3150, GMX, Comcast BL*, Orange OFR_102.
    id: 'blocklisted',
    category: 'sender-blocked',
    when: {
      classes: [4, 5],
      text: /blocked using|\b(?:black|block) ?list(?:ed)?\b|spamhaus|\bRBL\b|\bDNSBLs?\b|cloudmark|senderscore|barracuda|spamcop|block(?:ed)? for spam/i,
    },
    explanation: 'the sending IP or domain is on a block list: delist before sending more to this provider',
  },
  {
    // Gmail 450 4.2.1 / 550 5.2.1 "receiving mail too quickly", Yahoo 450, Apple 421 4.7.1:
    // one mailbox is flooded, not the domain, so only this message waits.
    id: 'recipient-rate-limited',
    category: 'retry',
    when: { classes: [4, 5], text: /receiving (?:e-?mail|mail) (?:too quickly|at a rate)|deferred due to excessive volume/i },
    explanation: 'this recipient is receiving mail too fast: retry this message later',
  },
  {
    // Gmail 550 5.4.5 / 550 5.7.1 daily limits, Exchange Online 554 5.2.0 SubmissionQuotaExceeded
    // (10,000 recipients/day) and 554 5.2.2 sender mailbox full on submission.
    id: 'sender-quota',
    category: 'quota',
    when: {
      classes: [4, 5],
      text: /daily (?:user )?(?:sending|smtp relay)(?: sending)? (?:quota|limit)|daily limit for message recipients|submission ?quota|STOREDRV\.Submission\.Exception:\w*QuotaExceeded/i,
    },
    explanation: "the sending account's quota is used up: the run pauses until the provider's window resets",
  },
  {
    // postgrey "Greylisted, see http://postgrey...", Exim greylistd "is not yet authorized to
    // deliver mail from", "Greylisting in action", Mimecast 451 "Internal resource ... unavailable".
    id: 'greylisted',
    category: 'retry',
    when: { classes: [4], text: /gr[ae]y-?list|not yet authorized to deliver mail from|internal resources? (?:is |are )?temporarily unavailable/i },
    explanation: 'greylisted: the server accepts a retry after its delay (usually 1-10 minutes)',
  },
  {
    id: 'yahoo-tss04',
    category: 'throttle',
    when: { classes: [4], text: /\[TSS04\]/ },
    explanation: 'Yahoo TSS04 (volume or complaints): pause yahoo/aol; Yahoo may suspend the IP for hours, so do not push',
  },
  {
    // TS03 says "permanently deferred" yet is a 421: Yahoo asks not to resend until the list is fixed.
    id: 'yahoo-ts-deferred',
    category: 'throttle',
    when: { classes: [4], text: /\[TS0[1-3]\]/ },
    explanation: 'Yahoo TS01-TS03 deferral (complaints or unusual traffic): slow down yahoo/aol and review the list',
  },
  {
    id: 'gmail-rate-limit',
    category: 'throttle',
    when: { classes: [4], text: /unusual (?:rate|amount) of (?:unsolicited )?(?:e-?)?mail/i },
    explanation: 'Gmail is rate-limiting this sender (unusual rate): slow down gmail.com',
  },
  {
    id: 'gmail-rate-block',
    category: 'sender-blocked',
    when: { classes: [5], text: /unusual (?:rate|amount) of (?:unsolicited )?(?:e-?)?mail/i },
    explanation: 'Gmail blocked this sender for an unusual rate of unsolicited mail: stop and review the list',
  },
  {
    id: 'microsoft-rate-limit',
    category: 'throttle',
    when: { classes: [4], text: /rate limited due to (?:IP|URL) reputation/i },
    explanation: 'Microsoft is rate-limiting this IP for reputation (4.7.650/651): slow down outlook/hotmail',
  },
  {
    // Postfix anvil, Exim smtp_accept_max_per_host, Sendmail ratecontrol, Microsoft 4.7.652
    // and 432 4.3.2, Orange OFR005_104 "Trop de connexions".
    id: 'too-many-connections',
    category: 'throttle',
    when: {
      classes: [4, 5],
      text: /too many (?:concurrent )?(?:smtp )?(?:connections|sessions)|maximum number of (?:concurrent )?connections|concurrent connections limit|connection rate limit|trop de connexions/i,
    },
    explanation: 'too many connections to this server: lower the domain concurrency',
  },
  {
    id: 'max-messages-per-connection',
    category: 'retry',
    when: { classes: [4], text: /max(?:imum)? (?:number of )?messages? per (?:connection|session)|too many messages (?:in|per) (?:this )?(?:connection|session)/i },
    explanation: 'per-connection message limit reached: reconnect and retry',
  },
  {
    id: 'rate-limited',
    category: 'throttle',
    when: {
      classes: [4, 5],
      text: /rate[- ]?limit|\bthrottl|too (?:much mail|many messages)|sending rate|unexpected volume|excessive unknown recipients|peak smtp relay limit/i,
    },
    explanation: 'the server is rate-limiting this sender: slow down this domain',
  },
  {
    // RFC 5321 §4.5.4.1 retry semantics; greylisting daemons commonly answer 450/451 4.7.1.
    id: 'greylist-generic',
    category: 'retry',
    when: { codes: [450, 451], enhanced: /^4\.7\.1$/, text: /try (?:again )?later|come back later/i },
    explanation: 'temporary refusal (greylisting or policy delay): retry later',
  },
  {
    // Yahoo "554 delivery error: dd This user doesn't have a yahoo.com account",
    // "552 1 Requested mail action aborted, mailbox not found" (after DATA).
    id: 'mailbox-not-found',
    category: 'bad-recipient',
    when: {
      classes: [5],
      stages: RECIPIENT_STAGES,
      text: /mailbox not found|dd This user doesn't have an? \S+ account|dd \S+ is no longer valid|this mailbox is disabled/i,
    },
    explanation: 'the mailbox does not exist: address suppressed',
  },
  {
    id: 'gmail-no-such-user',
    category: 'bad-recipient',
    when: { classes: [5], text: /The email account that you tried to reach does not exist/i },
    explanation: 'Gmail: the account does not exist: address suppressed',
  },
  {
    // Exchange Online directory-based edge blocking: 5.4.1 (RFC 3463 "no answer from host")
    // is how Microsoft reports an unknown recipient in a hosted domain.
    id: 'microsoft-dbeb-recipient',
    category: 'bad-recipient',
    when: { classes: [5], enhanced: /^5\.4\.1$/, text: /Recipient address rejected: Access denied/i },
    explanation: 'Microsoft 365: recipient not in the tenant directory: address suppressed',
  },
  {
    // Only replies without an enhanced code; coded ones go through the 5.2.2 row.
    id: 'mailbox-full-permanent',
    category: 'bad-recipient',
    when: {
      classes: [5],
      stages: RECIPIENT_STAGES,
      enhanced: /^$/,
      text: /mailbox (?:is )?full|over ?quota|storage quota|out of storage|exhausted allowed storage|exceeded storage allocation|boite du destinataire pleine/i,
    },
    explanation: 'the mailbox is full and the server gave up (5xx): address suppressed; lift it if the owner frees space',
  },
  {
    // Exim "Sender verify failed", Postfix "Sender address rejected", Sendmail 553 5.1.8,
    // Orange "Emetteur invalide": 5xx about our envelope sender, even at RCPT.
    id: 'sender-rejected',
    category: 'sender-blocked',
    when: { classes: [5], text: /sender verify failed|sender address rejected|domain of sender address|invalid sender|emetteur invalide/i },
    explanation: 'the envelope sender (MAIL FROM) was refused: fix the sender address or its domain',
  },
  {
    // mailq submits through one configured server; refusing to relay means our session is
    // not authorised (RFC 5321 §3.6.3, RFC 6409 §4), for every recipient alike.
    id: 'relay-denied',
    category: 'fatal',
    when: { classes: [5], text: /relay(?:ing)? (?:access )?(?:denied|not permitted)|unable to relay|we do not relay/i },
    explanation: 'the SMTP server refuses to relay for this session: check the SMTP host and authentication',
  },
  {
    id: 'sender-reputation',
    category: 'sender-blocked',
    when: { classes: [5], text: /(?:low|poor|bad) reputation|reputation of the sending/i },
    explanation: 'refused for the reputation of the sending IP or domain: stop and investigate',
  },
  {
    // qmail "552 sorry, that message size exceeds my databytes limit (#5.3.4)", old Sendmail.
    id: 'message-too-big',
    category: 'message-rejected',
    when: {
      classes: [4, 5],
      enhanced: /^$/,
      text: /message size (?:exceeds|limit)|message (?:is )?too (?:big|large)|size exceeds|message length exceeds|taille limite/i,
    },
    explanation: 'the message is larger than the server accepts: shrink attachments or images',
  },
  {
    // Gmail 550 5.7.1 "likely unsolicited mail", Yahoo [PH01], Apple [CS01], Mimecast, mediabeam.
    id: 'content-rejected',
    category: 'message-rejected',
    when: {
      classes: [5],
      text: /\bspam\b|unsolicited (?:e-?mail|mail|message)|\bvirus\b|malware|phishing|security polic(?:y|ies)|content (?:filter|policy|rejected)|\[PH\d\d\]|message (?:refused|rejected)\b/i,
    },
    explanation: 'the content was refused as spam or by policy: review the template and links',
  },
  {
    // RFC 5321 §4.2.2/§3.8: 421 "Service not available, closing transmission channel" may
    // answer any command; unless a row above explains it, treat it as push-back.
    id: 'code-421',
    category: 'throttle',
    when: { codes: [421] },
    explanation: 'the server closed the channel (421): slow down this domain',
  },
];

/** Stage-specific replies the text rows did not explain. */
const SESSION_RULES: readonly ClassifyRule[] = [
  {
    // RFC 3207 §4: 454 TLS not available; a 5xx means STARTTLS is unsupported while we require it.
    id: 'starttls-failed',
    category: 'fatal',
    when: { stages: ['starttls'], classes: [4, 5] },
    explanation: 'STARTTLS failed and TLS is required: fix the server or the TLS settings',
  },
  {
    id: 'auth-stage-rejected',
    category: 'fatal',
    when: { stages: ['auth'], classes: [5] },
    explanation: 'the AUTH exchange failed (mechanism or syntax): check the SMTP authentication settings',
  },
  {
    // RFC 4954 §6: 454 4.7.0 Temporary authentication failure.
    id: 'auth-stage-temporary',
    category: 'retry',
    when: { stages: ['auth'], classes: [4] },
    explanation: 'temporary authentication failure: retry later',
  },
];

/** (4) RFC 3463 enhanced status codes (class.subject.detail), after the class fallback. */
const ENHANCED_RULES: readonly ClassifyRule[] = [
  { id: 'enhanced-2.x.x', category: 'sent', when: { enhanced: /^2\./ }, explanation: 'accepted by the server' },
  {
    // X.7.x is "security or policy"; with rate words it is push-back, not a message problem.
    id: 'enhanced-4.7.x-rate',
    category: 'throttle',
    when: { enhanced: /^4\.7\./, text: /\b(?:rate|busy|volume|limit(?:ed)?|too many|excessive|throttl\w*|congest\w*)\b/i },
    explanation: 'temporary policy refusal about volume or load: slow down this domain',
  },
  { id: 'enhanced-4.x.x', category: 'retry', when: { enhanced: /^4\./ }, explanation: 'temporary failure: retry with back-off' },
  {
    // X.1.7 bad sender mailbox syntax, X.1.8 bad sender system address.
    id: 'enhanced-5.1.7-5.1.8',
    category: 'sender-blocked',
    when: { enhanced: /^5\.1\.[78]$/ },
    explanation: 'the envelope sender address or its domain was refused: fix the sender',
  },
  {
    // X.1.0-X.1.6, X.1.9, X.1.10 (RFC 3463 §3.2, RFC 7505 null MX): destination address;
    // at MAIL FROM the address in question is ours, so MAIL is excluded.
    id: 'enhanced-5.1.x',
    category: 'bad-recipient',
    when: { enhanced: /^5\.1\.(?:\d|10)$/, stages: RECIPIENT_STAGES },
    explanation: 'bad destination address or domain: address suppressed',
  },
  {
    id: 'enhanced-5.2.1',
    category: 'bad-recipient',
    when: { enhanced: /^5\.2\.1$/, stages: RECIPIENT_STAGES },
    explanation: 'the mailbox is disabled or inactive: address suppressed',
  },
  {
    // RFC 3463 X.2.2 "mailbox full" may be transient or permanent; the reply class decides
    // (RFC 5321 §4.2.1: do not repeat a 5yz). 4.2.2 falls to the 4.x.x row and retries.
    id: 'enhanced-5.2.2',
    category: 'bad-recipient',
    when: { enhanced: /^5\.2\.2$/, stages: RECIPIENT_STAGES },
    explanation: 'the mailbox is full and the server gave up (5.2.2): address suppressed; lift it if the owner frees space',
  },
  {
    id: 'enhanced-5.2.3',
    category: 'message-rejected',
    when: { enhanced: /^5\.2\.3$/ },
    explanation: 'the message exceeds the recipient size limit (5.2.3): shrink it',
  },
  { id: 'enhanced-5.3.x', category: 'message-rejected', when: { enhanced: /^5\.3\./ }, explanation: 'the receiving system refused this message (size or capability): review the message' },
  { id: 'enhanced-5.4.x', category: 'message-rejected', when: { enhanced: /^5\.4\./ }, explanation: 'network or routing failure (loop, unroutable): message failed' },
  {
    // Decision: at RCPT, X.5.0 (Microsoft consumer "mailbox unavailable", Orange archived
    // mailbox), X.5.2 and X.5.4 (syntax of the RCPT argument) concern the address.
    // X.5.1 "invalid command" (out of sequence) is a protocol problem, not the recipient.
    id: 'enhanced-5.5.x-rcpt-address',
    category: 'bad-recipient',
    when: { enhanced: /^5\.5\.[024]$/, stages: ['rcpt'] },
    explanation: 'the server refused the recipient address at RCPT: address suppressed',
  },
  { id: 'enhanced-5.5.x', category: 'message-rejected', when: { enhanced: /^5\.5\./ }, explanation: 'SMTP protocol error: message failed' },
  { id: 'enhanced-5.6.x', category: 'message-rejected', when: { enhanced: /^5\.6\./ }, explanation: 'the message content or encoding was refused (malformed): review the MIME' },
  {
    // X.7.1 "delivery not authorized, message refused": usually per-message policy;
    // the text rows above catch the block-list and authentication variants.
    id: 'enhanced-5.7.1',
    category: 'message-rejected',
    when: { enhanced: /^5\.7\.1$/, stages: RECIPIENT_STAGES },
    explanation: 'refused by the receiving policy (5.7.1): message failed',
  },
  {
    id: 'enhanced-5.7.x',
    category: 'sender-blocked',
    when: { enhanced: /^5\.7\./ },
    explanation: 'security or policy refusal of the sender (5.7.x): stop and investigate',
  },
];

/** (5) The bare reply class by stage (RFC 5321 §4.2.1, §4.3.2). */
const CLASS_RULES: readonly ClassifyRule[] = [
  { id: 'class-2xx', category: 'sent', when: { classes: [2] }, explanation: 'accepted by the server' },
  { id: 'class-4xx', category: 'retry', when: { classes: [4] }, explanation: 'temporary failure: retry with back-off' },
  {
    id: 'class-5xx-rcpt',
    category: 'bad-recipient',
    when: { classes: [5], stages: ['rcpt'] },
    explanation: 'the server refused the recipient: address suppressed',
  },
  {
    id: 'class-5xx-mail',
    category: 'sender-blocked',
    when: { classes: [5], stages: ['mail'] },
    explanation: 'the server refused the envelope sender: fix the sender before sending more',
  },
  {
    id: 'class-5xx-data',
    category: 'message-rejected',
    when: { classes: [5], stages: ['data', 'body'] },
    explanation: 'the server refused the message: message failed',
  },
  {
    // Decision: a 5xx before any envelope (banner, EHLO) refuses our host, not a message.
    id: 'class-5xx-session',
    category: 'sender-blocked',
    when: { classes: [5], stages: ['connect', 'greeting', 'ehlo'] },
    explanation: 'the server refuses sessions from this host: stop sending to it and investigate',
  },
];

/** Rows for a reply with a usable code, in decision order. */
export const REPLY_RULES: readonly ClassifyRule[] = [
  ...AUTH_TLS_RULES,
  ...TEXT_RULES,
  ...SESSION_RULES,
  ...ENHANCED_RULES,
  ...CLASS_RULES,
];

/** Every row, for coverage tests and documentation. */
export const CLASSIFY_RULES: readonly ClassifyRule[] = [...NO_REPLY_RULES, ...REPLY_RULES];
