import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isLoopbackHost, parseSinkPort, registerSink, runSink } from '../../src/cli/sink.js';
import { InputError } from '../../src/errors.js';
import { FAULTS_HELP, messageIdOf, parseFault, startSink, type SinkHandle } from '../../src/transport/sink.js';

const sinks: SinkHandle[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function sink(options: Parameters<typeof startSink>[0] = {}): Promise<SinkHandle> {
  const handle = await startSink({ port: 0, ...options });
  sinks.push(handle);
  return handle;
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-sink-'));
  dirs.push(dir);
  return dir;
}

/** Not pooled: every sendMail is its own connection, like separate attempts of a sender. */
function client(handle: SinkHandle) {
  return nodemailer.createTransport({ host: '127.0.0.1', port: handle.port, secure: false, ignoreTLS: true });
}

let counter = 0;
async function send(handle: SinkHandle, to: string, messageId = `<t${++counter}@acme.test>`) {
  return client(handle).sendMail({ from: 'news@acme.test', to, subject: 'Hello', text: 'Hello from the sink test', messageId });
}

interface SmtpFailure {
  readonly code?: string;
  readonly command?: string;
  readonly responseCode?: number;
  readonly response?: string;
}

async function failure(promise: Promise<unknown>): Promise<SmtpFailure> {
  try {
    await promise;
  } catch (err) {
    return err as SmtpFailure;
  }
  throw new Error('expected the send to fail');
}

describe('startSink: normal delivery', () => {
  it('records the message with its Message-ID and writes a 0600 .eml file', async () => {
    const out = tempDir();
    const s = await sink({ outDir: out });
    const info = await send(s, 'ada@example.com', '<hello-1@acme.test>');
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-F]{12}$/);
    const queueId = info.response.split(' ').at(-1);
    expect(s.received).toHaveLength(1);
    const record = s.received[0];
    expect(record).toMatchObject({ seq: 1, from: 'news@acme.test', to: ['ada@example.com'], messageId: '<hello-1@acme.test>', dropped: false });
    expect(record?.messageId).toBe(info.messageId);
    expect(record?.file).toBe(path.join(out, `1-${queueId}.eml`));
    const file = record?.file ?? '';
    const raw = fs.readFileSync(file, 'utf8');
    expect(raw).toContain('Message-ID: <hello-1@acme.test>');
    expect(raw).toContain('Subject: Hello');
    expect(raw).toContain('Hello from the sink test');
    expect(record?.size).toBe(fs.statSync(file).size);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('numbers messages in order and writes no file without outDir', async () => {
    const s = await sink();
    await send(s, 'a@example.com');
    await send(s, 'b@example.com');
    expect(s.received.map((r) => [r.seq, r.to[0], r.file])).toEqual([
      [1, 'a@example.com', undefined],
      [2, 'b@example.com', undefined],
    ]);
    expect(s.url).toBe(`smtp://127.0.0.1:${s.port}`);
  });

  it('takes mail from a client configured with credentials and default TLS settings', async () => {
    const s = await sink();
    // No ignoreTLS: STARTTLS must not be offered (nodemailer would try it), and AUTH over
    // plain loopback must work for a sender that always logs in.
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.port, secure: false, auth: { user: 'u', pass: 'p' } });
    const info = await transport.sendMail({ from: 'news@acme.test', to: 'a@example.com', text: 'x' });
    expect(info.response).toMatch(/^250 /);
    expect(s.received).toHaveLength(1);
  });
});

