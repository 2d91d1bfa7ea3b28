/**
 * Crash tests of the send engine (DESIGN.md §5, §10), real parts only: the built
 * CLI as a child process, a real SQLite file, and the loopback capture sink running
 * in this test process so that it outlives every CLI it serves. The sink's
 * `received` list is the server's transcript; after all processes have exited it is
 * reconciled with the database: nothing lost, duplicates only where flagged.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { query } from '../helpers/db.js';
import { startSink, type SinkHandle, type SinkRecord } from '../../src/transport/sink.js';
import { runCli, spawnCli, tempDir, templateDir } from '../helpers/cli.js';

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  isRunning(): boolean;
}

interface MessageDbRow {
  address: string;
  state: string;
  attempts: number;
  possible_duplicate: number;
  message_id: string | null;
  last_category: string | null;
}

interface StatusJson {
  campaign: string;
  total: number;
  queued: number;
  sending: number;
  deferred: number;
  sent: number;
  failed: number;
  suppressed: number;
  cancelled: number;
  possible_duplicates: number;
}

const HEADER = 'email,first_name,last_name,plan,city\n';
const sinks: SinkHandle[] = [];
const running: ChildProcess[] = [];

afterEach(async () => {
  // A failed assert must not leave a CLI sending or a port open for the next test.
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const sink of sinks.splice(0)) await sink.close();
});

async function sink(): Promise<SinkHandle> {
  const s = await startSink({ port: 0 });
  sinks.push(s);
  return s;
}

/** mulberry32: a tiny seeded PRNG, so that a failing kill schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function between(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Spawns the built CLI without blocking this process's event loop (the sink lives here). */
function start(args: readonly string[]): Proc {
  const child = spawnCli(args);
  running.push(child);
  let stdout = '';
  let stderr = '';
  let done = false;
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      done = true;
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, exited, isRunning: () => !done && child.exitCode === null && child.signalCode === null };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

function writeCsv(dir: string, emails: readonly string[]): string {
  const file = path.join(dir, 'recipients.csv');
  const lines = emails.map((e, i) => `${e},First${i},Last${i},${i % 2 === 0 ? 'pro' : 'free'},City${i % 7}`);
  fs.writeFileSync(file, `${HEADER}${lines.join('\n')}\n`);
  return file;
}

