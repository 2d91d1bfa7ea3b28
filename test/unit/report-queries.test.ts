import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeToStream } from '../../src/report/report-output.js';
import { writeCsvReport } from '../../src/report/report-rows.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { OutcomeUpdate, RecipientInsert, ReportRow } from '../../src/store/types.js';
import { tempDir } from '../helpers/cli.js';

const recipient = (local: string, domain: string, line: number): RecipientInsert => ({
  line,
  address: `${local}@${domain}`,
  varsJson: JSON.stringify([`${local}@${domain}`]),
});

/**
 * A campaign with known timings (a fake clock, outcomes committed through the
 * same store calls the engine uses), so every aggregate has an exact expected value.
 *   u1@a.test  sent in 40 ms at 60.04 s, flagged possible duplicate
 *   u2@a.test  451 at 61.3 s (300 ms), then sent in 20 ms at 130.02 s
 *   u3@b.test  550 bounce at 62.01 s
 *   u4@b.test  never attempted (queued)
 *   u5@c.test  451 with a hostile reply at 63.5 s, still deferred
 *   u6@c.test  on the suppression list before the import
 */
async function seeded(): Promise<{ store: SqliteStore; campaignId: number; ids: number[] }> {
  let clock = 0;
  const store = new SqliteStore(path.join(tempDir('mailq-report-'), 'r.db'), { now: () => clock });
  const c = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
  await store.addSuppression('u6@c.test', 'bad-recipient');
  const run = await store.beginImport(c.id, '/r.csv', ['email']);
  const rows = [recipient('u1', 'a.test', 2), recipient('u2', 'a.test', 3), recipient('u3', 'b.test', 4), recipient('u4', 'b.test', 5), recipient('u5', 'c.test', 6), recipient('u6', 'c.test', 7)];
  await store.insertBatch(run, rows, []);
  await store.finishImport(run.id, { rejected: 0, total: 6 });
  await store.prepareForSending();
  await store.startRun(c.id, { owner: 'run-1', host: 'h', pid: 1, settingsJson: '{}' });
  const ids: number[] = [];
  for await (const m of store.iterateMessages(c.id)) ids.push(m.id);
  const attempt = async (i: number, attemptId: string, startedAt: number, finishedAt: number, extra: Partial<OutcomeUpdate> & Pick<OutcomeUpdate, 'next'>): Promise<void> => {
    clock = startedAt;
    const id = ids[i] as number;
    expect(await store.lease(id, 'run-1', attemptId, startedAt, 60_000)).toBeDefined();
    clock = finishedAt;
    const ok = await store.recordOutcome({
      messageId: id, attemptId, runOwner: 'run-1', startedAt, finishedAt, stage: 'body', code: 250, enhanced: '2.0.0',
      category: 'sent', rule: undefined, reply: '250 2.0.0 Ok', bodyWritten: true, flagPossibleDuplicate: false, ...extra,
    });
    expect(ok).toBe(true);
  };
  await attempt(0, 'a1', 60_000, 60_040, { next: { state: 'sent', smtpMessageId: '<m1@x.test>' }, flagPossibleDuplicate: true });
  await attempt(1, 'a2', 61_000, 61_300, { next: { state: 'deferred', nextAttemptAt: 100_000, countsAttempt: true }, category: 'retry', code: 451, reply: '451 4.3.0 try again' });
  await attempt(2, 'a3', 62_000, 62_010, { next: { state: 'failed', reason: 'bad-recipient', suppress: true, countsAttempt: true }, stage: 'rcpt', category: 'bad-recipient', code: 550, reply: '550 5.1.1 no such user' });
  await attempt(4, 'a5', 63_000, 63_500, { next: { state: 'deferred', nextAttemptAt: 1_000_000, countsAttempt: true }, category: 'retry', code: 451, reply: '451 <script>alert(1)</script>' });
  await attempt(1, 'a2b', 130_000, 130_020, { next: { state: 'sent', smtpMessageId: '<m2@x.test>' }, reply: '250 2.0.0 Ok: queued as 2' });
  return { store, campaignId: c.id, ids };
}

async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of rows) out.push(r);
  return out;
}

