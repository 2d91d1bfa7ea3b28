/**
 * A local SMTP capture server ("sink"): `mailq sink`, the README demo, and the
 * integration tests' real SMTP server on loopback. It accepts mail without AUTH or
 * TLS, records every message it takes ownership of, optionally writes each one to an
 * .eml file, and plays scripted faults chosen by the recipient's local part (see
 * sink-faults.ts and FAULTS_HELP). Events with timestamps from an injected clock let
 * tests measure per-domain rate and concurrency.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { domainToASCII } from 'node:url';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerDataStream, SMTPServerError, SMTPServerSession } from 'smtp-server';
import { FaultBook, REPLIES, type SinkReply } from './sink-faults.js';

export { FAULTS_HELP, parseFault } from './sink-faults.js';

export interface SinkOptions {
  host?: string;
  port?: number;
  /** Write each stored message to `<outDir>/<seq>-<queueid>.eml` (mode 0600). */
  outDir?: string;
  now?: () => number;
  /** Called once per stored message when its outcome is final (for `mailq sink` log lines). */
  onMessage?: (record: SinkRecord) => void;
}

export interface SinkRecord {
  readonly seq: number;
  readonly at: number;
  readonly sessionId: string;
  readonly from: string;
  readonly to: readonly string[];
  /** The Message-ID header as written, angle brackets included (like nodemailer's info.messageId). */
  readonly messageId: string | undefined;
  readonly size: number;
  readonly file: string | undefined;
  /** Stored, then the connection was cut (or closed) before the final 250 reached the client. */
  readonly dropped: boolean;
}

export interface SinkEvent {
  readonly type: 'connect' | 'mail' | 'rcpt' | 'data-start' | 'data-end' | 'close';
  readonly at: number;
  readonly sessionId: string;
  readonly domain?: string;
  readonly reply?: string;
}

export interface SinkHandle {
  readonly host: string;
  readonly port: number;
  /** smtp://HOST:PORT */
  readonly url: string;
  /** Every message the server took ownership of, in order (including dropped-after-dot ones). */
  readonly received: readonly SinkRecord[];
  readonly events: readonly SinkEvent[];
  /** The most recipient transactions ever open at once, per recipient domain. */
  maxConcurrentByDomain(): ReadonlyMap<string, number>;
  /** Recipient transactions open right now, per recipient domain. */
  openByDomain(): ReadonlyMap<string, number>;
  close(): Promise<void>;
}

const MAX_MESSAGE_BYTES = 25 * 1024 * 1024;