describe('startSink: faults', () => {
  it.each([
    ['bounce-ada@example.com', 550, 'RCPT TO', /^550 5\.1\.1 The email account that you tried to reach does not exist$/],
    ['unknown.x@example.com', 550, 'RCPT TO', /^550 5\.1\.1 /],
    ['transient-x@example.com', 451, 'RCPT TO', /^451 4\.3\.0 Temporary local problem, try again$/],
    ['greylist+x@example.com', 451, 'RCPT TO', /^451 4\.7\.1 Greylisted, please try again in 1 seconds$/],
    ['throttle-x@example.com', 421, 'RCPT TO', /^421 4\.7\.28 Our system has detected an unusual rate of unsolicited mail/],
    ['blocked-x@example.com', 550, 'RCPT TO', /^550 5\.7\.26 Unauthenticated email from acme\.test is not accepted due to domain's DMARC policy$/],
    ['quota-x@example.com', 550, 'RCPT TO', /^550 5\.4\.5 Daily user sending quota exceeded$/],
    ['reject-x@example.com', 554, 'DATA', /^554 5\.7\.1 Message rejected due to content policy$/],
    ['tempfail-data-x@example.com', 451, 'DATA', /^451 4\.3\.0 Temporary local problem, try again$/],
  ])('%s: %i at %s, nothing stored', async (to, code, command, response) => {
    const s = await sink();
    const err = await failure(send(s, to));
    expect(err.responseCode).toBe(code);
    expect(err.command).toBe(command);
    expect(err.code).toBe(command === 'DATA' ? 'EMESSAGE' : 'EENVELOPE');
    expect(err.response).toMatch(response);
    expect(s.received).toHaveLength(0);
  });

  it('transientN refuses N attempts across connections, then accepts attempt N+1', async () => {
    const s = await sink();
    for (let i = 0; i < 2; i++) expect((await failure(send(s, 'transient2-x@example.com'))).responseCode).toBe(451);
    await expect(send(s, 'transient2-x@example.com')).resolves.toMatchObject({ response: expect.stringMatching(/^250 /) as unknown });
    // Counts are per address: another transient address starts from zero.
    expect((await failure(send(s, 'transient2-y@example.com'))).responseCode).toBe(451);
    expect(s.received.map((r) => r.to[0])).toEqual(['transient2-x@example.com']);
  });

  it('greylist accepts the second attempt; counts ignore address case', async () => {
    const s = await sink();
    expect((await failure(send(s, 'greylist-x@example.com'))).responseCode).toBe(451);
    await expect(send(s, 'Greylist-X@example.com')).resolves.toBeDefined();
  });

  it('throttle closes the connection after its 421, and accepts once N attempts are used', async () => {
    const s = await sink();
    expect((await failure(send(s, 'throttle2-x@example.com'))).responseCode).toBe(421);
    const session = s.events.find((e) => e.type === 'rcpt' && e.reply?.startsWith('421'))?.sessionId;
    // The server, not the client, ends the session: its close follows the 421 directly.
    await vi.waitFor(() => expect(s.events.filter((e) => e.sessionId === session).map((e) => e.type)).toEqual(['connect', 'mail', 'rcpt', 'close']));
    expect((await failure(send(s, 'throttle2-x@example.com'))).responseCode).toBe(421);
    await expect(send(s, 'throttle2-x@example.com')).resolves.toBeDefined();
  });

  it('drop stores the message, cuts the link before the 250, and accepts the retry', async () => {
    const s = await sink();
    const err = await failure(send(s, 'drop-x@example.com', '<dup@acme.test>'));
    // nodemailer reports this exactly like a connection lost before MAIL FROM.
    expect(err.code).toBe('ECONNECTION');
    expect(err.command).toBe('CONN');
    expect(err.responseCode).toBeUndefined();
    expect(s.received).toHaveLength(1);
    expect(s.received[0]).toMatchObject({ messageId: '<dup@acme.test>', dropped: true });
    const info = await send(s, 'drop-x@example.com', '<dup@acme.test>');
    expect(info.response).toMatch(/^250 /);
    expect(s.received.map((r) => [r.messageId, r.dropped])).toEqual([
      ['<dup@acme.test>', true],
      ['<dup@acme.test>', false],
    ]);
  });

  it('dropN drops N attempts', async () => {
    const s = await sink();
    for (let i = 0; i < 2; i++) expect((await failure(send(s, 'drop2-x@example.com'))).code).toBe('ECONNECTION');
    await expect(send(s, 'drop2-x@example.com')).resolves.toBeDefined();
    expect(s.received.map((r) => r.dropped)).toEqual([true, true, false]);
  });

  it('slowMS delays the final reply', async () => {
    const s = await sink();
    const started = Date.now();
    await send(s, 'slow700-x@example.com');
    expect(Date.now() - started).toBeGreaterThanOrEqual(690);
    const start = s.events.find((e) => e.type === 'data-start')?.at ?? 0;
    const end = s.events.find((e) => e.type === 'data-end')?.at ?? 0;
    expect(end - start).toBeGreaterThanOrEqual(690);
    // The control: without the fault the same send is well under the delay.
    const quick = Date.now();
    await send(s, 'plain@example.com');
    expect(Date.now() - quick).toBeLessThan(650);
  });

  it('a close() during a slow reply marks the stored message dropped', async () => {
    const s = await sink();
    const pending = failure(send(s, 'slow5000-x@example.com'));
    await vi.waitFor(() => expect(s.received).toHaveLength(1));
    await s.close();
    expect((await pending).code).toBe('ECONNECTION');
    expect(s.received[0]?.dropped).toBe(true);
  });
});

describe('startSink: events and concurrency', () => {
  it('timestamps events with the injected clock, with domains and replies', async () => {
    let tick = 1000;
    const s = await sink({ now: () => tick++ });
    const info = await send(s, 'ada@Example.COM');
    await vi.waitFor(() => expect(s.events.at(-1)?.type).toBe('close'));
    expect(s.events.map((e) => e.type)).toEqual(['connect', 'mail', 'rcpt', 'data-start', 'data-end', 'close']);
    expect(s.events.map((e) => e.at)).toEqual([1000, 1001, 1002, 1003, 1005, 1006]); // 1004: the record
    expect(s.received[0]?.at).toBe(1004);
    expect(s.events[2]).toMatchObject({ domain: 'example.com', reply: '250 Accepted' });
    expect(s.events[4]).toMatchObject({ domain: 'example.com', reply: info.response });
    expect(new Set(s.events.map((e) => e.sessionId)).size).toBe(1);
  });

  it('a refused RCPT is an event with its reply but opens no transaction', async () => {
    const s = await sink();
    await failure(send(s, 'bounce-x@example.com'));
    expect(s.events.find((e) => e.type === 'rcpt')?.reply).toMatch(/^550 5\.1\.1 /);
    expect(s.maxConcurrentByDomain().get('example.com')).toBeUndefined();
  });

  it('counts concurrently open transactions per recipient domain', async () => {
    const s = await sink();
    // Two connections at once to x.test, each held open by a slow reply.
    await Promise.all([send(s, 'slow300-a@x.test'), send(s, 'slow300-b@x.test')]);
    // One after the other to y.test: never more than one open.
    await send(s, 'a@y.test');
    await send(s, 'b@y.test');
    expect(Object.fromEntries(s.maxConcurrentByDomain())).toEqual({ 'x.test': 2, 'y.test': 1 });
    expect(s.openByDomain().size).toBe(0);
  });

  it('a dropped transaction is no longer open', async () => {
    const s = await sink();
    await failure(send(s, 'drop-x@x.test'));
    await send(s, 'ok@x.test');
    expect(s.maxConcurrentByDomain().get('x.test')).toBe(1);
    expect(s.openByDomain().size).toBe(0);
  });
});

describe('startSink: close', () => {
  it('frees the port, even with an idle client connection still open', async () => {
    const s = await startSink({ port: 0 });
    const pooled = nodemailer.createTransport({ host: '127.0.0.1', port: s.port, secure: false, ignoreTLS: true, pool: true });
    await pooled.sendMail({ from: 'news@acme.test', to: 'a@example.com', text: 'x' });
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThan(900);
    await s.close(); // idempotent
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(s.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    pooled.close();
  });
});

describe('fault parsing and Message-ID', () => {
  it.each([
    ['bounce-ada@example.com', { tag: 'bounce', n: 1 }],
    ['bounce@example.com', { tag: 'bounce', n: 1 }],
    ['Bounce+x@example.com', { tag: 'bounce', n: 1 }],
    ['transient3.x@example.com', { tag: 'transient', n: 3 }],
    ['throttle-x@example.com', { tag: 'throttle', n: 1 }],
    ['slow250-x@example.com', { tag: 'slow', n: 250 }],
    ['slow-x@example.com', { tag: 'slow', n: 1000 }],
    ['tempfail-data-x@example.com', { tag: 'tempfail-data', n: 1 }],
    ['bouncer@example.com', undefined],
    ['bounce2-x@example.com', undefined],
    ['tempfail-x@example.com', undefined],
    ['ada.bounce@example.com', undefined],
  ])('%s', (address, expected) => {
    expect(parseFault(address)).toEqual(expected);
  });

  it('FAULTS_HELP documents every tag', () => {
    for (const tag of ['bounce', 'unknown', 'transientN', 'greylist', 'throttleN', 'dropN', 'slowMS', 'reject', 'blocked', 'quota', 'tempfail-data']) {
      expect(FAULTS_HELP).toContain(`${tag}-x`);
    }
  });

  it('reads the Message-ID from the header section only, unfolded', () => {
    expect(messageIdOf(Buffer.from('Subject: a\r\nMessage-ID:\r\n <x@y>\r\n\r\nbody'))).toBe('<x@y>');
    expect(messageIdOf(Buffer.from('message-id: <lf@y>\n\nbody'))).toBe('<lf@y>');
    expect(messageIdOf(Buffer.from('Subject: a\r\n\r\nMessage-ID: <in-body@y>\r\n'))).toBeUndefined();
  });
});

describe('mailq sink command', () => {
  it('runSink listens, logs each message without its recipient, and stops on abort', async () => {
    const out = tempDir();
    const lines: string[] = [];
    const controller = new AbortController();
    let port = 0;
    const running = runSink({ host: '127.0.0.1', port: 0, outDir: out, signal: controller.signal, log: (l) => lines.push(l) }, (handle) => {
      port = handle.port;
    });
    await vi.waitFor(() => expect(port).toBeGreaterThan(0));
    expect(lines[0]).toBe(`mailq sink listening on smtp://127.0.0.1:${port}, writing to ${out}`);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    await transport.sendMail({ from: 'news@acme.test', to: 'secret-person@example.com', text: 'x', messageId: '<cli@acme.test>' });
    await failure(transport.sendMail({ from: 'news@acme.test', to: 'drop-hidden@example.com', text: 'x', messageId: '<cli2@acme.test>' }));
    expect(lines[1]).toMatch(/^received #1 <cli@acme\.test> \d+ bytes$/);
    expect(lines[2]).toMatch(/^received #2 <cli2@acme\.test> \d+ bytes, connection cut before the reply/);
    expect(lines.join('\n')).not.toMatch(/secret-person|drop-hidden|example\.com/);
    controller.abort();
    await running;
    expect(lines.at(-1)).toBe('mailq sink stopped: 2 message(s) received, 1 dropped before the reply');
    expect(fs.readdirSync(out)).toHaveLength(2);
    await expect(transport.sendMail({ from: 'news@acme.test', to: 'a@example.com', text: 'x' })).rejects.toMatchObject({ code: 'ESOCKET' });
  });

  it('refuses a non-loopback host unless --allow-remote', async () => {
    const signal = AbortSignal.abort();
    await expect(runSink({ host: '0.0.0.0', port: 0, signal })).rejects.toBeInstanceOf(InputError);
    await expect(runSink({ host: '192.0.2.1', port: 0, signal })).rejects.toThrow(/not a loopback address/);
    await expect(runSink({ host: '0.0.0.0', port: 0, signal, allowRemote: true, log: () => undefined })).resolves.toBeUndefined();
    expect(['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1'].some(isLoopbackHost)).toBe(false);
  });

  it('reports a port in use as an InputError', async () => {
    const s = await sink();
    const signal = new AbortController().signal;
    await expect(runSink({ host: '127.0.0.1', port: s.port, signal, log: () => undefined })).rejects.toThrow(/already in use/);
  });

  it('registers `sink` with its flags and validates them through commander', async () => {
    const program = new Command().exitOverride();
    registerSink(program);
    const cmd = program.commands.find((c) => c.name() === 'sink');
    expect(cmd?.options.map((o) => o.long)).toEqual(['--host', '--port', '--out', '--allow-remote']);
    let help = '';
    cmd?.configureOutput({ writeOut: (s) => (help += s) });
    cmd?.outputHelp();
    expect(help).toContain('tempfail-data-x');
    await expect(program.parseAsync(['node', 'mailq', 'sink', '--host', '0.0.0.0', '--port', '0'])).rejects.toBeInstanceOf(InputError);
    await expect(program.parseAsync(['node', 'mailq', 'sink', '--port', '70000'])).rejects.toThrow(/--port must be/);
    expect(parseSinkPort('0')).toBe(0);
    expect(() => parseSinkPort('25x')).toThrow(InputError);
  });
});
