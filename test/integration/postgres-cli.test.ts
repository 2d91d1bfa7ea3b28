/**
 * The built CLI end to end on PostgreSQL: every command with
 * `--db postgres://postgres@127.0.0.1:5432/test?schema=<unique>`, the capture
 * sink in this process (its fault local parts script the replies: bounce =
 * 550 5.1.1, transient1 = one 451 then 250), and the database read back with
 * a plain pg client. CI starts PostgreSQL 15 on 127.0.0.1:5432 (trust auth).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, runCliAsync, spawnCli, tempDir, templateDir } from '../helpers/cli.js';

const BASE = process.env['MAILQ_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const HEADER = 'email,first_name,last_name,plan,city\n';
const schemas: string[] = [];

function freshDb(): { url: string; schema: string } {
  const schema = `mailq_cli_${randomBytes(6).toString('hex')}`;
  schemas.push(schema);
  return { url: `${BASE}?schema=${schema}`, schema };
}

async function sql<T extends pg.QueryResultRow>(schema: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: BASE });
  await c.connect();
  try {
    await c.query(`SET search_path = ${schema}`);
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

let sink: SinkHandle;
beforeAll(async () => {
  sink = await startSink({ port: 0 });
});
afterAll(async () => {
  await sink.close();
  const c = new pg.Client({ connectionString: BASE });
  await c.connect();
  for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await c.end();
});

function json<T>(args: readonly string[]): T {
  const r = runCli(args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe('mailq on PostgreSQL (built CLI, --db postgres://…?schema=…)', () => {
  it('imports, checks, previews, sends, and every reporting command reads the same campaign back', async () => {
    const { url, schema } = freshDb();
    const dir = tempDir();
    const csv = path.join(dir, 'r.csv');
    fs.writeFileSync(
      csv,
      `${HEADER}ok1@a.test,Ann,B,pro,X\nOK2@A.test,Bob,B,free,Y\ntransient1-t@b.test,Tim,B,team,Z\nbounce-x@c.test,Xi,B,pro,X\n` +
        `ragged@c.test,R,B,pro,X,extra\nok1@a.test,Dup,B,pro,X\n`,
    );
    const imported = json<Record<string, unknown>>(['--db', url, 'import', csv, '-c', 'pgc', '-t', templateDir('newsletter'), '--json']);
    expect(imported).toEqual({ campaign: 'pgc', imported: 4, duplicates: 1, rejected: 1, total: 6 });
    // Re-importing the same file adds nothing.
    expect(json(['--db', url, 'import', csv, '-c', 'pgc', '--json'])).toEqual({ campaign: 'pgc', imported: 0, duplicates: 5, rejected: 1, total: 6 });
    const rejects = json<{ line: number; reason: string }[]>(['--db', url, 'rejects', '-c', 'pgc', '--format', 'json']);
    expect(rejects.map((r) => [r.line, r.reason])).toEqual([[6, 'ragged-row']]);

    const check = runCli(['--db', url, 'check', '-c', 'pgc']);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('rendered        4 recipients: 4 ok, 0 failed');
    const preview = runCli(['--db', url, 'preview', '-c', 'pgc', '--to', 'ok2@a.test']);
    expect(preview.code).toBe(0);
    expect(preview.stdout).toMatch(/^To: OK2@a\.test$/m);
    const previewId = /^Message-ID: (.+)$/m.exec(preview.stdout)?.[1]?.trim();

    const before = sink.received.length;
    const send = await runCliAsync(['--db', url, 'send', '-c', 'pgc', '--transport', sink.url, '--backoff', '100ms:200ms']);
    expect(send.code).toBe(3); // one recipient failed
    expect(send.stderr).toContain('finished: sent 3, failed 1');
    const got = sink.received.slice(before);
    expect(got.map((m) => m.to[0]).sort()).toEqual(['OK2@a.test', 'ok1@a.test', 'transient1-t@b.test']);
    expect(got.find((m) => m.to[0] === 'OK2@a.test')?.messageId).toBe(previewId);

    expect(json(['--db', url, 'status', '-c', 'pgc', '--json'])).toMatchObject({
      campaign: 'pgc', total: 4, queued: 0, sending: 0, deferred: 0, sent: 3, failed: 1, suppressed: 0, cancelled: 0, possible_duplicates: 0,
    });
    const failures = json<Record<string, unknown>[]>(['--db', url, 'failures', '-c', 'pgc', '--format', 'json']);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ address: 'bounce-x@c.test', category: 'bad-recipient', code: 550, enhanced: '5.1.1' });

    const report = json<{ address: string; state: string; attempts: number; code: number | null; message_id: string | null }[]>([
      '--db', url, 'report', '-c', 'pgc', '--format', 'json',
    ]);
    expect(report.map((r) => [r.address, r.state, r.attempts, r.code])).toEqual([
      ['ok1@a.test', 'sent', 1, 250],
      ['OK2@a.test', 'sent', 1, 250],
      ['transient1-t@b.test', 'sent', 2, 250],
      ['bounce-x@c.test', 'failed', 1, 550],
    ]);
    expect(report[1]?.message_id).toBe(previewId);

    const trace = json<{ suppression: unknown; campaigns: { attempts: { code: number; next_state: string }[]; final: { state: string } }[] }>([
      '--db', url, 'trace', 'transient1-t@b.test', '--json',
    ]);
    expect(trace.campaigns[0]?.attempts.map((a) => [a.code, a.next_state])).toEqual([[451, 'deferred'], [250, 'sent']]);
    expect(trace.campaigns[0]?.final.state).toBe('sent');
    const bounced = json<{ suppression: { reason: string } | null }>(['--db', url, 'trace', 'bounce-x@c.test', '--json']);
    expect(bounced.suppression?.reason).toBe('bad-recipient');

    const campaigns = json<Record<string, unknown>[]>(['--db', url, 'campaigns', '--json']);
    expect(campaigns).toEqual([
      expect.objectContaining({ campaign: 'pgc', status: 'finished', total: 4, sent: 3, failed: 1, rejected: 1, pending_imports: 0 }),
    ]);

    // retry: a dry run counts, the real one re-queues (and lifts the suppression on request).
    expect(json(['--db', url, 'retry', '-c', 'pgc', '--dry-run', '--json'])).toMatchObject({ dry_run: true, requeued: 0, kept_suppressed: 1 });
    expect(json(['--db', url, 'retry', '-c', 'pgc', '--include-suppressed', '--json'])).toMatchObject({ requeued: 1, unsuppressed: 1, status: 'paused' });
    expect(json(['--db', url, 'status', '-c', 'pgc', '--json'])).toMatchObject({ queued: 1, failed: 0, sent: 3 });

    // What the database holds: one attempt row per SMTP try, the run with its host, nothing in public.
    const attempts = await sql<{ n: number }>(schema, `SELECT count(*)::int AS n FROM attempts`);
    expect(attempts).toEqual([{ n: 5 }]);
    const runs = await sql<{ outcome: string }>(schema, `SELECT outcome FROM runs`);
    expect(runs).toEqual([{ outcome: 'finished' }]);
    const stray = await sql<{ n: number }>(schema, `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename = 'messages'`);
    expect(stray).toEqual([{ n: 0 }]);
  });

  it('two send processes on one campaign deliver every recipient exactly once between them', async () => {
    const { url, schema } = freshDb();
    const dir = tempDir();
    const csv = path.join(dir, 'r.csv');
    const n = 120;
    fs.writeFileSync(csv, HEADER + Array.from({ length: n }, (_, i) => `p${i}@d${i % 6}.test,P${i},B,pro,X\n`).join(''));
    expect(runCli(['--db', url, 'import', csv, '-c', 'two', '-t', templateDir('newsletter')]).code).toBe(0);
    const before = sink.received.length;
    const [a, b] = await Promise.all([
      runCliAsync(['--db', url, 'send', '-c', 'two', '--transport', sink.url, '--concurrency', '4']),
      runCliAsync(['--db', url, 'send', '-c', 'two', '--transport', sink.url, '--concurrency', '4']),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    // One attempt per recipient in the log, each by one of the two runs (both
    // usually take part; which one sends what is up to timing, so not asserted).
    const owners = await sql<{ owner: string; n: number; recipients: number }>(
      schema,
      `SELECT run_owner AS owner, count(*)::int AS n, count(DISTINCT message_id)::int AS recipients FROM attempts WHERE next_state = 'sent' GROUP BY run_owner`,
    );
    expect(owners.reduce((sum, o) => sum + o.n, 0)).toBe(n);
    expect(owners.reduce((sum, o) => sum + o.recipients, 0)).toBe(n);
    const delivered = sink.received.slice(before).map((m) => m.to[0]);
    expect(delivered).toHaveLength(n);
    expect(new Set(delivered).size).toBe(n);
    expect(json(['--db', url, 'status', '-c', 'two', '--json'])).toMatchObject({ total: n, sent: n, possible_duplicates: 0 });
    const runs = await sql<{ owner: string; outcome: string }>(schema, `SELECT owner, outcome FROM runs ORDER BY id`);
    expect(runs.map((r) => r.outcome)).toEqual(['finished', 'finished']);
  });

  it('a send killed mid-run is resumed: its leases are taken over, every recipient ends sent, duplicates only where flagged', async () => {
    const { url, schema } = freshDb();
    const dir = tempDir();
    const csv = path.join(dir, 'r.csv');
    const n = 60;
    fs.writeFileSync(csv, HEADER + Array.from({ length: n }, (_, i) => `k${i}@d${i % 3}.test,K${i},B,pro,X\n`).join(''));
    expect(runCli(['--db', url, 'import', csv, '-c', 'kill', '-t', templateDir('newsletter')]).code).toBe(0);
    const before = sink.received.length;
    // 20/s: about 3 s for the campaign, so the kill lands mid-run.
    const child = spawnCli(['--db', url, 'send', '-c', 'kill', '--transport', sink.url, '--rate', '20/s', '--yes']);
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [row] = await sql<{ n: number }>(schema, `SELECT count(*)::int AS n FROM messages WHERE state = 'sent'`).catch(() => [{ n: 0 }]);
      if ((row?.n ?? 0) >= 5) break;
      if (Date.now() > deadline) throw new Error('the send never got going');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    const midway = (await sql<{ n: number }>(schema, `SELECT count(*)::int AS n FROM messages WHERE state = 'sent'`))[0]?.n ?? 0;
    expect(midway).toBeLessThan(n);

    const resumed = await runCliAsync(['--db', url, 'resume', '-c', 'kill', '--rate', '1000/s', '--yes']);
    expect(resumed.code).toBe(0);
    const rows = await sql<{ address: string; state: string; possible_duplicate: boolean }>(schema, `SELECT address, state, possible_duplicate FROM messages`);
    expect(rows.filter((r) => r.state === 'sent')).toHaveLength(n);
    const got = sink.received.slice(before).map((m) => m.to[0] as string);
    const times = new Map<string, number>();
    for (const a of got) times.set(a, (times.get(a) ?? 0) + 1);
    expect(times.size).toBe(n);
    const flagged = new Set(rows.filter((r) => r.possible_duplicate).map((r) => r.address));
    for (const [address, count] of times) if (count > 1) expect(flagged.has(address)).toBe(true);
    const runs = await sql<{ outcome: string | null }>(schema, `SELECT outcome FROM runs ORDER BY id`);
    expect(runs.map((r) => r.outcome)).toEqual(['lost', 'finished']);
  });

  it('a CSV that breaks mid-file leaves nothing behind: no rows, no rejects, no new campaign', async () => {
    const { url, schema } = freshDb();
    const dir = tempDir();
    const csv = path.join(dir, 'broken.csv');
    // 25,000 good rows (three batches), then a bad row, then an unclosed quote.
    fs.writeFileSync(csv, HEADER + Array.from({ length: 25_000 }, (_, i) => `b${i}@d.test,B,B,pro,X\n`).join('') + 'nope,B,B,pro,X\n"unclosed@d.test,B\n');
    const r = runCli(['--db', url, 'import', csv, '-c', 'broken', '-t', templateDir('newsletter')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/quote/i);
    expect(json(['--db', url, 'campaigns', '--json'])).toEqual([]);
    const left = await sql<{ m: number; j: number; r: string | null }>(
      schema,
      `SELECT (SELECT count(*)::int FROM messages) AS m, (SELECT count(*)::int FROM import_rejects) AS j, (SELECT string_agg(status, ',') FROM import_runs) AS r`,
    );
    expect(left).toEqual([{ m: 0, j: 0, r: null }]);
  });

  it('fails in one line with exit 2 when the server, database or credentials are wrong', () => {
    const refused = runCli(['--db', 'postgres://postgres@127.0.0.1:1/test', 'status']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      'mailq: cannot connect to PostgreSQL at 127.0.0.1:1/test (ECONNREFUSED)\n  hint: check that the server is running and the host and port in --db / MAILQ_DB\n',
    );
    const nodb = runCli(['campaigns'], { env: { MAILQ_DB: 'postgres://postgres@127.0.0.1:5432/mailq_no_such_db' } });
    expect(nodb.code).toBe(2);
    expect(nodb.stderr.split('\n')[0]).toBe('mailq: PostgreSQL at 127.0.0.1:5432/mailq_no_such_db: database "mailq_no_such_db" does not exist');
    const withPassword = runCli(['--db', 'postgres://postgres:hunter2@127.0.0.1:5432/test', 'status']);
    expect(withPassword.code).toBe(2);
    expect(withPassword.stderr).toContain('contains a password');
    expect(withPassword.stderr).not.toContain('hunter2');
    const missingFile = runCli(['--db', 'postgres://postgres@127.0.0.1:5432/test', 'status'], { env: { MAILQ_DB_PASSWORD_FILE: '/nonexistent/mailq-pw' } });
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr.split('\n')[0]).toBe('mailq: cannot read MAILQ_DB_PASSWORD_FILE /nonexistent/mailq-pw: ENOENT');
  });
});