function smtpError(reply: SinkReply): SMTPServerError {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

function format(reply: SinkReply): string {
  return `${reply.code} ${reply.text}`;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** The Message-ID header of a raw message, unfolded and trimmed. */
export function messageIdOf(raw: Buffer): string | undefined {
  const text = raw.toString('latin1');
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
  const head = (end >= 0 ? text.slice(0, end) : text).replace(/\r?\n[ \t]+/g, ' ');
  const match = /^message-id:[ \t]*(.*?)[ \t]*$/im.exec(head);
  return match?.[1] ? match[1] : undefined;
}

function urlOf(host: string, port: number): string {
  return `smtp://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

interface MutableRecord extends SinkRecord {
  dropped: boolean;
}

/**
 * smtp-server hands addresses over with IDN domains decoded to Unicode; the
 * transcript records them as they were on the wire (punycode), the form mailq
 * stores and sends.
 */
function wireAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const ascii = domainToASCII(address.slice(at + 1));
  return ascii === '' ? address : `${address.slice(0, at)}@${ascii}`;
}

export async function startSink(options: SinkOptions = {}): Promise<SinkHandle> {
  const now = options.now ?? Date.now;
  const host = options.host ?? '127.0.0.1';
  const outDir = options.outDir;
  if (outDir !== undefined) await fs.mkdir(outDir, { recursive: true, mode: 0o700 });

  const faults = new FaultBook();
  const received: MutableRecord[] = [];
  const events: SinkEvent[] = [];
  const open = new Map<string, number>();
  const maxOpen = new Map<string, number>();
  /** Domains of the accepted RCPTs of each session's current transaction. */
  const openBySession = new Map<string, string[]>();
  /**
   * Raw sockets by remote port. The drop fault must cut the TCP connection without
   * a reply, and smtp-server hands handlers only the session; without PROXY or
   * XCLIENT (both off here) session.remotePort is the socket's remote port.
   */
  const sockets = new Map<number, net.Socket>();
  /** Pending slow-fault delays, so close() can end them instead of leaving handlers hanging. */
  const delays = new Map<NodeJS.Timeout, () => void>();
  let seq = 0;

  const emit = (event: Omit<SinkEvent, 'at'>): void => {
    events.push({ ...event, at: now() });
  };

  const openTransaction = (sessionId: string, domain: string): void => {
    const list = openBySession.get(sessionId) ?? [];
    list.push(domain);
    openBySession.set(sessionId, list);
    const count = (open.get(domain) ?? 0) + 1;
    open.set(domain, count);
    if (count > (maxOpen.get(domain) ?? 0)) maxOpen.set(domain, count);
  };

  const endTransactions = (sessionId: string): void => {
    for (const domain of openBySession.get(sessionId) ?? []) open.set(domain, (open.get(domain) ?? 1) - 1);
    openBySession.delete(sessionId);
  };

  /** reply is undefined when the client never got one (drop fault, or gone during a delay). */
  const finishData = (session: SMTPServerSession, reply: string | undefined): void => {
    for (const rcpt of session.envelope.rcptTo) {
      const domain = domainOf(rcpt.address);
      emit(reply === undefined ? { type: 'data-end', sessionId: session.id, domain } : { type: 'data-end', sessionId: session.id, domain, reply });
    }
    endTransactions(session.id);
  };

  const store = async (session: SMTPServerSession, raw: Buffer, dropped: boolean): Promise<{ record: MutableRecord; queueId: string }> => {
    const queueId = randomBytes(6).toString('hex').toUpperCase();
    const number = ++seq;
    let file: string | undefined;
    if (outDir !== undefined) {
      file = path.join(outDir, `${number}-${queueId}.eml`);
      // 0600: captured mail holds real recipients' content, like the job database.
      await fs.writeFile(file, raw, { mode: 0o600 });
    }
    const mailFrom = session.envelope.mailFrom;
    const record: MutableRecord = {
      seq: number,
      at: now(),
      sessionId: session.id,
      from: mailFrom === false ? '' : mailFrom.address,
      to: session.envelope.rcptTo.map((r) => wireAddress(r.address)),
      messageId: messageIdOf(raw),
      size: raw.length,
      file,
      dropped,
    };
    received.push(record);
    return { record, queueId };
  };

  const onBody = async (session: SMTPServerSession, raw: Buffer): Promise<{ error?: SMTPServerError; message?: string }> => {
    const verdict = faults.atDataEnd(session.envelope.rcptTo.map((r) => r.address));
    if (verdict.kind === 'reject') {
      finishData(session, format(verdict.reply));
      return { error: smtpError(verdict.reply) };
    }
    const { record, queueId } = await store(session, raw, verdict.kind === 'drop');
    const socket = sockets.get(session.remotePort);
    if (verdict.kind === 'drop') {
      // The server owns the message now; cutting the link before the 250 is exactly
      // the duplicate window a sender must detect (DESIGN section 5).
      socket?.destroy();
      finishData(session, undefined);
      options.onMessage?.(record);
      return { error: smtpError(REPLIES.storeFailed) }; // never written: the socket is gone
    }
    if (verdict.delayMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          delays.delete(timer);
          resolve();
        }, verdict.delayMs);
        delays.set(timer, resolve);
      });
      // A client that gave up (or a close()) during the delay never saw the 250.
      if (socket === undefined || socket.destroyed) record.dropped = true;
    }
    const ok = `2.0.0 Ok: queued as ${queueId}`;
    finishData(session, record.dropped ? undefined : `250 ${ok}`);
    // Reported once the outcome is final: a slow reply may still turn into a drop.
    options.onMessage?.(record);
    return { message: ok };
  };

  const server = new SMTPServer({
    name: 'localhost',
    banner: 'mailq sink: messages are captured, never delivered',
    logger: false,
    // A loopback test tool: no TLS (so no published test key is ever used) and no
    // required AUTH; a sender configured with credentials may still log in.
    hideSTARTTLS: true,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    // Enhanced codes are written into each reply's text (see sink-faults.ts).
    hideENHANCEDSTATUSCODES: true,
    disableReverseLookup: true,
    size: MAX_MESSAGE_BYTES,
    socketTimeout: 60_000,
    closeTimeout: 1_000,
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username ?? 'sink' });
    },
    onConnect(session, callback) {
      emit({ type: 'connect', sessionId: session.id });
      callback();
    },
    onMailFrom(_address, session, callback) {
      // A new MAIL ends any transaction the client abandoned with RSET.
      endTransactions(session.id);
      emit({ type: 'mail', sessionId: session.id, reply: '250 Accepted' });
      callback();
    },
    onRcptTo(address, session, callback) {
      const domain = domainOf(address.address);
      const mailFrom = session.envelope.mailFrom;
      const senderDomain = mailFrom === false || mailFrom.address === '' ? 'acme.test' : domainOf(mailFrom.address);
      const refusal = faults.atRcpt(address.address, senderDomain);
      emit({ type: 'rcpt', sessionId: session.id, domain, reply: refusal === undefined ? '250 Accepted' : format(refusal) });
      if (refusal !== undefined) {
        // smtp-server closes the connection itself after any 421 reply.
        callback(smtpError(refusal));
        return;
      }
      openTransaction(session.id, domain);
      callback();
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      emit({ type: 'data-start', sessionId: session.id });
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        // Past the limit the message is refused anyway; stop holding it in memory.
        if (bytes <= MAX_MESSAGE_BYTES) chunks.push(chunk);
      });
      // The client vanished mid-body: nothing was stored, close() ends the transaction.
      stream.on('error', () => undefined);
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          finishData(session, format(REPLIES.oversized));
          callback(smtpError(REPLIES.oversized));
          return;
        }
        onBody(session, Buffer.concat(chunks)).then(
          (result) => callback(result.error ?? null, result.message),
          (err: unknown) => {
            finishData(session, format(REPLIES.storeFailed));
            const reason = err instanceof Error ? err.message : String(err);
            callback(smtpError({ code: REPLIES.storeFailed.code, text: `${REPLIES.storeFailed.text} (cannot store: ${reason})` }));
          },
        );
      });
    },
    onClose(session) {
      endTransactions(session.id);
      emit({ type: 'close', sessionId: session.id });
    },
  });

  server.server.on('connection', (socket: net.Socket) => {
    const port = socket.remotePort;
    if (port === undefined) return;
    sockets.set(port, socket);
    socket.once('close', () => {
      if (sockets.get(port) === socket) sockets.delete(port);
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options.port ?? 2525, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Errors after listening are per-connection (a client reset); the tool keeps serving.
  server.on('error', () => undefined);

  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 0);
  let closing: Promise<void> | undefined;

  return {
    host,
    port,
    url: urlOf(host, port),
    received,
    events,
    maxConcurrentByDomain: () => new Map(maxOpen),
    openByDomain: () => new Map([...open].filter(([, n]) => n > 0)),
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Clients of a test server get no grace period: destroy their sockets so the
        // port is free as soon as close() resolves.
        for (const socket of sockets.values()) socket.destroy();
        // Delayed replies can no longer reach anyone; their records become dropped.
        for (const [timer, finish] of delays) {
          clearTimeout(timer);
          finish();
        }
        delays.clear();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