describe('report queries (SQLite store)', () => {
  it('lists every recipient in import order with its last outcome', async () => {
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
    await store.close();
  });

  it('sums up states, duplicates, attempts, the sending span and runs', async () => {
    const { store, campaignId } = await seeded();
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

  it('computes every chart as aggregates: timeline, categories, domains, latency, attempts, replies', async () => {
    const { store, campaignId } = await seeded();
    const charts = await store.reportCharts(campaignId, {
      timeline: { fromMs: 60_000, bucketMs: 1000 },
      latencyBoundsMs: [25, 50, 100],
      topDomains: 2,
      topReplies: 10,
    });
    expect(charts.timeline).toEqual([
      { index: 0, sent: 1, other: 0 },
      { index: 1, sent: 0, other: 1 },
      { index: 2, sent: 0, other: 1 },
      { index: 3, sent: 0, other: 1 },
      { index: 70, sent: 1, other: 0 },
    ]);
    expect(charts.categories).toEqual([
      { category: 'retry', n: 2 },
      { category: 'sent', n: 2 },
      { category: 'bad-recipient', n: 1 },
    ]);
    // Three domains of two recipients each: the top two by name on a tie.
    expect(charts.domains).toEqual([
      { domain: 'a.test', total: 2, counts: { queued: 0, sending: 0, deferred: 0, sent: 2, failed: 0, suppressed: 0, cancelled: 0 } },
      { domain: 'b.test', total: 2, counts: { queued: 1, sending: 0, deferred: 0, sent: 0, failed: 1, suppressed: 0, cancelled: 0 } },
    ]);
    // Sent attempts only: 20 ms and 40 ms (the 300 ms and 500 ms tries were not sent).
    expect(charts.latency).toEqual([1, 1, 0, 0]);
    expect(charts.latencyPercentiles).toEqual({ p50: 20, p95: 40, max: 40 });
    expect(charts.attemptsPerRecipient).toEqual([
      { attempts: 0, n: 2 },
      { attempts: 1, n: 3 },
      { attempts: 2, n: 1 },
    ]);
    expect(charts.topReplies).toEqual([
      { category: 'retry', code: 451, reply: '451 <script>alert(1)</script>', n: 1 },
      { category: 'bad-recipient', code: 550, reply: '550 5.1.1 no such user', n: 1 },
    ]);
    // Coarser buckets group attempts instead of giving each one its own (integer division).
    const minute = await store.reportCharts(campaignId, { timeline: { fromMs: 60_000, bucketMs: 60_000 }, latencyBoundsMs: [], topDomains: 10, topReplies: 1 });
    expect(minute.timeline).toEqual([
      { index: 0, sent: 1, other: 3 },
      { index: 1, sent: 1, other: 0 },
    ]);
    expect(minute.latency).toEqual([2]);
    expect(minute.domains.map((d) => d.domain)).toEqual(['a.test', 'b.test', 'c.test']);
    expect(minute.topReplies).toHaveLength(1);
    await store.close();
  });

  it('an empty campaign has zero counts and empty charts', async () => {
    const store = new SqliteStore(path.join(tempDir('mailq-report-'), 'e.db'));
    const c = await store.createCampaign({ name: 'e', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
    const summary = await store.reportSummary(c.id);
    expect(summary).toMatchObject({ attempts: 0, firstAttemptAt: undefined, lastAttemptAt: undefined, runs: 0, possibleDuplicates: 0 });
    const charts = await store.reportCharts(c.id, { timeline: undefined, latencyBoundsMs: [10], topDomains: 10, topReplies: 10 });
    expect(charts).toEqual({ timeline: [], categories: [], domains: [], latency: [0, 0], latencyPercentiles: undefined, attemptsPerRecipient: [], topReplies: [] });
    expect(await collect(store.iterateReportRows(c.id))).toEqual([]);
    await store.close();
  });

  it('pages through recipients by id: every row once, in order, other campaigns excluded', async () => {
    const store = new SqliteStore(path.join(tempDir('mailq-report-'), 'p.db'));
    const mk = async (name: string, n: number): Promise<number> => {
      const c = await store.createCampaign({ name, templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
      const run = await store.beginImport(c.id, `/${name}.csv`, ['email']);
      await store.insertBatch(run, Array.from({ length: n }, (_, i) => recipient(`${name}${i}`, 'a.test', i + 2)), []);
      await store.finishImport(run.id, { rejected: 0, total: n });
      return c.id;
    };
    // Interleave two campaigns' rows so a page boundary (1,000) falls among the other's ids.
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

describe('streamed export', () => {
  it('never runs ahead of a slow reader: rows are pulled only as the output drains', async () => {
    const total = 20_000;
    let produced = 0;
    async function* rows(): AsyncIterable<ReportRow> {
      for (let i = 0; i < total; i++) {
        await Promise.resolve();
        produced++;
        yield {
          id: i, address: `user${i}@example.com`, state: 'sent', attempts: 1, category: 'sent', code: 250,
          reply: '250 2.0.0 Ok: queued as 0123456789AB', sentAt: 0, smtpMessageId: `<${i}@x.test>`, possibleDuplicate: false,
        };
      }
    }
    // A reader that accepts a chunk only when the test says so.
    const held: Array<() => void> = [];
    let bytes = 0;
    const reader = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        held.push(() => cb());
      },
    });
    let finished = false;
    const done = writeToStream(reader, (out) => writeCsvReport(rows(), out).then(() => undefined)).then(() => (finished = true));
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    await settle();
    const stalled = produced;
    await settle();
    // Blocked on 'drain': one 64 KiB chunk is ~700 rows; nowhere near all 20,000.
    expect(produced).toBe(stalled);
    expect(produced).toBeLessThan(2000);
    expect(finished).toBe(false);
    while (!finished) {
      held.shift()?.();
      await settle();
    }
    await done;
    expect(produced).toBe(total);
    expect(bytes).toBeGreaterThan(total * 80);
  });
});
