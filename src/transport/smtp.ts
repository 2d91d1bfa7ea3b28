import type { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import type { OutgoingMessage, Transport, TransportResult, TransportStage } from './types.js';

/**
 * SMTP over nodemailer's SMTPConnection with a pool of our own.
 *
 * Why not nodemailer's pooled transport: when a connection drops mid-message
 * it re-queues the message by itself (unless maxRequeues is 0), and then
 * reports only "Reached maximum number of retries after connection was
 * closed" — no stage, no code, and no way to tell a drop before MAIL FROM
 * from a drop after the final ".". mailq must know the difference (the SMTP
 * duplicate window), so it drives the connections itself: one send at a time
 * per connection, reused after success, closed after any error.
 */

export interface SmtpConfig {
  readonly host: string;
  readonly port: number;
  /** Implicit TLS (smtps://). */
  readonly secure: boolean;
  /** Refuse to send unless STARTTLS succeeds (the default except to loopback). */
  readonly requireTLS: boolean;
  /** Verify the server certificate (off only with --insecure-tls). */
  readonly verifyCertificate: boolean;
  readonly user: string | undefined;
  readonly password: string | undefined;
  readonly maxConnections: number;
  /** Messages per connection before it is recycled (nodemailer's pool uses 100 too). */
  readonly maxMessagesPerConnection: number;
  readonly connectionTimeoutMs: number;
  readonly socketTimeoutMs: number;
  /** EHLO name. */
  readonly name: string | undefined;
}

interface Slot {
  readonly conn: SMTPConnection;
  sent: number;
}

interface SmtpErrorLike {
  code?: string;
  command?: string;
  responseCode?: number;
  response?: string;
  message: string;
}

function closedResult(): TransportResult {
  return { ok: false, stage: 'connect', code: undefined, reply: undefined, errorCode: 'ECLOSED', bodyWritten: false, message: 'transport closed' };
}

function stageOf(command: string | undefined, connected: boolean): TransportStage {
  if (command === undefined) return connected ? 'data' : 'connect';
  if (command === 'CONN') return connected ? 'data' : 'connect';
  if (/^(EHLO|HELO|LHLO)/.test(command)) return 'ehlo';
  if (command === 'STARTTLS') return 'starttls';
  if (command.startsWith('AUTH')) return 'auth';
  if (command.startsWith('MAIL')) return 'mail';
  if (command.startsWith('RCPT')) return 'rcpt';
  return 'data';
}

function failure(err: SmtpErrorLike, stage: TransportStage, bodyWritten: boolean): TransportResult {
  const reply = typeof err.response === 'string' && err.response !== '' ? err.response : undefined;
  const code = typeof err.responseCode === 'number' ? err.responseCode : undefined;
  return {
    ok: false,
    stage,
    code,
    reply,
    // A reply code explains the failure; without one the error code is what we have.
    errorCode: code === undefined ? (err.code ?? 'ECONNECTION') : undefined,
    bodyWritten,
    message: err.message,
  };
}

export class SmtpTransport implements Transport {
  readonly description: string;
  readonly maxConnections: number;
  private readonly config: SmtpConfig;
  private readonly idle: Slot[] = [];
  private readonly busy = new Set<Slot>();
  private open = 0;
  private closed = false;

  constructor(config: SmtpConfig) {
    this.config = config;
    this.maxConnections = config.maxConnections;
    const user = config.user === undefined ? '' : `${config.user}@`;
    this.description = `${config.secure ? 'smtps' : 'smtp'}://${user}${config.host}:${config.port}`;
  }

  openConnections(): number {
    return this.open;
  }

  private connect(): Promise<Slot | TransportResult> {
    const c = this.config;
    const conn = new SMTPConnection({
      host: c.host,
      port: c.port,
      secure: c.secure,
      requireTLS: c.requireTLS,
      ...(c.name === undefined ? {} : { name: c.name }),
      connectionTimeout: c.connectionTimeoutMs,
      greetingTimeout: c.connectionTimeoutMs,
      socketTimeout: c.socketTimeoutMs,
      tls: { rejectUnauthorized: c.verifyCertificate },
    });
    this.open++;
    return new Promise((resolve) => {
      let done = false;
      const fail = (err: SmtpErrorLike, stage: TransportStage): void => {
        if (done) return;
        done = true;
        this.open--;
        conn.close();
        resolve(failure(err, stage, false));
      };
      conn.once('error', (err) => fail(err, stageOf(err.command, false)));
      conn.connect((err) => {
        if (err) return fail(err, err.code === 'ETLS' ? 'starttls' : stageOf(err.command, false));
        // nodemailer writes the final "." as its own small packet; with Nagle on
        // it waits for a delayed ACK, ~45 ms a message on loopback.
        conn._socket.setNoDelay(true);
        const ready = (): void => {
          if (done) return;
          done = true;
          conn.removeAllListeners('error');
          conn.once('end', () => this.forget(conn));
          conn.on('error', () => undefined);
          resolve({ conn, sent: 0 });
        };
        if (c.user === undefined) return ready();
        conn.login({ user: c.user, pass: c.password ?? '' }, (loginErr) => {
          if (loginErr) return fail(loginErr, 'auth');
          ready();
        });
      });
    });
  }

  private forget(conn: SMTPConnection): void {
    const i = this.idle.findIndex((s) => s.conn === conn);
    if (i >= 0) {
      this.idle.splice(i, 1);
      this.open--;
    }
  }

  private discard(slot: Slot): void {
    this.open--;
    slot.conn.removeAllListeners('end');
    slot.conn.close();
  }

  async send(message: OutgoingMessage): Promise<TransportResult> {
    if (this.closed) return closedResult();
    let slot = this.idle.pop();
    if (slot === undefined) {
      const made = await this.connect();
      if ('ok' in made) return made;
      slot = made;
    }
    slot.conn.removeAllListeners('end');
    this.busy.add(slot);
    const result = await this.transact(slot, message);
    this.busy.delete(slot);
    if (result.ok && !this.closed && slot.sent < this.config.maxMessagesPerConnection && !slot.conn.destroyed) {
      slot.conn.once('end', () => this.forget(slot.conn));
      this.idle.push(slot);
    } else {
      this.discard(slot);
    }
    return result;
  }

  private transact(slot: Slot, message: OutgoingMessage): Promise<TransportResult> {
    return new Promise((resolve) => {
      let done = false;
      let bodyWritten = false;
      const finish = (r: TransportResult): void => {
        if (done) return;
        done = true;
        slot.conn.removeListener('error', onError);
        slot.conn.removeListener('end', onEnd);
        resolve(r);
      };
      // A dropped connection never calls send's callback: it surfaces here.
      const onError = (err: SmtpErrorLike): void => finish(failure(err, bodyWritten ? 'body' : stageOf(err.command, true), bodyWritten));
      const onEnd = (): void =>
        finish(failure({ code: 'ECONNECTION', message: 'connection closed' }, bodyWritten ? 'body' : 'data', bodyWritten));
      slot.conn.on('error', onError);
      slot.conn.once('end', onEnd);

      // nodemailer pipes the body into its dot-stuffing stream; handing it a
      // pipe-able of our own (not a Readable, ~25 µs a message) tells us when
      // it took all of it: from then on a drop may mean the server owns the
      // message. Conservative by design — bytes still in a socket buffer
      // count as written, which can only flag a duplicate that was not, never
      // miss one. The socket is corked meanwhile, so the body and the final
      // "." leave in one write instead of two.
      const socket = slot.conn._socket;
      // nodemailer calls only .pipe() on a body without .on (smtp-connection send()).
      const body = {
        pipe: (dest: NodeJS.WritableStream): NodeJS.WritableStream => {
          socket.cork();
          dest.end(message.raw);
          bodyWritten = true;
          setImmediate(() => socket.uncork());
          return dest;
        },
      };
      slot.sent++;
      slot.conn.send({ from: message.from, to: [message.to] }, body as unknown as Readable, (err, info) => {
        if (err) return finish(failure(err, err.code === 'EMESSAGE' ? 'body' : stageOf(err.command, true), bodyWritten && err.code === 'EMESSAGE'));
        const accepted = info.accepted;
        if (accepted.length !== 1 || accepted[0] !== message.to) {
          // One RCPT went out; a 250 for anything else is a server we cannot trust.
          return finish({
            ok: false,
            stage: 'rcpt',
            code: undefined,
            reply: info.response,
            errorCode: 'EACCEPTED',
            bodyWritten: true,
            message: `server accepted ${JSON.stringify(accepted)} instead of the one recipient`,
          });
        }
        const code = Number(/^\d{3}/.exec(info.response)?.[0] ?? 250);
        finish({ ok: true, code, reply: info.response });
      });
    });
  }

  abortAll(): void {
    this.closed = true;
    // close() destroys the socket; the pending transaction sees 'end' and
    // reports whether its body had been written.
    for (const slot of this.busy) slot.conn.close();
  }

  close(): Promise<void> {
    this.closed = true;
    for (const slot of this.idle.splice(0)) {
      this.open--;
      slot.conn.removeAllListeners('end');
      slot.conn.quit();
    }
    return Promise.resolve();
  }
}
