/**
 * Throttling and the send command's guard rails, observed from the server side
 * (DESIGN.md §7, §9): the built CLI sends to the loopback capture sink running in
 * this process, whose timestamped events give the achieved per-domain rate and
 * connection concurrency. Rates are measured over many messages with generous
 * bounds, so a loaded machine slows the run down but does not fail it.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { query } from '../helpers/db.js';
import { startSink, type SinkEvent, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, spawnCli, tempDir, templateDir } from '../helpers/cli.js';

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const HEADER = 'email,first_name,last_name,plan,city\n';
const closers: (() => Promise<void>)[] = [];
const running: ChildProcess[] = [];

afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const close of closers.splice(0)) await close();
});

async function sink(): Promise<SinkHandle> {
  const s = await startSink({ port: 0 });
  closers.push(() => s.close());
  return s;
}

/** Runs the built CLI without blocking this process's event loop (the SMTP server lives here). */
function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  const child = spawnCli(args, { env });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function importCampaign(dir: string, emails: readonly string[], campaign = 'c'): string {
  const db = path.join(dir, `${campaign}.db`);
  const csv = path.join(dir, `${campaign}.csv`);
  fs.writeFileSync(csv, `${HEADER}${emails.map((e, i) => `${e},First${i},Last${i},pro,City${i % 5}`).join('\n')}\n`);
  const r = runCli(['--db', db, 'import', csv, '--campaign', campaign, '--template', templateDir('newsletter'), '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect((JSON.parse(r.stdout) as { imported: number }).imported).toBe(emails.length);
  return db;
}

/** Every byte SQLite keeps for this database: the main file and, when present, its WAL. */
function dbBytes(db: string): Buffer {
  return Buffer.concat([db, `${db}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)));
}

function sendArgs(db: string, url: string, extra: readonly string[] = []): string[] {
  return ['--db', db, 'send', '--campaign', 'c', '--transport', url, '--backoff', '100ms:500ms', '--yes', ...extra];
}

const accepted = (e: SinkEvent): boolean => e.reply?.startsWith('250') === true;

/** Time of the last accepted message (250 after ".") for these domains, ms after `from`. */
function lastDelivery(events: readonly SinkEvent[], domains: ReadonlySet<string>, from: number): number {
  let last = -Infinity;
  for (const e of events) if (e.type === 'data-end' && accepted(e) && domains.has(e.domain ?? '')) last = Math.max(last, e.at);
  return last - from;
}

function firstConnect(events: readonly SinkEvent[]): number {
  const first = events.find((e) => e.type === 'connect');
  if (first === undefined) throw new Error('no connection reached the sink');
  return first.at;
}

describe('mailq send: throttling seen from the server (built CLI, loopback sink)', () => {
  it('holds a per-domain rate and connection cap (--domain-rate slow.test=10/s:2)', async () => {
    const s = await sink();
    const dir = tempDir();
    // 150 ms per transaction: 2 connections could carry ~13/s, so the rate is what binds,
    // and the default concurrency (10) would open far more than 2 at the first burst.
    const db = importCampaign(dir, Array.from({ length: 60 }, (_, i) => `slow150-u${i}@slow.test`));
    const r = await run(sendArgs(db, s.url, ['--domain-rate', 'slow.test=10/s:2']));
    expect(r.code, r.stderr).toBe(0);

    const rcpts = s.events.filter((e) => e.type === 'rcpt' && e.domain === 'slow.test' && accepted(e)).map((e) => e.at);
    expect(rcpts).toHaveLength(60);
    // The span starts at the first connection, not the first RCPT: a new connection's
    // EHLO round trips delay the first RCPT more than later ones on warm connections,
    // which would shorten the span and overstate the rate on a loaded machine.
    const spanS = ((rcpts[rcpts.length - 1] ?? 0) - firstConnect(s.events)) / 1000;
    const burst = 10; // the bucket starts full: one second's worth of tokens
    const rate = (rcpts.length - burst) / spanS;
    const maxConcurrent = s.maxConcurrentByDomain().get('slow.test') ?? 0;
    console.log(`send-throttle rate: ${rcpts.length} messages over ${spanS.toFixed(2)} s, ${rate.toFixed(2)}/s after the burst, max ${maxConcurrent} concurrent`);
    expect(rate).toBeLessThanOrEqual(10.5);
    // Sanity: the limiter is what we measured, not an idle engine (60 messages take ~5 s at 10/s).
    expect(rate).toBeGreaterThan(3);
    expect(maxConcurrent).toBeLessThanOrEqual(2);
    expect(maxConcurrent).toBeGreaterThanOrEqual(1);
    // No message was held back for anything but the limit: all delivered, once.
    expect(s.received).toHaveLength(60);
  });

  it('a hard-throttled big domain does not slow the other domains down', async () => {
    const others = ['o1.test', 'o2.test', 'o3.test', 'o4.test'];
    const otherSet = new Set(others);
    // 40% of the list: 6 recipients on each of 4 domains, 100 ms per transaction on one
    // connection per domain: ~0.7 s alone, bound by the transactions themselves. Any
    // wait for big.test's bucket (a token every 500 ms once its 2-token burst is spent)
    // in the path of the others' leases would slow them to big.test's pace (~2 s).
    const otherEmails = Array.from({ length: 24 }, (_, i) => `slow100-u${i}@${others[i % others.length] ?? 'o1.test'}`);
    const otherFlags = others.flatMap((d) => ['--domain-rate', `${d}=100/s:1`]);

    // The other domains alone.
    const alone = await sink();
    const aloneDb = importCampaign(tempDir(), otherEmails);
    const r1 = await run(sendArgs(aloneDb, alone.url, otherFlags));
    expect(r1.code, r1.stderr).toBe(0);
    const aloneMs = lastDelivery(alone.events, otherSet, firstConnect(alone.events));

    // The same 40%, plus 60% at big.test limited to 2/s on one connection (~17 s).
    // With the default concurrency (10) there are slots for all: 4 x 1 + 1.
    const mixed = await sink();
    const bigEmails = Array.from({ length: 36 }, (_, i) => `b${i}@big.test`);
    const mixedEmails = [...bigEmails, ...otherEmails].sort((a, b) => a.localeCompare(b)); // interleaved in the CSV
    const mixedDb = importCampaign(tempDir(), mixedEmails);
    const r2 = await run(sendArgs(mixedDb, mixed.url, [...otherFlags, '--domain-rate', 'big.test=2/s:1']));
    expect(r2.code, r2.stderr).toBe(0);
    const start = firstConnect(mixed.events);
    const othersMs = lastDelivery(mixed.events, otherSet, start);
    const bigMs = lastDelivery(mixed.events, new Set(['big.test']), start);
    console.log(`send-throttle isolation: others alone ${aloneMs} ms, others next to big.test ${othersMs} ms, big.test ${bigMs} ms`);

    expect(mixed.received).toHaveLength(60);
    expect(mixed.maxConcurrentByDomain().get('big.test')).toBe(1);
    // big.test is really the slow one: ~(36 - 2) / 2 s.
    expect(bigMs).toBeGreaterThan(12_000);
    // The others finish long before it, and within ~50% of their time alone
    // plus 500 ms: the suite runs two test files at once on 2 cores, and a
    // send with its compose threads saw 1.4 s against 0.7 s alone there
    // (1.0 s when run by itself). Waiting behind big.test would take > 12 s.
    expect(othersMs).toBeLessThan(bigMs / 4);
    expect(othersMs).toBeLessThanOrEqual(aloneMs * 1.5 + 500);
  }, 45_000);

  it('a 421 throttle reply slows the domain without consuming the message attempt', async () => {
    const s = await sink();
    const dir = tempDir();
    const emails = ['throttle1-x@thr.test', 'a@thr.test', 'b@thr.test', 'c@other.test'];
    const db = importCampaign(dir, emails);
    const r = await run(sendArgs(db, s.url, ['--concurrency', '1']));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/(slowed|paused) thr\.test until .*4\.7\.28/);

    const rcpt = s.events.filter((e) => e.type === 'rcpt' && e.domain === 'thr.test').map((e) => e.reply?.slice(0, 3));
    expect(rcpt.filter((c) => c === '421')).toHaveLength(1);

    const row = query<{ state: string; attempts: number; possible_duplicate: number }>(
      db,
      `SELECT state, attempts, possible_duplicate FROM messages WHERE address = 'throttle1-x@thr.test'`,
    );
    // Two tries at the server, one counted attempt: the throttle was the domain's fault.
    expect(row).toEqual([{ state: 'sent', attempts: 1, possible_duplicate: 0 }]);
    const attempts = query<{ category: string; code: number | null; enhanced: string | null; next_state: string }>(
      db,
      `SELECT a.category, a.code, a.enhanced, a.next_state FROM attempts a JOIN messages m ON m.id = a.message_id
       WHERE m.address = 'throttle1-x@thr.test' ORDER BY a.id`,
    );
    expect(attempts).toEqual([
      { category: 'throttle', code: 421, enhanced: '4.7.28', next_state: 'deferred' },
      { category: 'sent', code: 250, enhanced: '2.0.0', next_state: 'sent' },
    ]);
    expect(query(db, 'SELECT * FROM failures')).toEqual([]);

    // The slow-down is persisted for a resume: thr.test at half rate, other.test untouched.
    const state = query<{ key: string; status_json: string; rate_factor: number }>(db, 'SELECT key, status_json, rate_factor FROM domain_state ORDER BY key');
    const thr = state.find((d) => d.key === 'thr.test');
    expect(thr).toBeDefined();
    expect(thr?.rate_factor).toBeLessThan(1);
    expect((JSON.parse(thr?.status_json ?? '{}') as { kind?: string }).kind).toMatch(/^(slowed|paused)$/);
    expect(state.find((d) => d.key === 'other.test')?.rate_factor ?? 1).toBe(1);
    expect(s.received.map((m) => m.to[0]).sort()).toEqual([...emails].sort());
  });

  it('exits 5 on a fatal transport error (AUTH 535): rows back in queued, no failures, no password anywhere', async () => {
    const PASSWORD = 'x-Sup3r-s3cret-pa55-9f41';
    let logins = 0;
    let passwordSeen = false;
    const server = new SMTPServer({
      logger: false,
      authOptional: false,
      allowInsecureAuth: true,
      hideSTARTTLS: true,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _session, callback) {
        logins++;
        if (auth.password === PASSWORD) passwordSeen = true;
        callback(Object.assign(new Error('5.7.8 Username and Password not accepted'), { responseCode: 535 }));
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = server.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;

    const dir = tempDir();
    const db = importCampaign(dir, Array.from({ length: 20 }, (_, i) => `u${i}@auth.test`));
    const r = await run(sendArgs(db, `smtp://user@127.0.0.1:${port}`, ['--concurrency', '2']), { MAILQ_SMTP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(5);
    console.log(`send-throttle auth: ${logins} login(s); stderr: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    // The run stopped at the first 535: no more logins than transactions in flight.
    expect(logins).toBeGreaterThanOrEqual(1);
    expect(logins).toBeLessThanOrEqual(2);
    expect(passwordSeen).toBe(true);
    expect(r.stderr).toMatch(/535/);
    expect(r.stderr).toMatch(/auth|credentials|password not accepted/i);

    const states = query<{ state: string; attempts: number; n: number }>(db, 'SELECT state, attempts, count(*) AS n FROM messages GROUP BY state, attempts');
    expect(states).toEqual([{ state: 'queued', attempts: 0, n: 20 }]);
    expect(query(db, 'SELECT * FROM failures')).toEqual([]);
    expect(query<{ outcome: string }>(db, 'SELECT outcome FROM runs')).toEqual([{ outcome: 'fatal' }]);

    // The secret is in no output and in no byte of the database (main file and WAL)...
    expect(r.stdout).not.toContain(PASSWORD);
    expect(r.stderr).not.toContain(PASSWORD);
    const bytes = dbBytes(db);
    expect(bytes.includes(Buffer.from(PASSWORD))).toBe(false);
    // ...which does hold this run's settings, user included (the grep saw real content).
    expect(bytes.includes(Buffer.from(`smtp://user@127.0.0.1:${port}`))).toBe(true);
  });

  it('without a TTY, refuses more than 1,000 recipients without --yes (exit 2, before any SMTP)', async () => {
    const s = await sink();
    const dir = tempDir();
    const db = importCampaign(dir, Array.from({ length: 1001 }, (_, i) => `u${i}@many.test`));
    const r = await run(['--db', db, 'send', '--campaign', 'c', '--transport', s.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('1001');
    expect(r.stderr).toMatch(/hint:.*--yes/);
    expect(s.events).toHaveLength(0);
    expect(query<{ n: number }>(db, `SELECT count(*) AS n FROM messages WHERE state = 'queued'`)).toEqual([{ n: 1001 }]);
    expect(query(db, 'SELECT * FROM runs')).toEqual([]);

    // The limit is exactly 1,000: one recipient less and the same command starts sending
    // (stopped once the sink has a message: the point is that it got past the check).
    const small = importCampaign(tempDir(), Array.from({ length: 1000 }, (_, i) => `u${i}@many.test`));
    const child = spawnCli(['--db', small, 'send', '--campaign', 'c', '--transport', s.url]);
    running.push(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const until = Date.now() + 15_000;
    while (s.received.length === 0 && child.exitCode === null && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(child.exitCode, stderr).toBeNull();
    expect(s.received.length).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await closed;
  });

  it('refuses a password in the transport URL (exit 2) without echoing it', async () => {
    const dir = tempDir();
    const db = importCampaign(dir, ['a@pw.test']);
    const SECRET = 'hunter2-Zq9xW';
    const r = await run(['--db', db, 'send', '--campaign', 'c', '--transport', `smtp://u:${SECRET}@127.0.0.1:1`, '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/must not contain a password/);
    expect(r.stderr).toMatch(/hint:.*MAILQ_SMTP_PASSWORD/);
    expect(r.stderr).not.toContain(SECRET);
    expect(r.stdout).not.toContain(SECRET);
    expect(dbBytes(db).includes(Buffer.from(SECRET))).toBe(false);
    expect(query(db, 'SELECT * FROM runs')).toEqual([]);
  });
});
