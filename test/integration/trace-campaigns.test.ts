/**
 * `mailq trace` and `mailq campaigns`: the built CLI as a child process, real
 * SQLite files, and the capture sink in this process (its fault local parts
 * script the SMTP replies: transient1 = one 451 then 250, drop1 = body stored
 * then the connection cut before the reply, bounce = 550 5.1.1).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, runCliAsync, tempDir, templateDir } from '../helpers/cli.js';
import { query } from '../helpers/db.js';

const HEADER = 'email,first_name,last_name,plan,city\n';

let sink: SinkHandle;
beforeAll(async () => {
  sink = await startSink({ port: 0 });
});
afterAll(async () => {
  await sink.close();
});

function importCsv(db: string, campaign: string, csv: string): string {
  const file = path.join(path.dirname(db), `${campaign}.csv`);
  fs.writeFileSync(file, csv);
  const r = runCli(['--db', db, 'import', file, '-c', campaign, '-t', templateDir('newsletter')]);
  expect(r.code).toBe(0);
  return file;
}

function freshDb(): string {
  return path.join(tempDir(), 'm.db');
}

interface AttemptJson {
  n: number;
  attempt_id: string;
  started_at: string;
  finished_at: string;
  run_owner: string;
  run_host: string | null;
  stage: string | null;
  code: number | null;
  enhanced: string | null;
  reply: string | null;
  category: string;
  rule: string | null;
  body_written: boolean;
  next_state: string;
  retry_at: string | null;
  retry_in_ms: number | null;
  requeued_after: boolean;
}

interface JourneyJson {
  campaign: string;
  status: string;
  import: { address: string; source: string; line: number; import_id: number; imported_at: string; import_status: string } | null;
  rejects: { source: string; line: number; raw: string; reason: string; message: string; imported_at: string }[];
  attempts: AttemptJson[];
  final: {
    state: string;
    attempts: number;
    next_attempt_at: string | null;
    lease_owner: string | null;
    possible_duplicate: boolean;
    smtp_message_id: string | null;
    sent_at: string | null;
    failure: { category: string; reason: string; code: number | null; enhanced: string | null; reply: string | null; attempts: number; at: string } | null;
  } | null;
}

interface TraceJson {
  address: string;
  searched: string[];
  suppression: { reason: string; at: string } | null;
  campaigns: JourneyJson[];
}

function traceJson(db: string, ...args: string[]): TraceJson {
  const r = runCli(['--db', db, 'trace', ...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as TraceJson;
}

describe('mailq trace', () => {
  it('shows a deferred-then-sent journey: every attempt, the back-off chosen, the run, the final Message-ID', async () => {
    const db = freshDb();
    const csv = importCsv(db, 'c', `${HEADER}transient1-ann@a.test,Ann,B,pro,X\ndrop1-bob@b.test,Bob,B,pro,X\n`);
    const before = sink.received.length;
    const send = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--backoff', '100ms:200ms']);
    expect(send.code).toBe(0);
    const [run] = query<{ owner: string; host: string }>(db, 'SELECT owner, host FROM runs');

    const t = traceJson(db, 'Transient1-Ann@A.TEST');
    expect(t.address).toBe('Transient1-Ann@a.test');
    expect(t.searched).toEqual(['c']);
    expect(t.suppression).toBeNull();
    expect(t.campaigns).toHaveLength(1);
    const j = t.campaigns[0] as JourneyJson;
    expect(j.campaign).toBe('c');
    expect(j.status).toBe('finished');
    expect(j.import).toMatchObject({ address: 'transient1-ann@a.test', source: csv, line: 2, import_status: 'complete' });
    expect(j.rejects).toEqual([]);
    expect(j.attempts.map((a) => [a.n, a.stage, a.code, a.enhanced, a.category, a.next_state, a.body_written])).toEqual([
      [1, 'rcpt', 451, '4.3.0', 'retry', 'deferred', false],
      [2, 'body', 250, '2.0.0', 'sent', 'sent', true],
    ]);
    const [first, second] = j.attempts as [AttemptJson, AttemptJson];
    expect(first.reply).toBe('451 4.3.0 Temporary local problem, try again');
    expect(first.rule).toEqual(expect.any(String));
    // The back-off chosen after attempt 1: the recorded delay, from the attempt's end.
    expect(first.retry_in_ms).toBeGreaterThanOrEqual(75);
    expect(first.retry_in_ms).toBeLessThanOrEqual(250);
    expect(Date.parse(first.retry_at ?? '')).toBe(Date.parse(first.finished_at) + (first.retry_in_ms ?? NaN));
    // The retry did not start before the time the back-off chose.
    expect(Date.parse(second.started_at)).toBeGreaterThanOrEqual(Date.parse(first.retry_at ?? ''));
    expect(second.retry_at).toBeNull();
    for (const a of j.attempts) expect([a.run_owner, a.run_host]).toEqual([run?.owner, os.hostname()]);
    const delivered = sink.received.slice(before).find((m) => m.to[0] === 'transient1-ann@a.test');
    expect(j.final).toMatchObject({ state: 'sent', attempts: 2, possible_duplicate: false, smtp_message_id: delivered?.messageId, failure: null });
    expect(delivered?.messageId).toMatch(/^<.+@acme\.test>$/);

    // The ambiguous drop after "." is resent, flagged as a possible duplicate.
    const dup = traceJson(db, 'drop1-bob@b.test').campaigns[0] as JourneyJson;
    expect(dup.attempts.map((a) => [a.category, a.body_written, a.next_state])).toEqual([
      ['ambiguous', true, 'deferred'],
      ['sent', true, 'sent'],
    ]);
    expect(dup.final).toMatchObject({ state: 'sent', possible_duplicate: true });

    const text = runCli(['--db', db, 'trace', 'transient1-ann@a.test']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('found in 1 of 1 campaign searched (c)');
    expect(text.stdout).toContain(`from ${csv} line 2`);
    expect(text.stdout).toContain('rcpt 451 4.3.0  retry');
    expect(text.stdout).toContain(`→ deferred, retry at ${first.retry_at ?? '?'}`);
    expect(text.stdout).toContain(`run ${run?.owner ?? '?'} on ${os.hostname()}`);
    expect(text.stdout).toContain(`state       sent at ${j.final?.sent_at ?? '?'}; possible duplicate: no; Message-ID ${delivered?.messageId ?? '?'}`);
    expect(runCli(['--db', db, 'trace', 'drop1-bob@b.test']).stdout).toContain('possible duplicate: YES');
  });

  it('shows a failed recipient with its verbatim reply, the failure and its suppression', async () => {
    const db = freshDb();
    importCsv(db, 'c', `${HEADER}bounce-x@a.test,A,B,pro,X\n`);
    expect((await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url])).code).toBe(3);
    const t = traceJson(db, 'bounce-x@a.test', '--campaign', 'c');
    expect(t.suppression).toEqual({ reason: 'bad-recipient', at: expect.any(String) as string });
    const j = t.campaigns[0] as JourneyJson;
    expect(j.attempts).toHaveLength(1);
    expect(j.attempts[0]).toMatchObject({
      stage: 'rcpt', code: 550, enhanced: '5.1.1', category: 'bad-recipient', body_written: false, next_state: 'failed',
      reply: '550 5.1.1 The email account that you tried to reach does not exist', retry_at: null, requeued_after: false,
    });
    expect(j.final).toMatchObject({
      state: 'failed', attempts: 1, smtp_message_id: null,
      failure: { category: 'bad-recipient', reason: 'bad-recipient', code: 550, enhanced: '5.1.1', attempts: 1 },
    });
    const text = runCli(['--db', db, 'trace', 'bounce-x@a.test']).stdout;
    expect(text).toContain('suppression list: SUPPRESSED since');
    expect(text).toContain('state       failed (bad-recipient: bad-recipient)');
  });

  it('finds the rejected row of an address (display name, ragged row), not a longer address containing it', () => {
    const db = freshDb();
    const csv = importCsv(db, 'c', `${HEADER}"Tim <tim@example.com>",T,B,pro,X\nnotim@example.com,N,B,pro,X\ntim@example.com.au,T,B,pro,X\nTIM@example.com,T,B,pro,X,extra\n`);
    const t = traceJson(db, 'tim@example.com');
    const j = t.campaigns[0] as JourneyJson;
    expect(j.import).toBeNull();
    expect(j.final).toBeNull();
    expect(j.attempts).toEqual([]);
    expect(j.rejects.map((r) => [r.source, r.line, r.reason, r.raw])).toEqual([
      [csv, 2, 'display-name', 'Tim <tim@example.com>'],
      [csv, 5, 'ragged-row', expect.stringContaining('TIM@example.com') as string],
    ]);
    const text = runCli(['--db', db, 'trace', 'tim@example.com']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`rejected    ${csv} line 2`);
    expect(text.stdout).toContain('display-name');
  });

  it('shows a recipient never attempted, and one imported as suppressed', () => {
    const db = freshDb();
    importCsv(db, 'c', `${HEADER}ann@a.test,Ann,B,pro,X\n`);
    const j = traceJson(db, 'ann@a.test').campaigns[0] as JourneyJson;
    expect(j.attempts).toEqual([]);
    expect(j.final).toMatchObject({ state: 'queued', attempts: 0, next_attempt_at: null, smtp_message_id: null, failure: null });
    const text = runCli(['--db', db, 'trace', 'ann@a.test']).stdout;
    expect(text).toContain('attempts    none yet');
    expect(text).toContain('state       queued;');

    const conn = new Database(db);
    conn.prepare(`INSERT INTO suppressions (address_key, reason, created_at) VALUES ('bob@b.test', 'manual', 0)`).run();
    conn.close();
    importCsv(db, 'c2', `${HEADER}bob@b.test,Bob,B,pro,X\n`);
    const s = traceJson(db, 'bob@b.test');
    expect(s.suppression).toEqual({ reason: 'manual', at: '1970-01-01T00:00:00.000Z' });
    expect(s.campaigns.map((c) => [c.campaign, c.final?.state])).toEqual([['c2', 'suppressed']]);
  });

  it('searches every campaign without --campaign and says which have the address; not found names them (exit 2)', () => {
    const db = freshDb();
    importCsv(db, 'spring', `${HEADER}ann@a.test,Ann,B,pro,X\n`);
    importCsv(db, 'summer', `${HEADER}zed@z.test,Zed,B,pro,X\n`);
    importCsv(db, 'autumn', `${HEADER}ANN@a.test,Ann,B,pro,X\n`);
    const t = traceJson(db, 'ann@a.test');
    expect(t.searched).toEqual(['spring', 'summer', 'autumn']);
    expect(t.campaigns.map((c) => [c.campaign, c.import?.line])).toEqual([['spring', 2], ['autumn', 2]]);
    expect(runCli(['--db', db, 'trace', 'ann@a.test']).stdout).toContain('found in 2 of 3 campaigns searched (spring, autumn)');
    expect(traceJson(db, 'ann@a.test', '-c', 'autumn').campaigns.map((c) => c.campaign)).toEqual(['autumn']);

    const missing = runCli(['--db', db, 'trace', 'nobody@a.test']);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain('mailq: nobody@a.test is not a recipient of any of the 3 campaigns');
    expect(missing.stderr).toContain('hint: searched: spring, summer, autumn');
    const one = runCli(['--db', db, 'trace', 'ann@a.test', '-c', 'summer']);
    expect(one.code).toBe(2);
    expect(one.stderr).toContain('hint: searched: summer');
  });

  it('refuses an address that does not normalize, in one line (exit 2)', () => {
    const db = freshDb();
    importCsv(db, 'c', `${HEADER}ann@a.test,Ann,B,pro,X\n`);
    const r = runCli(['--db', db, 'trace', 'Ann <ann@a.test>']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^mailq: trace "Ann <ann@a\.test>": .*display name/);
    expect(r.stdout).toBe('');
  });
});

describe('mailq campaigns', () => {
  it('lists every campaign with status, created time, counts by state, pending imports and possible duplicates', async () => {
    const db = freshDb();
    expect(runCli(['--db', db, 'campaigns']).stdout).toContain('no campaigns in');
    expect(runCli(['--db', db, 'campaigns', '--json']).stdout).toBe('[]\n');
    importCsv(db, 'sent-one', `${HEADER}ann@a.test,A,B,pro,X\nbounce-x@a.test,A,B,pro,X\ndrop1-y@b.test,A,B,pro,X\nbad-address,A,B,pro,X\n`);
    importCsv(db, 'draft-one', `${HEADER}bob@b.test,A,B,pro,X\ncid@c.test,A,B,pro,X\n`);
    importCsv(db, 'broken', `${HEADER}dan@d.test,A,B,pro,X\n`);
    expect((await runCliAsync(['--db', db, 'send', '-c', 'sent-one', '--transport', sink.url, '--backoff', '100ms:200ms'])).code).toBe(3);
    // An import killed midway leaves its run `running`.
    const conn = new Database(db);
    conn.prepare(`UPDATE import_runs SET status = 'running' WHERE campaign_id = (SELECT id FROM campaigns WHERE name = 'broken')`).run();
    conn.close();

    const r = runCli(['--db', db, 'campaigns', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Record<string, unknown>[];
    const created = query<{ name: string; created_at: number }>(db, 'SELECT name, created_at FROM campaigns ORDER BY id');
    const base = { sending: 0, deferred: 0, cancelled: 0 };
    expect(list).toEqual([
      { campaign: 'sent-one', status: 'finished', created_at: new Date(created[0]?.created_at ?? 0).toISOString(), total: 3, queued: 0, ...base, sent: 2, failed: 1, suppressed: 0, possible_duplicates: 1, pending_imports: 0, rejected: 1 },
      { campaign: 'draft-one', status: 'draft', created_at: new Date(created[1]?.created_at ?? 0).toISOString(), total: 2, queued: 2, ...base, sent: 0, failed: 0, suppressed: 0, possible_duplicates: 0, pending_imports: 0, rejected: 0 },
      { campaign: 'broken', status: 'draft', created_at: new Date(created[2]?.created_at ?? 0).toISOString(), total: 1, queued: 1, ...base, sent: 0, failed: 0, suppressed: 0, possible_duplicates: 0, pending_imports: 1, rejected: 0 },
    ]);
    expect(list.map((c) => Object.keys(c))[0]).toEqual([
      'campaign', 'status', 'created_at', 'total', 'queued', 'sending', 'deferred', 'sent', 'failed', 'suppressed', 'cancelled',
      'possible_duplicates', 'pending_imports', 'rejected',
    ]);

    const table = runCli(['--db', db, 'campaigns']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^campaign\s+status\s+created\s+total\s+queued\s+sending\s+deferred\s+sent\s+failed\s+suppressed\s+cancelled\s+dup\?\s+rejected\s+imports$/);
    expect(lines).toHaveLength(5);
    expect(lines[2]).toMatch(/^sent-one\s+finished\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+3\s+0\s+0\s+0\s+2\s+1\s+0\s+0\s+1\s+1\s+ok$/);
    expect(lines[4]).toMatch(/^broken\s+draft\s.*\s1 UNFINISHED$/);
  });
});
