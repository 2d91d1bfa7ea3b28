import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import Database from 'better-sqlite3';
import { BIN, fixture, runCli, runCliAsync, tempDir, templateDir } from '../helpers/cli.js';

let sink: SinkHandle;
beforeAll(async () => {
  sink = await startSink({ port: 0 });
});
afterAll(async () => {
  await sink.close();
});

function campaign(csv: string): { dir: string; db: string } {
  const dir = tempDir();
  const db = path.join(dir, 'm.db');
  const file = path.join(dir, 'r.csv');
  fs.writeFileSync(file, csv);
  const r = runCli(['--db', db, 'import', file, '-c', 'c', '-t', templateDir('newsletter')]);
  expect(r.code).toBe(0);
  return { dir, db };
}

const HEADER = 'email,first_name,last_name,plan,city\n';

describe('mailq send (built CLI against a real SMTP server on loopback)', () => {
  it('sends the demo campaign, one RCPT per message, and status reports exact counts', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    expect(runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'demo', '-t', templateDir('newsletter')]).code).toBe(0);
    const before = sink.received.length;
    const r = await runCliAsync(['--db', db, 'send', '-c', 'demo', '--transport', sink.url]);
    expect(r.stderr).toContain('finished: sent 12');
    expect(r.code).toBe(0);
    const got = sink.received.slice(before);
    expect(got).toHaveLength(12);
    for (const m of got) expect(m.to).toHaveLength(1);
    expect(got.map((m) => m.to[0])).toContain('linus@xn--bcher-kva.example');
    // Addresses stay out of the default output.
    expect(r.stderr).not.toContain('@example.com');
    const status = runCli(['--db', db, 'status', '-c', 'demo', '--json']);
    expect(JSON.parse(status.stdout)).toEqual({
      campaign: 'demo', total: 12, queued: 0, sending: 0, deferred: 0, sent: 12, failed: 0, suppressed: 0, cancelled: 0, possible_duplicates: 0,
      hosts: [expect.objectContaining({ state: 'finished' })],
    });
    // The Message-ID on the wire is the one preview shows.
    const preview = runCli(['--db', db, 'preview', '-c', 'demo', '--to', 'ada@example.com']);
    const id = /^Message-ID: (.+)$/m.exec(preview.stdout)?.[1]?.trim();
    expect(got.map((m) => m.messageId)).toContain(id);
  });

  it('classifies outcomes: retries transient failures, fails and suppresses bad recipients, exit 3', async () => {
    const { db } = campaign(`${HEADER}ok@a.test,A,B,pro,X\nbounce-x@a.test,A,B,pro,X\ntransient2-y@b.test,A,B,pro,X\ngreylist-z@c.test,A,B,pro,X\nreject-w@d.test,A,B,pro,X\n`);
    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--backoff', '100ms:500ms']);
    expect(r.code).toBe(3);
    const status = JSON.parse(runCli(['--db', db, 'status', '-c', 'c', '--json']).stdout) as Record<string, number>;
    expect(status).toMatchObject({ sent: 3, failed: 2, queued: 0, deferred: 0 });
    const failures = JSON.parse(runCli(['--db', db, 'failures', '-c', 'c', '--format', 'json']).stdout) as Record<string, unknown>[];
    expect(failures.map((f) => Object.keys(f))).toEqual([
      ['address', 'category', 'code', 'enhanced', 'reply', 'attempts', 'at'],
      ['address', 'category', 'code', 'enhanced', 'reply', 'attempts', 'at'],
    ]);
    expect(failures[0]).toMatchObject({ address: 'bounce-x@a.test', category: 'bad-recipient', code: 550, enhanced: '5.1.1', attempts: 1 });
    expect(failures[0]?.['reply']).toBe('550 5.1.1 The email account that you tried to reach does not exist');
    expect(failures[1]).toMatchObject({ address: 'reject-w@d.test', category: 'message-rejected', code: 554 });
    // The bounced address is suppressed for later imports.
    const dir2 = tempDir();
    const csv2 = path.join(dir2, 'r.csv');
    fs.writeFileSync(csv2, `${HEADER}bounce-x@a.test,A,B,pro,X\nnew@a.test,A,B,pro,X\n`);
    expect(runCli(['--db', db, 'import', csv2, '-c', 'c2', '-t', templateDir('newsletter')]).stdout).toContain('1 on the suppression list');
    const s2 = await runCliAsync(['--db', db, 'send', '-c', 'c2', '--transport', sink.url]);
    expect(s2.code).toBe(0);
    expect(JSON.parse(runCli(['--db', db, 'status', '-c', 'c2', '--json']).stdout)).toMatchObject({ sent: 1, suppressed: 1 });
  });

  it('writes .eml files with a file:// transport (a dry run) and NDJSON with --json', async () => {
    const { dir, db } = campaign(`${HEADER}a@a.test,A,B,pro,X\nb@b.test,B,B,pro,Y\n`);
    const out = path.join(dir, 'outbox');
    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', `file://${out}`, '--json']);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.eml'))).toHaveLength(2);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events[0]?.type).toBe('run-started');
    expect(events.at(-1)?.type).toBe('run-finished');
  });

  it('stops after --limit messages with exit 4, and resume finishes the rest', async () => {
    const { db } = campaign(`${HEADER}${Array.from({ length: 6 }, (_, i) => `u${i}@a.test,A,B,pro,X`).join('\n')}\n`);
    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--limit', '2', '--concurrency', '1']);
    expect(r.code).toBe(4);
    expect(JSON.parse(runCli(['--db', db, 'status', '--json']).stdout)).toMatchObject({ sent: 2, queued: 4 });
    const resume = await runCliAsync(['--db', db, 'resume', '--concurrency', '1']);
    expect(resume.code).toBe(0);
    expect(JSON.parse(runCli(['--db', db, 'status', '--json']).stdout)).toMatchObject({ sent: 6, queued: 0 });
  });

  it('fails a message as expired after --max-attempts, keeping the last reply verbatim', async () => {
    const { db } = campaign(`${HEADER}transient5-x@a.test,A,B,pro,X\n`);
    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--max-attempts', '2', '--backoff', '100ms:200ms']);
    expect(r.code).toBe(3);
    const failures = JSON.parse(runCli(['--db', db, 'failures', '-c', 'c', '--format', 'json']).stdout) as Record<string, unknown>[];
    expect(failures).toEqual([
      expect.objectContaining({ address: 'transient5-x@a.test', category: 'retry', code: 451, attempts: 2, reply: '451 4.3.0 Temporary local problem, try again' }),
    ]);
    const csv = runCli(['--db', db, 'failures', '-c', 'c', '--format', 'csv']).stdout;
    expect(csv).toContain(',retry,expired,451,');
  });

  it('trips the circuit breaker after 10 rejections in a row (exit 4), and stops on a quota reply (exit 4)', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => `reject-${i}@a.test,A,B,pro,X`).join('\n');
    const { db } = campaign(`${HEADER}${rows}\n`);
    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--concurrency', '1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('circuit breaker: 10 message-rejected replies in a row');
    expect(JSON.parse(runCli(['--db', db, 'status', '--json']).stdout)).toMatchObject({ failed: 10, queued: 2 });

    const q = campaign(`${HEADER}quota-x@b.test,A,B,pro,X\n`);
    const quota = await runCliAsync(['--db', q.db, 'send', '-c', 'c', '--transport', sink.url]);
    expect(quota.code).toBe(4);
    expect(quota.stderr).toContain('sending quota reached');
    expect(JSON.parse(runCli(['--db', q.db, 'status', '--json']).stdout)).toMatchObject({ queued: 1, failed: 0 });
  });

  it('on a terminal, asks once with the count, transport and campaign; "n" sends nothing', () => {
    const { dir, db } = campaign(`${HEADER}a@a.test,A,B,pro,X\nb@b.test,A,B,pro,X\n`);
    const out = path.join(dir, 'outbox');
    // script(1) gives the CLI a real pseudo-terminal and feeds it our answer.
    const ask = (answer: string) =>
      spawnSync('script', ['-qec', `${process.execPath} ${BIN} --db ${db} send -c c --transport file://${out}`, '/dev/null'], {
        input: `${answer}\n`,
        encoding: 'utf8',
        env: { ...process.env, CI: '' },
        timeout: 30_000,
      });
    const no = ask('n');
    expect(no.stdout).toContain('Send 2 messages of campaign "c" via file://');
    expect(no.stdout).toContain('not sent: the operator declined');
    expect(no.status).toBe(2);
    expect(fs.existsSync(out) ? fs.readdirSync(out) : []).toEqual([]);
    const yes = ask('y');
    expect(yes.status).toBe(0);
    expect(fs.readdirSync(out)).toHaveLength(2);
  });

  it('warns on --insecure-tls, and refuses a campaign whose import is unfinished', async () => {
    const { dir, db } = campaign(`${HEADER}a@a.test,A,B,pro,X\n`);
    const warn = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', `file://${path.join(dir, 'o')}`, '--insecure-tls']);
    expect(warn.code).toBe(0);
    expect(warn.stderr).toContain('WARNING: --insecure-tls');
    // An import left running (as a kill -9 leaves it) blocks sending until it is re-run.
    const conn = new Database(db);
    conn.prepare(`UPDATE import_runs SET status = 'running'`).run();
    conn.close();
    const refused = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--yes']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/campaign "c" has an unfinished import of .*r\.csv/);
  });

  it('refuses a send with no transport', async () => {
    const { db } = campaign(`${HEADER}a@a.test,A,B,pro,X\n`);
    const none = await runCliAsync(['--db', db, 'send', '-c', 'c']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no transport given');
  });
});
