import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { openStore } from '../../src/store/open-store.js';
import { SCHEMA_VERSION } from '../../src/store/postgres/migrations.js';
import { PgStore, type PgStoreOptions } from '../../src/store/postgres/pg-store.js';
import { parsePgUrl } from '../../src/store/postgres/url.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { OutcomeUpdate, RecipientInsert, ReportRow, Store } from '../../src/store/types.js';
import { tempDir } from '../helpers/cli.js';
import { storeContract } from './contract.js';
import { sendStoreContract } from './send-contract.js';

/**
 * The PostgreSQL backend against a real server (CI starts PostgreSQL 15 on
 * 127.0.0.1:5432, trust auth, database `test`). Every store lives in a schema
 * of its own, dropped at the end.
 */
const BASE = process.env['MAILQ_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const created: string[] = [];

function schemaName(): string {
  const name = `mailq_test_${randomBytes(6).toString('hex')}`;
  created.push(name);
  return name;
}

function urlFor(schema: string): string {
  return `${BASE}?schema=${schema}`;
}

function freshPg(options: PgStoreOptions = {}): PgStore {
  return new PgStore(urlFor(schemaName()), {}, options);
}

/** A plain pg client for looking at the database the way an operator's psql would. */
async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: BASE });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  await admin(async (c) => {
    for (const s of created) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  });
});

storeContract('postgres', () => Promise.resolve(freshPg()));
sendStoreContract('postgres', () => Promise.resolve(freshPg()));
// The other two import methods are kept for the benchmark; they must give the same results.
storeContract('postgres (import by unnest)', () => Promise.resolve(freshPg({ importMethod: 'unnest' })));
storeContract('postgres (import by multi-row VALUES)', () => Promise.resolve(freshPg({ importMethod: 'values' })));

// ---- Reports: the figures of test/unit/report-queries.test.ts, on both backends.

const recipient = (local: string, domain: string, line: number): RecipientInsert => ({
  line,
  address: `${local}@${domain}`,
  varsJson: JSON.stringify([`${local}@${domain}`]),
});

async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of rows) out.push(r);
  return out;
}