function importCampaign(db: string, dir: string, emails: readonly string[]): void {
  const r = runCli(['--db', db, 'import', writeCsv(dir, emails), '--campaign', 'c', '--template', templateDir('newsletter'), '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect((JSON.parse(r.stdout) as { imported: number }).imported).toBe(emails.length);
}

function readRows(db: string): MessageDbRow[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn
      .prepare('SELECT address, state, attempts, possible_duplicate, message_id, last_category FROM messages ORDER BY id')
      .all() as MessageDbRow[];
  } finally {
    conn.close();
  }
}

function status(db: string): StatusJson {
  const r = runCli(['--db', db, 'status', '--campaign', 'c', '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

/** Sink records per recipient address (lowercase); each record must carry exactly one RCPT. */
function transcript(records: readonly SinkRecord[]): Map<string, SinkRecord[]> {
  const by = new Map<string, SinkRecord[]>();
  for (const r of records) {
    expect(r.to).toHaveLength(1);
    const key = (r.to[0] ?? '').toLowerCase();
    by.set(key, [...(by.get(key) ?? []), r]);
  }
  return by;
}

function sendArgs(db: string, s: SinkHandle, extra: readonly string[] = []): string[] {
  return ['--db', db, 'send', '--campaign', 'c', '--transport', s.url, '--backoff', '100ms:500ms', '--yes', ...extra];
}

function resumeArgs(db: string): string[] {
  return ['--db', db, 'resume', '--campaign', 'c', '--yes'];
}

describe('mailq send: crash, resume and reconcile (built CLI, loopback sink, real SQLite)', () => {
  it('survives repeated SIGKILLs: nothing lost, every duplicate at the server is flagged', async () => {
    const SEED = 0x6d61696c; // "mail"
    const random = prng(SEED);
    const s = await sink();
    const dir = tempDir();
    const db = path.join(dir, 'm.db');

    const domains = ['alpha.test', 'beta.test', 'gamma.test', 'delta.test', 'epsilon.test', 'zeta.test'];
    const emails: string[] = [];
    for (let i = 0; i < 300; i++) {
      const domain = domains[i % domains.length] as string;
      // Faulty local parts at fixed positions, spread over the domains and the run.
      const tag =
        i % 50 === 7 ? 'drop1-' : i % 50 === 19 ? 'transient1-' : i % 60 === 31 ? 'bounce-' : i % 5 < 2 ? 'slow200-' : '';
      emails.push(`${tag}user${i}@${domain}`);
    }
    const bounces = emails.filter((e) => e.startsWith('bounce-'));
    const drops = emails.filter((e) => e.startsWith('drop1-'));
    expect(bounces).toHaveLength(5);
    expect(drops).toHaveLength(6);
    importCampaign(db, dir, emails);

    // Slow enough to be killable mid-run: 4 in flight, 40% of replies 200 ms late.
    const throttleFlags = ['--concurrency', '4'];
    const KILLS = 12;
    let kills = 0;
    let killedWithOpenTransactions = 0;
    const exits: Exit[] = [];
    for (let round = 0; kills < KILLS; round++) {
      expect(round).toBeLessThan(40); // every run finishing on its own would mean nothing was killed
      const p = start(round === 0 ? sendArgs(db, s, throttleFlags) : resumeArgs(db));
      const before = s.received.length;
      const spawnedAt = Date.now();
      // A quarter of the kills land at a pure random moment 50-400 ms after the start
      // (often before or during the first SMTP connections); the others once the sink
      // has stored a few new messages, plus a random 0-150 ms (mid-transaction, in a
      // slow reply, or between the 250 and the commit). The first `send` always gets
      // as far as sending: killed before it stored its settings, there would be no
      // transport for `resume` to continue with (exit 2, nothing sent).
      const mode = round > 0 && random() < 0.25 ? 'time' : 'progress';
      const wait = between(random, 50, 400);
      const fresh = between(random, 1, 6);
      const jitter = between(random, 0, 150);
      if (mode === 'time') {
        await waitFor('a random moment', () => !p.isRunning() || Date.now() - spawnedAt >= wait);
      } else {
        await waitFor('new messages at the sink', () => !p.isRunning() || s.received.length - before >= fresh);
        const at = Date.now() + jitter;
        await waitFor('the jitter', () => !p.isRunning() || Date.now() >= at);
      }
      if (p.isRunning()) {
        const open = [...s.openByDomain().values()].reduce((a, b) => a + b, 0);
        if (open > 0) killedWithOpenTransactions++;
        p.child.kill('SIGKILL');
        kills++;
      }
      const exit = await p.exited;
      exits.push(exit);
      if (exit.signal !== 'SIGKILL') {
        // A run that ended by itself before the kill: it must not have finished the
        // campaign yet, or the remaining kills would test nothing.
        expect(exit.code, exit.stderr).toBe(4);
      }
    }
    const sentBeforeFinal = status(db).sent;

    const final = start(resumeArgs(db));
    const last = await final.exited;
    expect(last.signal).toBeNull();
    // Bounces are permanent failures: documented exit 3 ("finished, some failed").
    expect(last.code, last.stderr).toBe(3);
    expect(last.stderr).toContain('finished:');

    // --- reconcile the server transcript with the database (all processes are gone) ---
    const rows = readRows(db);
    expect(rows).toHaveLength(300);
    const byRcpt = transcript(s.received);
    const flagged = rows.filter((r) => r.possible_duplicate === 1);
    const duplicated: string[] = [];
    for (const row of rows) {
      const key = row.address.toLowerCase();
      const got = byRcpt.get(key) ?? [];
      if (row.address.startsWith('bounce-')) {
        expect(got, row.address).toHaveLength(0);
        expect(row.state).toBe('failed');
        expect(row.last_category).toBe('bad-recipient');
        continue;
      }
      // Nothing lost: delivered at least once, and the row says sent.
      expect(got.length, row.address).toBeGreaterThanOrEqual(1);
      expect(row.state, row.address).toBe('sent');
      // A `sent` row was committed after a 250, which the sink only writes for a record it did not drop.
      expect(got.some((r) => !r.dropped), row.address).toBe(true);
      // One deterministic Message-ID per recipient, whichever run sent it.
      expect(new Set(got.map((r) => r.messageId)).size, row.address).toBe(1);
      expect(row.message_id === null ? undefined : `<${row.message_id.replace(/^<|>$/g, '')}>`).toBe(got[0]?.messageId);
      // Duplicates only where flagged.
      if (got.length > 1) {
        duplicated.push(row.address);
        expect(row.possible_duplicate, `${row.address} received ${got.length} times`).toBe(1);
      }
    }
    // Every record at the sink belongs to a recipient of the campaign.
    const known = new Set(rows.map((r) => r.address.toLowerCase()));
    for (const key of byRcpt.keys()) expect(known.has(key), key).toBe(true);
    // The drop faults alone guarantee six real duplicates.
    for (const d of drops) expect(duplicated).toContain(d);

    const states = new Set(rows.map((r) => r.state));
    expect(states.has('sending')).toBe(false);
    expect(states.has('queued')).toBe(false);
    expect(states.has('deferred')).toBe(false);

    const st = status(db);
    expect(st.total).toBe(300);
    expect(st.queued + st.sending + st.deferred + st.sent + st.failed + st.suppressed + st.cancelled).toBe(st.total);
    expect(st.sent).toBe(300 - bounces.length);
    expect(st.failed).toBe(bounces.length);
    expect(st.possible_duplicates).toBe(flagged.length);
    expect(st.possible_duplicates).toBeGreaterThanOrEqual(duplicated.length);

    // Every run was closed: the killed ones as 'lost' by the run that took over.
    const openRuns = query<{ n: number }>(db, 'SELECT count(*) AS n FROM runs WHERE finished_at IS NULL');
    expect(openRuns[0]?.n).toBe(0);

    const measured = {
      seed: SEED,
      rounds: exits.length,
      kills,
      killedWithOpenTransactions,
      sentBeforeFinalResume: sentBeforeFinal,
      sinkRecords: s.received.length,
      droppedAtSink: s.received.filter((r) => r.dropped).length,
      recipientsReceivedTwiceOrMore: duplicated.length,
      flaggedPossibleDuplicate: flagged.length,
    };
    console.log(`send-crash: ${JSON.stringify(measured)}`);
    expect(kills).toBeGreaterThanOrEqual(10);
    // Most kills must land while messages were on the wire, or the test proves little.
    expect(killedWithOpenTransactions).toBeGreaterThanOrEqual(3);
    // Kills landed mid-campaign: the final resume still had work to do.
    expect(sentBeforeFinal).toBeLessThan(300 - bounces.length);
  }, 90_000);

  it('a drop after "." is resent and flagged by default, or failed as unknown with --no-resend-ambiguous', async () => {
    const s = await sink();
    // Default policy (resend ambiguous), only the backoff shortened so the retry comes quickly.
    {
      const dir = tempDir();
      const db = path.join(dir, 'm.db');
      importCampaign(db, dir, ['drop1-x@alpha.test', 'plain@alpha.test']);
      const r = await start(sendArgs(db, s)).exited;
      expect(r.code, r.stderr).toBe(0);
      const got = s.received.filter((m) => m.to[0] === 'drop1-x@alpha.test');
      expect(got.map((m) => m.dropped)).toEqual([true, false]);
      expect(got[0]?.messageId).toBe(got[1]?.messageId);
      const rows = readRows(db);
      expect(rows.find((m) => m.address === 'drop1-x@alpha.test')).toMatchObject({ state: 'sent', possible_duplicate: 1, attempts: 2 });
      expect(rows.find((m) => m.address === 'plain@alpha.test')).toMatchObject({ state: 'sent', possible_duplicate: 0, attempts: 1 });
      const attempts = query<{ category: string; body_written: number; next_state: string }>(
        db,
        `SELECT a.category, a.body_written, a.next_state FROM attempts a JOIN messages m ON m.id = a.message_id
         WHERE m.address = 'drop1-x@alpha.test' ORDER BY a.id`,
      );
      expect(attempts).toEqual([
        { category: 'ambiguous', body_written: 1, next_state: 'deferred' },
        { category: 'sent', body_written: 1, next_state: 'sent' },
      ]);
      const st = status(db);
      expect(st).toMatchObject({ total: 2, sent: 2, failed: 0, possible_duplicates: 1 });
      expect(r.stderr).toContain('possible duplicates 1');
    }
    // --no-resend-ambiguous: the message is not sent again; it fails as unknown, reply kept.
    {
      const dir = tempDir();
      const db = path.join(dir, 'm.db');
      importCampaign(db, dir, ['drop1-y@beta.test', 'plain@beta.test']);
      const r = await start(sendArgs(db, s, ['--no-resend-ambiguous'])).exited;
      expect(r.code, r.stderr).toBe(3);
      const got = s.received.filter((m) => m.to[0] === 'drop1-y@beta.test');
      expect(got.map((m) => m.dropped)).toEqual([true]);
      const rows = readRows(db);
      expect(rows.find((m) => m.address === 'drop1-y@beta.test')).toMatchObject({ state: 'failed', possible_duplicate: 1, last_category: 'ambiguous' });
      const failures = query<{ category: string; reason: string; reply: string | null }>(db, 'SELECT category, reason, reply FROM failures');
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ category: 'ambiguous', reason: 'unknown' });
      const f = runCli(['--db', db, 'failures', '--campaign', 'c', '--format', 'json']);
      expect(f.code).toBe(0);
      const listed = JSON.parse(f.stdout) as { address: string; category: string; reply: string | null }[];
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ address: 'drop1-y@beta.test', category: 'ambiguous' });
      expect(listed[0]?.reply).toBe(failures[0]?.reply);
      // No SMTP reply came (the link was cut after "."): the reply names what happened instead.
      expect(listed[0]?.reply ?? '').toMatch(/connection|closed|ECONN/i);
      const st = status(db);
      expect(st).toMatchObject({ total: 2, sent: 1, failed: 1, possible_duplicates: 1 });
    }
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('a first %s finishes the messages in flight, exits 4, and resume completes without duplicates', async (signal) => {
    const s = await sink();
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const emails = Array.from({ length: 10 }, (_, i) => `slow1500-u${i}@${i % 2 === 0 ? 'alpha' : 'beta'}.test`);
    importCampaign(db, dir, emails);
    const p = start(sendArgs(db, s, ['--concurrency', '4']));
    const open = (): number => [...s.openByDomain().values()].reduce((a, b) => a + b, 0);
    await waitFor('4 transactions in flight', () => open() >= 4 || !p.isRunning());
    expect(p.isRunning()).toBe(true);
    const inFlightAtSignal = open();
    const signalledAt = Date.now();
    p.child.kill(signal);
    const r = await p.exited;
    const tookMs = Date.now() - signalledAt;
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/stopping \(signal\); finishing messages in flight/);
    expect(r.stderr).toContain('mailq resume');
    // The in-flight messages were finished (their 1.5 s replies awaited), not cut.
    expect(tookMs).toBeGreaterThanOrEqual(500);
    expect(s.received.length).toBeGreaterThanOrEqual(inFlightAtSignal);
    expect(s.received.every((m) => !m.dropped)).toBe(true);
    const afterStop = status(db);
    expect(afterStop.sent).toBe(s.received.length);
    expect(afterStop.sending).toBe(0);
    expect(afterStop.sent).toBeLessThan(10); // stopped early: no new leases after the signal
    expect(afterStop.possible_duplicates).toBe(0);

    const again = await start(resumeArgs(db)).exited;
    expect(again.code, again.stderr).toBe(0);
    const byRcpt = transcript(s.received);
    for (const e of emails) expect(byRcpt.get(e)?.length, e).toBe(1);
    expect(s.received).toHaveLength(10);
    expect(s.received.every((m) => !m.dropped)).toBe(true);
    expect(status(db)).toMatchObject({ total: 10, sent: 10, possible_duplicates: 0 });
    console.log(`send-crash ${signal}: ${inFlightAtSignal} in flight at the signal, exit after ${tookMs} ms with ${afterStop.sent} sent`);
  });

  it('a second SIGINT cuts the messages in flight: exit 4, rows back without using an attempt', async () => {
    const s = await sink();
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const emails = Array.from({ length: 6 }, (_, i) => `slow5000-u${i}@${i % 2 === 0 ? 'alpha' : 'beta'}.test`);
    importCampaign(db, dir, emails);
    const p = start(sendArgs(db, s, ['--concurrency', '4']));
    const open = (): number => [...s.openByDomain().values()].reduce((a, b) => a + b, 0);
    await waitFor('4 transactions in flight', () => open() >= 4 || !p.isRunning());
    expect(p.isRunning()).toBe(true);
    const signalledAt = Date.now();
    p.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('aborting messages in flight');
    // Cut, not awaited: the 5 s replies never came.
    expect(Date.now() - signalledAt).toBeLessThan(4000);
    const st = status(db);
    expect(st).toMatchObject({ sent: 0, sending: 0, failed: 0, queued: 6 });
    const conn = new Database(db, { readonly: true });
    const attempts = (conn.prepare('SELECT sum(attempts) AS n FROM messages').get() as { n: number }).n;
    conn.close();
    expect(attempts).toBe(0);
  });

  it('two send processes on one SQLite campaign at once never send a recipient twice', async () => {
    const s = await sink();
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const domains = ['alpha.test', 'beta.test', 'gamma.test', 'delta.test'];
    const emails = Array.from({ length: 120 }, (_, i) => `slow60-u${i}@${domains[i % domains.length] ?? 'alpha.test'}`);
    importCampaign(db, dir, emails);
    const a = start(sendArgs(db, s, ['--concurrency', '4']));
    const b = start(sendArgs(db, s, ['--concurrency', '4']));
    const [ra, rb] = await Promise.all([a.exited, b.exited]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const byRcpt = transcript(s.received);
    for (const e of emails) expect(byRcpt.get(e)?.length, e).toBe(1);
    expect(s.received).toHaveLength(120);
    expect(status(db)).toMatchObject({ total: 120, sent: 120, possible_duplicates: 0 });
    // Both processes really sent, at the same time (otherwise this proves nothing).
    const owners = query<{ run_owner: string; n: number; first: number; last: number }>(
      db,
      `SELECT run_owner, count(*) AS n, min(started_at) AS first, max(finished_at) AS last FROM attempts
       WHERE category = 'sent' GROUP BY run_owner`,
    );
    expect(owners).toHaveLength(2);
    const [o1, o2] = owners;
    expect(o1 !== undefined && o2 !== undefined && o1.first < o2.last && o2.first < o1.last).toBe(true);
    console.log(`send-crash concurrent: ${owners.map((o) => o.n).join(' + ')} messages`);
  });
});
