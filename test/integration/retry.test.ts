/**
 * `mailq retry`: the built CLI as a child process, real SQLite files, and the
 * capture sink in this process. Fault local parts script the replies:
 * transient3 = three 451s then 250, reject = 554 after ".", bounce = 550 5.1.1,
 * slowMS = the final 250 delayed MS milliseconds.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, runCliAsync, spawnCli, tempDir, templateDir } from '../helpers/cli.js';
import { query } from '../helpers/db.js';

const HEADER = 'email,first_name,last_name,plan,city\n';

let sink: SinkHandle;
const children: ChildProcess[] = [];
beforeAll(async () => {
  sink = await startSink({ port: 0 });
});
afterEach(() => {
  // A failed assert must not leave a CLI sending into the next test.
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  await sink.close();
});

function campaign(csv: string, template = templateDir('newsletter')): string {
  const dir = tempDir();
  const db = path.join(dir, 'm.db');
  const file = path.join(dir, 'r.csv');
  fs.writeFileSync(file, csv);
  expect(runCli(['--db', db, 'import', file, '-c', 'c', '-t', template]).code).toBe(0);
  return db;
}

interface Row {
  address: string;
  state: string;
  attempts: number;
}

const rows = (db: string): Row[] => query<Row>(db, 'SELECT address, state, attempts FROM messages ORDER BY id');
const failures = (db: string): string[] =>
  query<{ address: string }>(db, 'SELECT m.address FROM failures f JOIN messages m ON m.id = f.message_id ORDER BY m.id').map((r) => r.address);
const attemptsOf = (db: string, address: string): number =>
  query<{ n: number }>(db, 'SELECT count(*) AS n FROM attempts a JOIN messages m ON m.id = a.message_id WHERE m.address = ?', address)[0]?.n ?? -1;
const campaignRow = (db: string): { status: string; settings_json: string } =>
  query<{ status: string; settings_json: string }>(db, 'SELECT status, settings_json FROM campaigns')[0] ?? { status: '?', settings_json: '{}' };

interface RetryJson {
  campaign: string;
  dry_run: boolean;
  requeued: number;
  by_category: Record<string, number>;
  kept_suppressed: number;
  kept_suppressed_by_category: Record<string, number>;
  unsuppressed: number;
  status: string;
}

function retryJson(db: string, ...args: string[]): RetryJson {
  const r = runCli(['--db', db, 'retry', '-c', 'c', ...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as RetryJson;
}

async function poll(what: string, ok: () => boolean, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('mailq retry (built CLI, real SQLite, real SMTP sink)', () => {
  it('re-queues failures by category with a fresh attempt budget and age clock; resume sends them', async () => {
    const db = campaign(`${HEADER}transient3-a@a.test,A,B,pro,X\nreject-b@b.test,B,B,pro,X\nok-c@c.test,C,B,pro,X\n`);
    const send = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--max-attempts', '2', '--backoff', '100ms:200ms']);
    expect(send.code).toBe(3);
    expect(rows(db)).toEqual([
      { address: 'transient3-a@a.test', state: 'failed', attempts: 2 },
      { address: 'reject-b@b.test', state: 'failed', attempts: 1 },
      { address: 'ok-c@c.test', state: 'sent', attempts: 1 },
    ]);
    // As if the campaign had first been sent long ago: past --max-age (3 days) by far.
    const conn = new Database(db);
    const settings = JSON.parse(campaignRow(db).settings_json) as Record<string, unknown>;
    conn.prepare('UPDATE campaigns SET settings_json = ?').run(JSON.stringify({ ...settings, startedAt: 1 }));
    conn.close();

    const bad = runCli(['--db', db, 'retry', '-c', 'c', '--category', 'retry', '--category', 'bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe(
      'mailq: --category must be one of retry, throttle, connection, ambiguous, bad-recipient, message-rejected, sender-blocked, render (got "bogus")',
    );

    const dry = retryJson(db, '--category', 'retry', '--dry-run');
    expect(dry).toEqual({
      campaign: 'c', dry_run: true, requeued: 1, by_category: { retry: 1 }, kept_suppressed: 0, kept_suppressed_by_category: {}, unsuppressed: 0, status: 'finished',
    });
    expect(rows(db).map((r) => r.state)).toEqual(['failed', 'failed', 'sent']);

    const text = runCli(['--db', db, 'retry', '-c', 'c', '--category', 'retry']);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(
      're-queued 1 failed recipient of campaign c (attempt budget reset):\n  retry              1\ncampaign c is paused: run `mailq resume -c c` to send them\n',
    );
    expect(rows(db)[0]).toEqual({ address: 'transient3-a@a.test', state: 'queued', attempts: 0 });
    // The dead-letter entry goes; the attempts log is history and stays.
    expect(failures(db)).toEqual(['reject-b@b.test']);
    expect(attemptsOf(db, 'transient3-a@a.test')).toBe(2);
    const after = campaignRow(db);
    expect(after.status).toBe('paused');
    // The max-age clock starts again at the next send; the stored flags stay.
    const { startedAt: _old, ...kept } = settings;
    expect(JSON.parse(after.settings_json)).toEqual(kept);
    expect(kept).toHaveProperty('flags');

    // resume picks the paused campaign with the flags send stored (--max-attempts 2):
    // two more 451s fit the fresh budget (and the fresh age clock), then 250.
    const before = sink.received.length;
    const resume = await runCliAsync(['--db', db, 'resume']);
    expect(resume.code).toBe(3); // reject-b is still failed
    expect(sink.received.slice(before).map((m) => m.to[0])).toEqual(['transient3-a@a.test']);
    const trace = JSON.parse(runCli(['--db', db, 'trace', 'transient3-a@a.test', '--json']).stdout) as {
      campaigns: { attempts: { code: number; next_state: string; requeued_after: boolean }[] }[];
    };
    expect(trace.campaigns[0]?.attempts.map((a) => [a.code, a.next_state, a.requeued_after])).toEqual([
      [451, 'deferred', false],
      [451, 'failed', true],
      [451, 'deferred', false],
      [250, 'sent', false],
    ]);

    // Without --category every failure goes back.
    expect(retryJson(db)).toMatchObject({ requeued: 1, by_category: { 'message-rejected': 1 }, status: 'paused' });
    expect(failures(db)).toEqual([]);
    expect(retryJson(db)).toMatchObject({ requeued: 0, by_category: {} });
    expect(runCli(['--db', db, 'retry', '-c', 'c', '--category', 'retry']).stdout).toBe('no failed recipients to re-queue in campaign c\n');
  });

  it('keeps suppressed recipients suppressed unless --include-suppressed, which lifts the suppression', async () => {
    const db = campaign(`${HEADER}bounce-x@a.test,A,B,pro,X\n`);
    expect((await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url])).code).toBe(3);
    expect(query(db, 'SELECT address_key FROM suppressions')).toEqual([{ address_key: 'bounce-x@a.test' }]);

    expect(retryJson(db)).toEqual({
      campaign: 'c', dry_run: false, requeued: 0, by_category: {}, kept_suppressed: 1, kept_suppressed_by_category: { 'bad-recipient': 1 }, unsuppressed: 0, status: 'finished',
    });
    expect(rows(db)[0]?.state).toBe('failed');
    expect(runCli(['--db', db, 'retry', '-c', 'c']).stdout).toContain('kept 1 suppressed recipient failed (add --include-suppressed');

    expect(retryJson(db, '--include-suppressed', '--category', 'bad-recipient')).toEqual({
      campaign: 'c', dry_run: false, requeued: 1, by_category: { 'bad-recipient': 1 }, kept_suppressed: 0, kept_suppressed_by_category: {}, unsuppressed: 1, status: 'paused',
    });
    expect(rows(db)[0]).toEqual({ address: 'bounce-x@a.test', state: 'queued', attempts: 0 });
    expect(query(db, 'SELECT address_key FROM suppressions')).toEqual([]);

    // Resume really tries it again: the sink bounces it again, and it is suppressed again.
    expect((await runCliAsync(['--db', db, 'resume', '-c', 'c'])).code).toBe(3);
    expect(attemptsOf(db, 'bounce-x@a.test')).toBe(2);
    expect(rows(db)[0]?.state).toBe('failed');
    expect(query(db, 'SELECT address_key FROM suppressions')).toEqual([{ address_key: 'bounce-x@a.test' }]);
  });

  it('re-queues only recipients whose template did not render with --category render, after the template is fixed', async () => {
    // A newline in first_name reaches the Subject: header-injection, a render failure.
    const db = campaign(`${HEADER}"ann@a.test","Ann\nX",B,pro,X\nreject-b@b.test,B,B,pro,X\n`);
    expect((await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url])).code).toBe(3);
    expect(query(db, 'SELECT reason FROM failures ORDER BY message_id')).toEqual([{ reason: 'render: header-injection' }, { reason: 'message-rejected' }]);
    expect(retryJson(db, '--dry-run')).toMatchObject({ requeued: 2, by_category: { render: 1, 'message-rejected': 1 } });

    const fixed = path.join(tempDir(), 'newsletter');
    fs.cpSync(templateDir('newsletter'), fixed, { recursive: true });
    fs.writeFileSync(path.join(fixed, 'subject.liquid'), 'Your {{ plan }} plan news from Acme\n');
    expect(runCli(['--db', db, 'refresh-template', '-c', 'c', '-t', fixed]).code).toBe(0);
    expect(retryJson(db, '--category', 'render')).toMatchObject({ requeued: 1, by_category: { render: 1 } });
    expect(failures(db)).toEqual(['reject-b@b.test']);
    const before = sink.received.length;
    expect((await runCliAsync(['--db', db, 'resume', '-c', 'c'])).code).toBe(3);
    expect(sink.received.slice(before).map((m) => m.to[0])).toEqual(['ann@a.test']);
  });

  it('refuses while a live run is sending the campaign; a run whose process died does not block it', async () => {
    const db = campaign(`${HEADER}slow20000-a@a.test,A,B,pro,X\n`);
    const child = spawnCli(['--db', db, 'send', '-c', 'c', '--transport', sink.url]);
    children.push(child);
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    await poll('the send to lease its message', () => rows(db)[0]?.state === 'sending');

    const refused = runCli(['--db', db, 'retry', '-c', 'c']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`^mailq: campaign "c" is being sent by run \\S+ \\(pid ${child.pid ?? -1} on \\S+, heartbeat .* ago\\); nothing was changed\\n  hint: stop that send`));
    expect(refused.stdout).toBe('');

    child.kill('SIGKILL');
    await exited;
    // The run is still open in the database, but its process is gone.
    expect(query(db, 'SELECT count(*) AS n FROM runs WHERE finished_at IS NULL')).toEqual([{ n: 1 }]);
    const ok = runCli(['--db', db, 'retry', '-c', 'c']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('no failed recipients to re-queue in campaign c\n');

    // A run on another host is judged by its heartbeat: live within the 10-minute lease, dead after.
    const conn = new Database(db);
    conn.prepare(`INSERT INTO runs (campaign_id, owner, host, pid, started_at, heartbeat_at, settings_json)
      VALUES ((SELECT id FROM campaigns), 'far:1:x', 'far.example', 1, ?, ?, '{}')`).run(Date.now(), Date.now() - 60_000);
    conn.close();
    const far = runCli(['--db', db, 'retry', '-c', 'c']);
    expect(far.code).toBe(2);
    expect(far.stderr).toMatch(/is being sent by run far:1:x \(pid 1 on far\.example, heartbeat 1m \d\ds ago\)/);
    const conn2 = new Database(db);
    conn2.prepare(`UPDATE runs SET heartbeat_at = ? WHERE owner = 'far:1:x'`).run(Date.now() - 11 * 60_000);
    conn2.close();
    expect(runCli(['--db', db, 'retry', '-c', 'c']).code).toBe(0);
  });
});