function reportContract(name: string, open: (now: () => number) => Store): void {
  /** Known timings (see test/unit/report-queries.test.ts for the story of each recipient). */
  async function seeded(): Promise<{ store: Store; campaignId: number; ids: number[] }> {
    let clock = 0;
    const store = open(() => clock);
    const c = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
    await store.addSuppression('u6@c.test', 'bad-recipient');
    const run = await store.beginImport(c.id, '/r.csv', ['email']);
    const rows = [recipient('u1', 'a.test', 2), recipient('u2', 'a.test', 3), recipient('u3', 'b.test', 4), recipient('u4', 'b.test', 5), recipient('u5', 'c.test', 6), recipient('u6', 'c.test', 7)];
    await store.insertBatch(run, rows, []);
    await store.finishImport(run.id, { rejected: 0, total: 6 });
    await store.prepareForSending();
    await store.startRun(c.id, { owner: 'run-1', host: 'h', pid: 1, settingsJson: '{}' });
    const ids = (await collect(store.iterateMessages(c.id))).map((m) => m.id);
    const attempt = async (i: number, attemptId: string, startedAt: number, finishedAt: number, extra: Partial<OutcomeUpdate> & Pick<OutcomeUpdate, 'next'>): Promise<void> => {
      clock = startedAt;
      const id = ids[i] as number;
      expect(await store.lease(id, 'run-1', attemptId, startedAt, 60_000)).toBeDefined();
      clock = finishedAt;
      expect(await store.recordOutcome({
        messageId: id, attemptId, runOwner: 'run-1', startedAt, finishedAt, stage: 'body', code: 250, enhanced: '2.0.0',
        category: 'sent', rule: undefined, reply: '250 2.0.0 Ok', bodyWritten: true, flagPossibleDuplicate: false, ...extra,
      })).toBe(true);
    };
    await attempt(0, 'a1', 60_000, 60_040, { next: { state: 'sent', smtpMessageId: '<m1@x.test>' }, flagPossibleDuplicate: true });
    await attempt(1, 'a2', 61_000, 61_300, { next: { state: 'deferred', nextAttemptAt: 100_000, countsAttempt: true }, category: 'retry', code: 451, reply: '451 4.3.0 try again' });
    await attempt(2, 'a3', 62_000, 62_010, { next: { state: 'failed', reason: 'bad-recipient', suppress: true, countsAttempt: true }, stage: 'rcpt', category: 'bad-recipient', code: 550, reply: '550 5.1.1 no such user' });
    await attempt(4, 'a5', 63_000, 63_500, { next: { state: 'deferred', nextAttemptAt: 1_000_000, countsAttempt: true }, category: 'retry', code: 451, reply: '451 <script>alert(1)</script>' });
    await attempt(1, 'a2b', 130_000, 130_020, { next: { state: 'sent', smtpMessageId: '<m2@x.test>' }, reply: '250 2.0.0 Ok: queued as 2' });
    return { store, campaignId: c.id, ids };
  }

  describe(`Report store contract: ${name}`, () => {
    it('lists every recipient with its last outcome, and sums up the campaign', async () => {
      const { store, campaignId, ids } = await seeded();
      const rows = await collect(store.iterateReportRows(campaignId));
      expect(rows.map((r) => [r.address, r.state, r.attempts, r.category, r.code, r.reply, r.sentAt, r.smtpMessageId, r.possibleDuplicate])).toEqual([
        ['u1@a.test', 'sent', 1, 'sent', 250, '250 2.0.0 Ok', 60_040, '<m1@x.test>', true],
        ['u2@a.test', 'sent', 2, 'sent', 250, '250 2.0.0 Ok: queued as 2', 130_020, '<m2@x.test>', false],
        ['u3@b.test', 'failed', 1, 'bad-recipient', 550, '550 5.1.1 no such user', undefined, undefined, false],
        ['u4@b.test', 'queued', 0, undefined, undefined, undefined, undefined, undefined, false],
        ['u5@c.test', 'deferred', 1, 'retry', 451, '451 <script>alert(1)</script>', undefined, undefined, false],
        ['u6@c.test', 'suppressed', 0, undefined, undefined, undefined, undefined, undefined, false],
      ]);
      expect(rows.map((r) => r.id)).toEqual(ids);
      expect(await store.reportSummary(campaignId)).toEqual({
        counts: { queued: 1, sending: 0, deferred: 1, sent: 2, failed: 1, suppressed: 1, cancelled: 0 },
        possibleDuplicates: 1,
        attempts: 5,
        firstAttemptAt: 60_000,
        lastAttemptAt: 130_020,
        runs: 1,
      });
      await store.close();
    });

    it('computes every chart as aggregates with the same figures', async () => {
      const { store, campaignId } = await seeded();
      const charts = await store.reportCharts(campaignId, { timeline: { fromMs: 60_000, bucketMs: 1000 }, latencyBoundsMs: [25, 50, 100], topDomains: 2, topReplies: 10 });
      expect(charts.timeline).toEqual([
        { index: 0, sent: 1, other: 0 },
        { index: 1, sent: 0, other: 1 },
        { index: 2, sent: 0, other: 1 },
        { index: 3, sent: 0, other: 1 },
        { index: 70, sent: 1, other: 0 },
      ]);
      expect(charts.categories).toEqual([{ category: 'retry', n: 2 }, { category: 'sent', n: 2 }, { category: 'bad-recipient', n: 1 }]);
      expect(charts.domains).toEqual([
        { domain: 'a.test', total: 2, counts: { queued: 0, sending: 0, deferred: 0, sent: 2, failed: 0, suppressed: 0, cancelled: 0 } },
        { domain: 'b.test', total: 2, counts: { queued: 1, sending: 0, deferred: 0, sent: 0, failed: 1, suppressed: 0, cancelled: 0 } },
      ]);
      expect(charts.latency).toEqual([1, 1, 0, 0]);
      expect(charts.latencyPercentiles).toEqual({ p50: 20, p95: 40, max: 40 });
      expect(charts.attemptsPerRecipient).toEqual([{ attempts: 0, n: 2 }, { attempts: 1, n: 3 }, { attempts: 2, n: 1 }]);
      expect(charts.topReplies).toEqual([
        { category: 'retry', code: 451, reply: '451 <script>alert(1)</script>', n: 1 },
        { category: 'bad-recipient', code: 550, reply: '550 5.1.1 no such user', n: 1 },
      ]);
      const minute = await store.reportCharts(campaignId, { timeline: { fromMs: 60_000, bucketMs: 60_000 }, latencyBoundsMs: [], topDomains: 10, topReplies: 1 });
      expect(minute.timeline).toEqual([{ index: 0, sent: 1, other: 3 }, { index: 1, sent: 1, other: 0 }]);
      expect(minute.latency).toEqual([2]);
      expect(minute.domains.map((d) => d.domain)).toEqual(['a.test', 'b.test', 'c.test']);
      expect(minute.topReplies).toHaveLength(1);
      await store.close();
    });

    it('an empty campaign has zero counts and empty charts', async () => {
      const store = open(Date.now);
      const c = await store.createCampaign({ name: 'e', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
      expect(await store.reportSummary(c.id)).toMatchObject({ attempts: 0, firstAttemptAt: undefined, lastAttemptAt: undefined, runs: 0, possibleDuplicates: 0 });
      expect(await store.reportCharts(c.id, { timeline: undefined, latencyBoundsMs: [10], topDomains: 10, topReplies: 10 })).toEqual({
        timeline: [], categories: [], domains: [], latency: [0, 0], latencyPercentiles: undefined, attemptsPerRecipient: [], topReplies: [],
      });
      expect(await collect(store.iterateReportRows(c.id))).toEqual([]);
      await store.close();
    });

    it('pages through recipients by id: every row once, in order, other campaigns excluded', async () => {
      const store = open(Date.now);
      const mk = async (campaign: string, n: number): Promise<number> => {
        const c = await store.createCampaign({ name: campaign, templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
        const run = await store.beginImport(c.id, `/${campaign}.csv`, ['email']);
        await store.insertBatch(run, Array.from({ length: n }, (_, i) => recipient(`${campaign}${i}`, 'a.test', i + 2)), []);
        await store.finishImport(run.id, { rejected: 0, total: n });
        return c.id;
      };
      const a = await mk('a', 1500);
      await mk('b', 700);
      const run = await store.beginImport(a, '/a2.csv', ['email']);
      await store.insertBatch(run, Array.from({ length: 1000 }, (_, i) => recipient(`late${i}`, 'b.test', i + 2)), []);
      await store.finishImport(run.id, { rejected: 0, total: 1000 });
      const rows = await collect(store.iterateReportRows(a));
      expect(rows).toHaveLength(2500);
      expect(new Set(rows.map((r) => r.address)).size).toBe(2500);
      expect(rows.every((r, i) => i === 0 || r.id > (rows[i - 1] as ReportRow).id)).toBe(true);
      expect(rows.some((r) => r.address.startsWith('b'))).toBe(false);
      await store.close();
    });
  });
}

reportContract('postgres', (now) => freshPg({ now }));
reportContract('sqlite', (now) => new SqliteStore(path.join(tempDir('mailq-report-'), 'r.db'), { now }));

// ---- PostgreSQL specifics

const newCampaign = (store: Store, name = 'c') =>
  store.createCampaign({ name, templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });

async function seed(store: Store, n: number, domains = ['a.test']): Promise<number> {
  const c = await newCampaign(store);
  const run = await store.beginImport(c.id, '/a.csv', ['email']);
  const rows = Array.from({ length: n }, (_, i) => recipient(`u${i}`, domains[i % domains.length] as string, i + 2));
  await store.insertBatch(run, rows, []);
  await store.finishImport(run.id, { rejected: 0, total: n });
  await store.prepareForSending();
  return c.id;
}

describe('PostgreSQL specifics: schema and migrations', () => {
  it('records the schema version and the mailq marker, and reopening keeps the data', async () => {
    const schema = schemaName();
    const a = new PgStore(urlFor(schema), {});
    await newCampaign(a);
    await a.close();
    const meta = await admin((c) => c.query<{ key: string; value: string }>(`SELECT key, value FROM ${schema}.mailq_meta ORDER BY key`));
    expect(meta.rows).toEqual([{ key: 'application', value: 'mailq' }, { key: 'schema_version', value: String(SCHEMA_VERSION) }]);
    const b = new PgStore(urlFor(schema), {});
    expect((await b.getCampaign('c'))?.name).toBe('c');
    await b.close();
  });

  it('refuses a schema written by a newer mailq, naming both versions', async () => {
    const schema = schemaName();
    const a = new PgStore(urlFor(schema), {});
    await a.listCampaigns();
    await a.close();
    await admin((c) => c.query(`UPDATE ${schema}.mailq_meta SET value = '${SCHEMA_VERSION + 1}' WHERE key = 'schema_version'`));
    const b = new PgStore(urlFor(schema), {});
    const err = await b.listCampaigns().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toContain(`newer mailq (schema version ${SCHEMA_VERSION + 1}; this mailq knows up to ${SCHEMA_VERSION})`);
    expect((err as InputError).message).toContain('127.0.0.1:5432/test');
    await b.close();
  });

  it('refuses a schema that holds other tables, and one marked as another application', async () => {
    const other = schemaName();
    await admin((c) => c.query(`CREATE SCHEMA ${other}; CREATE TABLE ${other}.invoices (id int)`));
    const s = new PgStore(urlFor(other), {});
    await expect(s.listCampaigns()).rejects.toThrow(/schema mailq_test_\w+ already holds other tables and is not a mailq schema/);
    await s.close();
    // Nothing was added to it.
    const tables = await admin((c) => c.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1`, [other]));
    expect(tables.rows.map((r: { tablename: string }) => r.tablename)).toEqual(['invoices']);

    const marked = schemaName();
    await admin((c) => c.query(`CREATE SCHEMA ${marked}; CREATE TABLE ${marked}.mailq_meta (key text primary key, value text not null);
      INSERT INTO ${marked}.mailq_meta VALUES ('application', 'other-tool')`));
    const m = new PgStore(urlFor(marked), {});
    await expect(m.listCampaigns()).rejects.toThrow(/is not a mailq schema/);
    await m.close();
  });

  it('two hosts starting on a new schema at once migrate it once (advisory lock)', async () => {
    const schema = schemaName();
    const stores = Array.from({ length: 4 }, () => new PgStore(urlFor(schema), {}));
    const lists = await Promise.all(stores.map((s) => s.listCampaigns()));
    expect(lists).toEqual([[], [], [], []]);
    await Promise.all(stores.map((s) => s.close()));
    const meta = await admin((c) => c.query<{ value: string }>(`SELECT value FROM ${schema}.mailq_meta WHERE key = 'schema_version'`));
    expect(meta.rows).toEqual([{ value: String(SCHEMA_VERSION) }]);
  });

  it('keeps schemas apart: a campaign in one is not seen from another, and tables go only where the URL says', async () => {
    const [sa, sb] = [schemaName(), schemaName()];
    const a = new PgStore(urlFor(sa), {});
    const b = new PgStore(urlFor(sb), {});
    await newCampaign(a, 'only-in-a');
    expect(await b.getCampaign('only-in-a')).toBeUndefined();
    expect(await b.listCampaigns()).toEqual([]);
    expect((await a.listCampaigns()).map((c) => c.campaign.name)).toEqual(['only-in-a']);
    await a.close();
    await b.close();
    const where = await admin((c) =>
      c.query<{ schemaname: string }>(`SELECT DISTINCT schemaname FROM pg_tables WHERE tablename = 'messages' AND schemaname = ANY($1)`, [[sa, sb, 'public']]),
    );
    expect(where.rows.map((r) => r.schemaname).sort()).toEqual([sa, sb].sort());
  });

  it('reads ids, counts and epoch-ms timestamps as JS numbers', async () => {
    const store = freshPg({ now: () => 1_700_000_000_123 });
    const c = await newCampaign(store);
    expect(typeof c.id).toBe('number');
    expect(c.createdAt).toBe(1_700_000_000_123);
    const run = await store.beginImport(c.id, '/a.csv', ['email']);
    expect(typeof run.id).toBe('number');
    await store.insertBatch(run, [recipient('x', 'a.test', 2)], []);
    expect((await store.countByState(c.id)).queued).toBe(1);
    await store.close();
  });

  it('stores a rejected cell holding NUL (PostgreSQL text cannot) as U+2400', async () => {
    const store = freshPg();
    const c = await newCampaign(store);
    const run = await store.beginImport(c.id, '/a.csv', ['email']);
    await store.insertBatch(run, [recipient('ok', 'a.test', 2)], [{ line: 3, raw: 'bad\u0000@x.test', reason: 'control-character', message: 'NUL in "bad\u0000@x.test"' }]);
    const [reject] = await collect(store.listRejects(c.id));
    expect(reject?.raw).toBe('bad\u2400@x.test');
    await store.close();
  });
});

describe('PostgreSQL specifics: connection URL and passwords', () => {
  it('refuses a password inside the URL without echoing it, pointing at PGPASSWORD and MAILQ_DB_PASSWORD_FILE', async () => {
    let err: unknown;
    try {
      await openStore('postgres://mailq:s3cret-pw@db.example:5432/mail');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const e = err as InputError;
    expect(e.message).toContain('contains a password');
    expect(`${e.message} ${e.hint ?? ''}`).not.toContain('s3cret');
    expect(e.hint).toContain('PGPASSWORD');
    expect(e.hint).toContain('MAILQ_DB_PASSWORD_FILE');
  });

  it('reads the password from MAILQ_DB_PASSWORD_FILE less one trailing newline, and names a missing file', () => {
    const dir = tempDir('mailq-pgpw-');
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'pa ss\n', { mode: 0o600 });
    expect(parsePgUrl('postgres://u@h/db', { MAILQ_DB_PASSWORD_FILE: file }).password).toBe('pa ss');
    fs.writeFileSync(file, 'two\n\n');
    expect(parsePgUrl('postgres://u@h/db', { MAILQ_DB_PASSWORD_FILE: file }).password).toBe('two\n');
    fs.writeFileSync(file, 'crlf\r\n');
    expect(parsePgUrl('postgres://u@h/db', { MAILQ_DB_PASSWORD_FILE: file }).password).toBe('crlf');
    // Without the file, pg reads PGPASSWORD (or ~/.pgpass) itself.
    expect(parsePgUrl('postgres://u@h/db', {}).password).toBeUndefined();
    expect(() => parsePgUrl('postgres://u@h/db', { MAILQ_DB_PASSWORD_FILE: path.join(dir, 'missing') })).toThrow(/cannot read MAILQ_DB_PASSWORD_FILE .*missing: ENOENT/);
  });

  it('connects with a password file given (the server here trusts loopback, so it is sent and ignored)', async () => {
    const dir = tempDir('mailq-pgpw-');
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'unused\n');
    const store = new PgStore(urlFor(schemaName()), { MAILQ_DB_PASSWORD_FILE: file });
    expect(await store.listCampaigns()).toEqual([]);
    expect(store.location).toBe(store.location.replace(/:[^@/]*@/, '@'));
    await store.close();
  });

  it('parses the URL: defaults, schema, sslmode; refuses what it does not understand', () => {
    expect(parsePgUrl('postgresql://db.example/mail', {})).toMatchObject({ host: 'db.example', port: 5432, database: 'mail', user: undefined, schema: undefined, label: 'db.example:5432/mail' });
    expect(parsePgUrl('postgres://ops%40corp@[::1]:6543/m%20q?schema=team_a&sslmode=require', {})).toMatchObject({
      host: '::1', port: 6543, database: 'm q', user: 'ops@corp', schema: 'team_a', sslMode: 'require', label: '[::1]:6543/m q',
    });
    expect(() => parsePgUrl('postgres://h/db?schema=Team-A', {})).toThrow(/schema "Team-A" is not a plain lower-case name/);
    expect(() => parsePgUrl('postgres://h/db?search_path=x', {})).toThrow(/unknown parameter "search_path"/);
    expect(() => parsePgUrl('postgres://h/', {})).toThrow(/names no database/);
    expect(() => parsePgUrl('postgres://h/db?sslmode=maybe', {})).toThrow(/sslmode must be one of/);
  });

  it('turns connection refused, an unknown role and an unknown database into one-line errors naming host:port/db', async () => {
    const refused = new PgStore('postgres://postgres@127.0.0.1:1/test', {});
    await expect(refused.listCampaigns()).rejects.toThrow(/^cannot connect to PostgreSQL at 127\.0\.0\.1:1\/test \(ECONNREFUSED\)$/);
    await refused.close();

    const role = new PgStore('postgres://no_such_role_mailq@127.0.0.1:5432/test', {});
    const roleErr = await role.listCampaigns().catch((e: unknown) => e);
    expect(roleErr).toBeInstanceOf(InputError);
    expect((roleErr as InputError).message).toMatch(/^PostgreSQL at 127\.0\.0\.1:5432\/test refused user "no_such_role_mailq"/);
    await role.close();

    const db = new PgStore('postgres://postgres@127.0.0.1:5432/no_such_db_mailq', {});
    const dbErr = await db.listCampaigns().catch((e: unknown) => e);
    expect(dbErr).toBeInstanceOf(InputError);
    expect((dbErr as InputError).message).toBe('PostgreSQL at 127.0.0.1:5432/no_such_db_mailq: database "no_such_db_mailq" does not exist');
    await db.close();
  });
});

describe('PostgreSQL specifics: several hosts on one schema', () => {
  it('two stores leasing the same rows concurrently never get the same message, and together get all of them', async () => {
    const schema = schemaName();
    const seeder = new PgStore(urlFor(schema), {});
    const campaignId = await seed(seeder, 300, ['a.test', 'b.test', 'c.test']);
    await seeder.close();
    const hosts = [new PgStore(urlFor(schema), {}), new PgStore(urlFor(schema), {})];
    const won = new Map<number, string>();
    let clashes = 0;
    // Each host walks every due id of every domain, in the same order, with
    // several leases in flight at once: the worst case for a double lease.
    await Promise.all(
      hosts.map(async (store, h) => {
        for (;;) {
          const domains = await store.dueDomains(campaignId, 1000);
          if (domains.length === 0) return;
          for (const d of domains) {
            const ids = await store.dueIds(campaignId, d.domain, 1000, 50);
            await Promise.all(
              ids.map(async (id) => {
                const m = await store.lease(id, `host-${h}`, `att-${h}-${id}`, 1000, 600_000);
                if (m === undefined) return;
                if (won.has(id)) clashes++;
                won.set(id, `host-${h}`);
              }),
            );
          }
        }
      }),
    );
    expect(clashes).toBe(0);
    expect(won.size).toBe(300);
    // Both hosts took part (the rows were not all leased by whichever started first).
    expect(new Set(won.values()).size).toBe(2);
    expect((await hosts[0]?.countByState(campaignId))?.sending).toBe(300);
    await Promise.all(hosts.map((s) => s.close()));
  });

  it('a host reclaims the expired leases of a dead host, and the dead host\'s late outcome is refused', async () => {
    const schema = schemaName();
    const dead = new PgStore(urlFor(schema), {});
    const campaignId = await seed(dead, 3);
    await dead.startRun(campaignId, { owner: 'dead-run', host: 'host-a', pid: 1, settingsJson: '{}' });
    const ids = await dead.dueIds(campaignId, 'a.test', 1000, 10);
    for (const id of ids) expect(await dead.lease(id, 'dead-run', `d-${id}`, 1000, 600_000)).toBeDefined();
    await dead.close();

    const live = new PgStore(urlFor(schema), {});
    expect(await live.dueIds(campaignId, 'a.test', 2000, 10)).toEqual([]);
    expect((await live.openRuns(campaignId)).map((r) => [r.owner, r.host])).toEqual([['dead-run', 'host-a']]);
    expect(await live.expireLeasesOf('dead-run', 2000)).toBe(3);
    expect(await live.dueIds(campaignId, 'a.test', 2000, 10)).toEqual(ids);
    const taken = await live.lease(ids[0] as number, 'live-run', 'l-1', 2000, 600_000);
    expect(taken).toMatchObject({ reclaimed: true, possibleDuplicate: true });
    const late = await live.recordOutcome({
      messageId: ids[0] as number, attemptId: `d-${ids[0]}`, runOwner: 'dead-run', startedAt: 1000, finishedAt: 1500, stage: 'body', code: 250,
      enhanced: '2.0.0', category: 'sent', rule: undefined, reply: '250 ok', bodyWritten: true, flagPossibleDuplicate: false,
      next: { state: 'sent', smtpMessageId: '<x@y>' },
    });
    expect(late).toBe(false);
    expect(await live.countPossibleDuplicates(campaignId)).toBe(1);
    await live.close();
  });
});
