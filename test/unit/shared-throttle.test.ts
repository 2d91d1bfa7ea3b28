/**
 * The shared limits of several `mailq send` processes (engine/shared-throttle.ts,
 * engine/coordinator.ts, engine/hosts.ts) and the token buckets behind them in
 * both stores (store/sqlite/coordination.ts, store/postgres/coordination.ts).
 * Engine parts run on a fake clock against an in-memory token source built on
 * the same bucket arithmetic as SQLite; the stores run against a real SQLite
 * file and the real PostgreSQL of CI (MAILQ_TEST_PG, default
 * postgres://postgres@127.0.0.1:5432/test) in a schema of their own.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Coordinator, stricterRow } from '../../src/engine/coordinator.js';
import { classifyRuns, hostState, LEASE_MS, SILENT_AFTER_MS, type HostHealth } from '../../src/engine/hosts.js';
import { GLOBAL_KEY, SharedThrottle, sharedLimitFor, type TokenSource } from '../../src/engine/shared-throttle.js';
import { Throttle, type ThrottleConfig } from '../../src/engine/throttle.js';
import { PG_COORDINATION_MIGRATION, pgReportRun, pgReturnTokens, pgRunHealth, pgTakeTokens } from '../../src/store/postgres/coordination.js';
import { refillAndReturn, refillAndTake, type BucketState } from '../../src/store/sqlite/coordination.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { emptyCounts, type BucketLimit, type RunHealth, type TokenGrant } from '../../src/store/types.js';
import { layoutDashboard, lineWidth } from '../../src/ui/dashboard/layout.js';
import { createDashboardModel } from '../../src/ui/dashboard/model.js';

class FakeClock {
  t = 1_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Buckets in memory with the SQLite arithmetic: what several processes' SharedThrottles share. */
class MemoryBuckets {
  readonly buckets = new Map<string, BucketState>();
  readonly calls: { key: string; want: number; granted: number }[] = [];
  returned = 0;
  constructor(private readonly clock: FakeClock) {}

  source(): TokenSource {
    return {
      take: (key, want, limit): Promise<TokenGrant> => {
        const { next, grant } = refillAndTake(this.buckets.get(key), want, limit, this.clock.now());
        this.buckets.set(key, next);
        this.calls.push({ key, want, granted: grant.granted });
        return Promise.resolve(grant);
      },
      giveBack: (key, count, limit): Promise<void> => {
        this.buckets.set(key, refillAndReturn(this.buckets.get(key), count, limit, this.clock.now()));
        this.returned += count;
        return Promise.resolve();
      },
    };
  }
}

const limit20: BucketLimit = { perSecond: 20, burst: 20 };

/** mulberry32: a tiny seeded PRNG, so a failing schedule replays. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('token bucket arithmetic (SQLite store; PostgreSQL does the same in SQL)', () => {
  it('starts full, refills with elapsed time at the rate, caps at the burst, never goes negative', () => {
    const a = refillAndTake(undefined, 5, limit20, 0);
    expect(a.grant).toEqual({ granted: 5, waitMs: 0 });
    expect(a.next.tokens).toBe(15);
    const b = refillAndTake(a.next, 100, limit20, 0);
    expect(b.grant.granted).toBe(15);
    // Empty: the next whole token comes in 1000/20 = 50 ms.
    expect(b.grant.waitMs).toBe(50);
    const c = refillAndTake(b.next, 10, limit20, 120);
    expect(c.grant.granted).toBe(2); // 120 ms at 20/s = 2.4 tokens
    expect(c.next.tokens).toBeCloseTo(0.4, 9);
    expect(c.grant.waitMs).toBe(30); // 0.6 token more at 20/s
    const d = refillAndTake(c.next, 100, limit20, 120 + 60_000);
    expect(d.grant.granted).toBe(20); // capped at the burst, not 1,200
  });

  it('a clock stepping back refills nothing and keeps the mark (no double credit)', () => {
    const a = refillAndTake(undefined, 20, limit20, 10_000).next;
    const back = refillAndTake(a, 5, limit20, 9_000);
    expect(back.grant.granted).toBe(0);
    expect(back.next.refilledAt).toBe(10_000);
    expect(refillAndTake(back.next, 5, limit20, 10_100).grant.granted).toBe(2);
  });

  it('a rate under 1/s still holds one token; returned tokens never overfill', () => {
    const slow = { perSecond: 0.5, burst: 0.5 };
    expect(refillAndTake(undefined, 3, slow, 0).grant).toEqual({ granted: 1, waitMs: 2000 });
    const full = refillAndReturn({ tokens: 19, refilledAt: 0 }, 5, limit20, 0);
    expect(full.tokens).toBe(20);
  });
});

describe('SharedThrottle (fake clock, in-memory token source)', () => {
  it('asks for chunks of 200 ms of the rate, at most what is queued, at least one', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now);
    expect(st.chunk({ perSecond: 100, burst: 100 })).toBe(20);
    expect(st.chunk({ perSecond: 2, burst: 2 })).toBe(1);
    expect(await st.ready('a.test', { perSecond: 100, burst: 100 }, 500)).toBe(true);
    expect(await st.ready('b.test', { perSecond: 100, burst: 100 }, 3)).toBe(true);
    expect(mem.calls).toEqual([
      { key: 'a.test', want: 20, granted: 20 },
      { key: 'b.test', want: 3, granted: 3 },
    ]);
    // Held tokens are used without asking again.
    for (let i = 0; i < 3; i++) expect(st.tryConsume('b.test')).toBe(true);
    expect(mem.calls).toHaveLength(2);
    expect(st.held('b.test')).toBe(0);
    expect(st.tryConsume('b.test')).toBe(false);
  });

  it('uses a token ready() saw even when its hold window ends before tryConsume (the scale-bench crash)', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now, { tuning: { jitter: 0 } });
    const l = { perSecond: 10, burst: 10 };
    expect(await st.ready('k', l, 1)).toBe(true);
    clock.advance(2999);
    expect(await st.ready('k', l, 1)).toBe(true); // still held: no new grant
    clock.advance(2); // the 3 s hold ends between ready() and the consume
    expect(st.tryConsume('k')).toBe(true);
    expect(st.tryConsume('k')).toBe(false);
  });

  it('after a short grant waits for the bucket before asking again', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now, { tuning: { jitter: 0 } });
    const l = { perSecond: 10, burst: 2 };
    expect(await st.ready('k', l, 10)).toBe(true); // 2 of the 2 wanted
    expect(st.tryConsume('k')).toBe(true);
    expect(st.tryConsume('k')).toBe(true);
    // Empty: the next token comes in 100 ms, a whole chunk (2) in 200 ms; asking before that is wasted.
    expect(await st.ready('k', l, 10)).toBe(false);
    expect(st.readyAt('k')).toBe(clock.t + 200);
    clock.advance(150);
    expect(await st.ready('k', l, 10)).toBe(false);
    expect(mem.calls).toHaveLength(2); // no request before the wait is over
    clock.advance(50);
    expect(await st.ready('k', l, 10)).toBe(true);
    expect(mem.calls).toHaveLength(3);
    expect(st.held('k')).toBe(2);
  });

  it('drops granted tokens unused for holdMs, refunds a token whose lease was lost, gives back the rest at close', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now, { tuning: { holdMs: 1000 } });
    await st.ready('k', limit20, 100); // 4 tokens
    expect(st.tryConsume('k')).toBe(true);
    st.refund('k');
    expect(st.held('k')).toBe(4);
    clock.advance(1000);
    expect(st.held('k')).toBe(0);
    expect(st.stats()).toMatchObject({ granted: 4, used: 0, dropped: 4 });
    await st.ready('k', limit20, 100);
    expect(st.tryConsume('k')).toBe(true);
    await st.close();
    expect(mem.returned).toBe(3);
    expect(st.held('k')).toBe(0);
  });

  it('with a global --rate, a message needs a token of its key and of the global key', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now, { global: { perSecond: 5, burst: 1 }, tuning: { jitter: 0 } });
    expect(await st.ready('a.test', limit20, 100)).toBe(true);
    expect(st.tryConsume('a.test')).toBe(true);
    expect(mem.calls.map((c) => c.key)).toEqual(['a.test', GLOBAL_KEY]);
    // The global bucket (burst 1) is empty now, the domain still holds 3 tokens.
    expect(await st.ready('b.test', limit20, 100)).toBe(false);
    expect(st.held('b.test')).toBe(4);
    clock.advance(200);
    expect(await st.ready('b.test', limit20, 100)).toBe(true);
    expect(st.tryConsume('b.test')).toBe(true);
    expect(st.held(GLOBAL_KEY)).toBe(0);
  });

  it('three processes sharing one 20/s bucket send 20/s in total, not 60/s, and use it fully', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const random = seeded(7);
    const procs = [0, 1, 2].map(() => new SharedThrottle(mem.source(), clock.now, { random }));
    const sends: number[] = [];
    const perProc = [0, 0, 0];
    const start = clock.t;
    const durationMs = 30_000;
    // Each process sends as fast as its tokens allow (unlimited connections), checking every ms.
    while (clock.t - start < durationMs) {
      for (const [i, p] of procs.entries()) {
        while (p.readyAt('example.com') <= clock.t && (await p.ready('example.com', limit20, 100))) {
          expect(p.tryConsume('example.com')).toBe(true);
          sends.push(clock.t - start);
          perProc[i] = (perProc[i] ?? 0) + 1;
        }
      }
      clock.advance(1);
    }
    const bound = (20 * durationMs) / 1000 + 20; // rate × T + burst
    expect(sends.length).toBeLessThanOrEqual(bound);
    expect(sends.length).toBeGreaterThanOrEqual(bound * 0.95);
    // Over any 1 s window after the initial burst: at most rate + the chunks the three may hold (3 × 4).
    for (let w = 2000; w + 1000 <= durationMs; w += 250) {
      const n = sends.filter((t) => t >= w && t < w + 1000).length;
      expect(n, `window at ${w} ms`).toBeLessThanOrEqual(20 + 12);
    }
    // Every process got a real share.
    for (const n of perProc) expect(n).toBeGreaterThan(sends.length / 6);
    const requests = procs.reduce((a, p) => a + p.stats().requests, 0);
    console.log(`shared 3 × 20/s: ${sends.length} sends in ${durationMs / 1000} s (${perProc.join(' + ')}), ${requests} token requests`);
  });

  it('alone, a process makes one token request per chunk, not one per message', async () => {
    const clock = new FakeClock();
    const mem = new MemoryBuckets(clock);
    const st = new SharedThrottle(mem.source(), clock.now);
    const l = { perSecond: 100, burst: 100 };
    let sent = 0;
    // 50 messages a second to one domain for 20 s, as a CPU-bound send would.
    for (let i = 0; i < 1000; i++) {
      if (await st.ready('d.test', l, 100)) {
        expect(st.tryConsume('d.test')).toBe(true);
        sent++;
      }
      clock.advance(20);
    }
    expect(sent).toBe(1000);
    // Chunks of 20 used in 400 ms (< holdMs): one request per 20 messages.
    expect(st.stats().requests).toBeLessThanOrEqual(sent / 15);
  });

  it("uses the key's slowed rate: a halving halves the shared rate too", () => {
    const config: ThrottleConfig = { globalRate: undefined, defaultLimit: { rate: { perSecond: 100 }, connections: 10 }, overrides: new Map([['x.test', { rate: { perSecond: 20 }, connections: 5 }]]), groups: [] };
    const clock = new FakeClock();
    const throttle = new Throttle(config, clock.now);
    expect(sharedLimitFor(throttle, 'x.test')).toEqual({ perSecond: 20, burst: 20 });
    throttle.onThrottle('x.test', { reason: '421 4.7.28 slow down' });
    expect(sharedLimitFor(throttle, 'x.test')).toEqual({ perSecond: 10, burst: 10 });
    expect(sharedLimitFor(throttle, 'y.test')).toEqual({ perSecond: 100, burst: 100 });
  });
});

describe('domain state merge (a pause or slow-down recorded by another run)', () => {
  const now = 1_000_000;
  it('takes a later pause and a lower factor; never loosens what we have', () => {
    const remotePause = { key: 'google', status: { kind: 'paused' as const, until: now + 60_000, reason: '421 TSS04' }, rateFactor: 0.5 };
    expect(stricterRow(undefined, remotePause, now)).toEqual(remotePause);
    // Ours is paused longer: nothing to take.
    const ours = { key: 'google', status: { kind: 'paused' as const, until: now + 120_000, reason: 'ours' }, rateFactor: 0.5 };
    expect(stricterRow(ours, remotePause, now)).toBeUndefined();
    // Ours paused longer but at full rate: the lower factor is taken, our longer pause kept.
    expect(stricterRow({ ...ours, rateFactor: 1 }, remotePause, now)).toEqual({ key: 'google', status: { kind: 'paused', until: now + 120_000, reason: 'ours' }, rateFactor: 0.5 });
    const slowed = { key: 'x.test', status: { kind: 'slowed' as const, factor: 0.25, until: now + 600_000 }, rateFactor: 0.25 };
    expect(stricterRow({ key: 'x.test', status: { kind: 'open' }, rateFactor: 1 }, slowed, now)).toEqual(slowed);
    // We are slower already: keep ours.
    expect(stricterRow({ key: 'x.test', status: { kind: 'slowed', factor: 0.125, until: now }, rateFactor: 0.125 }, slowed, now)).toBeUndefined();
    // An expired pause is no pause; an open row never changes anything.
    expect(stricterRow(undefined, { key: 'y', status: { kind: 'paused', until: now - 1, reason: 'old' }, rateFactor: 1 }, now)).toBeUndefined();
    expect(stricterRow(undefined, { key: 'y', status: { kind: 'open' }, rateFactor: 1 }, now)).toBeUndefined();
  });
});

describe('host health', () => {
  const base: RunHealth = { owner: 'h1:10:a', host: 'h1', pid: 10, startedAt: 0, heartbeatAt: 0, heartbeatAgeMs: 1000, finishedAt: undefined, outcome: undefined, sent: 5, sentLastMinute: 3 };
  const ctx = { host: 'h1', self: 'me', alive: (pid: number) => pid !== 99, pid: 4242 };
  it('classifies runs: alive, silent after 30 s, lost past the lease or when the process is gone here, finished', () => {
    expect(hostState(base, ctx)).toBe('alive');
    expect(hostState({ ...base, heartbeatAgeMs: SILENT_AFTER_MS + 1 }, ctx)).toBe('silent');
    expect(hostState({ ...base, heartbeatAgeMs: LEASE_MS + 1 }, ctx)).toBe('lost');
    // Process gone on this host: lost at once, whatever the heartbeat says.
    expect(hostState({ ...base, pid: 99 }, ctx)).toBe('lost');
    // Our own pid under another owner: a dead run whose pid we reuse.
    expect(hostState({ ...base, pid: 4242 }, ctx)).toBe('lost');
    // On another host the pid means nothing: only the heartbeat counts.
    expect(hostState({ ...base, host: 'h2', pid: 99 }, ctx)).toBe('alive');
    expect(hostState({ ...base, host: 'h2', heartbeatAgeMs: LEASE_MS + 1 }, ctx)).toBe('lost');
    expect(hostState({ ...base, finishedAt: 5, outcome: 'finished' }, ctx)).toBe('finished');
    expect(hostState({ ...base, finishedAt: 5, outcome: 'lost' }, ctx)).toBe('lost');
    const [h] = classifyRuns([{ ...base, host: 'h2', heartbeatAgeMs: LEASE_MS + 1 }], ctx);
    // A run that is not alive sends nothing now, whatever it reported last.
    expect(h).toMatchObject({ state: 'lost', sentLastMinute: 0, sent: 5, self: false });
  });
});

describe('dashboard: the hosts panel and its notices', () => {
  const host = (owner: string, state: HostHealth['state'], extra: Partial<HostHealth> = {}): HostHealth => ({
    owner, host: owner.split(':')[0] ?? owner, pid: Number(owner.split(':')[1]), startedAt: 0, heartbeatAgeMs: 2000, state,
    outcome: state === 'finished' ? 'finished' : undefined, sent: 100, sentLastMinute: 60, self: false, ...extra,
  });
  function model() {
    const clock = new FakeClock();
    const m = createDashboardModel(clock.now);
    m.apply({ type: 'run-started', at: clock.t, campaign: 'c', owner: 'a:1:x', transport: 'smtp://127.0.0.1:2525', counts: { ...emptyCounts(), queued: 100 }, reclaimed: 0 });
    const progress = (hosts: readonly HostHealth[]): void =>
      m.apply({ type: 'progress', at: clock.t, counts: { ...emptyCounts(), queued: 100 }, inFlight: 0, openConnections: 0, stalled: 0, nextRetryAt: undefined, paused: false, hosts });
    return { clock, m, progress };
  }
  const texts = (lines: ReturnType<typeof layoutDashboard>): string[] => lines.map((l) => l.map((seg) => seg.text).join(''));

  it('shows every run with its rate and heartbeat when several send; none when this run is alone', () => {
    const { m, progress } = model();
    progress([host('a:1:x', 'alive', { self: true, sentLastMinute: 612 }), host('b:2:y', 'finished')]);
    expect(texts(layoutDashboard(m.snapshot(), { columns: 80, rows: 40, help: false, hints: false })).some((t) => t.startsWith('hosts'))).toBe(false);
    progress([
      host('a:1:x', 'alive', { self: true, sentLastMinute: 612 }),
      host('b:2:y', 'alive', { sentLastMinute: 598 }),
      host('c:3:z', 'lost', { heartbeatAgeMs: 11 * 60_000 }),
    ]);
    for (const columns of [80, 50, 30]) {
      const lines = layoutDashboard(m.snapshot(), { columns, rows: 40, help: false, hints: false });
      for (const l of lines) expect(lineWidth(l), `${columns} columns`).toBeLessThanOrEqual(columns);
      const t = texts(lines);
      const at = t.findIndex((x) => x.startsWith('hosts'));
      expect(at, t.join('\n')).toBeGreaterThanOrEqual(0);
      expect(t[at]).toBe('hosts  2 alive  1 lost');
      // This run first, then the troubled one, then the others.
      expect(t[at + 1]).toMatch(/^a:1 \(this\)/);
      expect(t[at + 2]).toMatch(/^c:3 .*lost$/);
      expect(t[at + 3]).toMatch(/^b:2 .*alive$/);
      if (columns >= 40) {
        expect(t[at + 1]).toContain('612/min');
        expect(t[at + 3]).toMatch(/598\/min\s+hb 2s alive$/);
        expect(t[at + 2]).toMatch(/-\s+hb 11m00s lost$/);
      }
    }
  });

  it('tells when another run joins, goes silent or is lost, once per change', () => {
    const { clock, m, progress } = model();
    // A run lost before we looked is history: no notice.
    progress([host('a:1:x', 'alive', { self: true }), host('b:2:y', 'alive'), host('old:9:q', 'lost', { outcome: 'lost' })]);
    clock.advance(2000);
    progress([host('a:1:x', 'alive', { self: true }), host('b:2:y', 'silent', { heartbeatAgeMs: 31_000 }), host('old:9:q', 'lost', { outcome: 'lost' })]);
    clock.advance(2000);
    progress([host('a:1:x', 'alive', { self: true }), host('b:2:y', 'silent', { heartbeatAgeMs: 33_000 })]);
    clock.advance(2000);
    progress([host('a:1:x', 'alive', { self: true }), host('b:2:y', 'lost', { heartbeatAgeMs: 35_000, outcome: 'lost' })]);
    expect(m.snapshot().finished.map((l) => l.text)).toEqual([
      'run b:2 is sending this campaign too',
      'run b:2 silent for 31s',
      'run b:2 lost (no heartbeat for 35s, or its process is gone): its messages are taken over',
    ]);
  });
});

function tempStore(): SqliteStore {
  return new SqliteStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-shared-')), 'm.db'));
}

async function campaignIn(store: SqliteStore): Promise<number> {
  return (await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} })).id;
}

describe('SQLite store: shared buckets and run health', () => {
  it('two connections to one file share one bucket', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-shared-')), 'm.db');
    const a = new SqliteStore(file);
    const c = await campaignIn(a);
    const b = new SqliteStore(file);
    expect(await a.takeTokens(c, 'x.test', 15, limit20, 1000)).toEqual({ granted: 15, waitMs: 0 });
    expect(await b.takeTokens(c, 'x.test', 15, limit20, 1000)).toEqual({ granted: 5, waitMs: 50 });
    expect((await a.takeTokens(c, 'x.test', 15, limit20, 1100)).granted).toBe(2);
    // Another campaign, another key: buckets of their own.
    expect((await b.takeTokens(c, 'y.test', 15, limit20, 1100)).granted).toBe(15);
    await b.returnTokens(c, 'x.test', 7, limit20, 1100);
    expect((await a.takeTokens(c, 'x.test', 15, limit20, 1100)).granted).toBe(7);
    // Bucket writes leave the connection at synchronous=FULL for the store's own commits.
    expect(((a as unknown as { db: { pragma: (s: string, o: object) => number } }).db).pragma('synchronous', { simple: true })).toBe(2);
    await a.close();
    await b.close();
  });

  it('reports a run with its figures and lists open and recent runs with heartbeat ages', async () => {
    const store = tempStore();
    const c = await campaignIn(store);
    await store.startRun(c, { owner: 'h1:1:a', host: 'h1', pid: 1, settingsJson: '{}' });
    await store.startRun(c, { owner: 'h2:2:b', host: 'h2', pid: 2, settingsJson: '{}' });
    await store.reportRun('h1:1:a', { sent: 120, sentLastMinute: 60 }, Date.now());
    await store.finishRun('h2:2:b', 'finished');
    const runs = await store.runHealth(c, Date.now() + 5000, 60_000);
    expect(runs.map((r) => [r.owner, r.sent, r.sentLastMinute, r.finishedAt === undefined])).toEqual([
      ['h1:1:a', 120, 60, true],
      ['h2:2:b', 0, 0, false],
    ]);
    expect(runs[0]?.heartbeatAgeMs).toBeGreaterThanOrEqual(4000);
    // Finished longer ago than the window: left out; open runs always in.
    expect((await store.runHealth(c, Date.now() + 120_000, 60_000)).map((r) => r.owner)).toEqual(['h1:1:a']);
    await store.close();
  });
});

describe('Coordinator: pauses and slow-downs travel between runs through the store', () => {
  const config: ThrottleConfig = { globalRate: undefined, defaultLimit: { rate: { perSecond: 100 }, connections: 10 }, overrides: new Map(), groups: [] };
  it("a halving saved by run A is taken by run B; B's recovery is not undone by the stale row", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-shared-')), 'm.db');
    const sa = new SqliteStore(file);
    const c = await campaignIn(sa);
    const sb = new SqliteStore(file);
    const clock = new FakeClock();
    const ta = new Throttle(config, clock.now);
    const tb = new Throttle(config, clock.now);
    const deps = { now: clock.now, host: 'h', pid: 1, alive: () => true };
    const a = new Coordinator({ ...deps, store: sa, throttle: ta }, { campaignId: c, owner: 'a', leaseMs: LEASE_MS });
    const b = new Coordinator({ ...deps, store: sb, throttle: tb }, { campaignId: c, owner: 'b', leaseMs: LEASE_MS });
    await a.restore();
    await b.restore();
    tb.tryAcquire('x.test');
    tb.release('x.test');
    ta.onThrottle('x.test', { reason: '421 4.7.28 slow down' });
    await a.saveKey('x.test');
    expect(tb.status('x.test').kind).toBe('open');
    const imported = await b.sync();
    expect(imported.map((r) => r.key)).toEqual(['x.test']);
    expect(tb.status('x.test')).toMatchObject({ kind: 'slowed', factor: 0.5 });
    // B recovers on its own successes after the cool-down (10 min, +10% a minute)…
    clock.advance(10 * 60_000);
    tb.onSuccess('x.test');
    expect(tb.status('x.test')).toMatchObject({ kind: 'slowed', factor: 0.6 });
    // …and the unchanged persisted row does not drag it back.
    expect(await b.sync()).toEqual([]);
    expect(tb.status('x.test')).toMatchObject({ factor: 0.6 });
    // A pause A records later wins over B's slow-down.
    ta.pause('x.test', clock.t + 3_600_000, '421 TSS04');
    await a.saveKey('x.test');
    await b.sync();
    expect(tb.status('x.test')).toMatchObject({ kind: 'paused', until: clock.t + 3_600_000 });
    await sa.close();
    await sb.close();
  });

  it('takes over the leases of a run lost on another host (heartbeat older than the lease), not of a live one', async () => {
    const store = tempStore();
    const c = await campaignIn(store);
    const run = await store.beginImport(c, '/a.csv', ['email']);
    const rows = [1, 2, 3].map((i) => ({ line: i, address: `u${i}@a.test`, addressKey: `u${i}@a.test`, domain: 'a.test', varsJson: '[]' }));
    await store.insertBatch(run, rows, []);
    await store.finishImport(run.id, { rejected: 0, total: 3 });
    await store.prepareForSending();
    const t0 = Date.now();
    await store.startRun(c, { owner: 'far:1:x', host: 'far-away', pid: 1, settingsJson: '{}' });
    await store.startRun(c, { owner: 'near:2:y', host: 'elsewhere', pid: 2, settingsJson: '{}' });
    const [id1, id2] = await store.dueIds(c, 'a.test', t0, 2);
    await store.lease(id1 as number, 'far:1:x', 'att-1', t0, LEASE_MS);
    await store.lease(id2 as number, 'near:2:y', 'att-2', t0, LEASE_MS);
    const clock = new FakeClock();
    clock.t = t0 + 1000;
    // Both leases run until t0 + 10 min. The near run's heartbeat is fresh; the far
    // one was last heard of longer ago than a lease (a host cut off, its lease long renewed elsewhere).
    await store.reportRun('near:2:y', { sent: 0, sentLastMinute: 0 }, t0);
    await store.reportRun('far:1:x', { sent: 3, sentLastMinute: 0 }, t0 - LEASE_MS - 1000);
    const me = new Coordinator({ store, throttle: new Throttle(config, clock.now), now: clock.now, host: 'here', pid: 3, alive: () => true }, { campaignId: c, owner: 'me', leaseMs: LEASE_MS });
    expect(await me.reclaimDeadRuns()).toBe(1);
    expect(me.otherRuns()).toBe(1);
    const hosts = await me.hosts();
    expect(hosts.map((h) => [h.owner, h.state, h.outcome])).toEqual([
      ['far:1:x', 'lost', 'lost'],
      ['near:2:y', 'alive', undefined],
    ]);
    // The lost run's row is due now; the live run's is not.
    const due = await store.dueIds(c, 'a.test', clock.t, 10);
    expect(due).toContain(id1);
    expect(due).not.toContain(id2);
    const leased = await store.lease(id1 as number, 'me', 'att-3', clock.t, LEASE_MS);
    expect(leased).toMatchObject({ reclaimed: true, possibleDuplicate: true });
    expect(await store.lease(id2 as number, 'me', 'att-4', clock.t, LEASE_MS)).toBeUndefined();
    await store.close();
  });
});

// ---- PostgreSQL (CI runs PostgreSQL 15 on 127.0.0.1:5432, trust auth, database `test`)

const PG_BASE = process.env['MAILQ_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgSchemas: string[] = [];

afterAll(async () => {
  if (pgSchemas.length === 0) return;
  const c = new pg.Client({ connectionString: PG_BASE });
  await c.connect();
  try {
    for (const s of pgSchemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await c.end();
  }
});

/** A pool on a fresh schema holding the runs table (as PostgreSQL migration 2 makes it) and migration 3. */
async function pgPool(): Promise<pg.Pool> {
  const schema = `mailq_coord_${randomBytes(6).toString('hex')}`;
  pgSchemas.push(schema);
  const pool = new pg.Pool({ connectionString: PG_BASE, max: 8, options: `-c search_path=${schema}` });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(`CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, campaign_id BIGINT NOT NULL, owner TEXT NOT NULL UNIQUE, host TEXT NOT NULL,
    pid INTEGER NOT NULL, started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL, finished_at BIGINT, outcome TEXT, settings_json TEXT NOT NULL)`);
  await pool.query(PG_COORDINATION_MIGRATION);
  return pool;
}

describe('PostgreSQL: shared buckets on the database clock', () => {
  it('grants exactly the burst to 200 concurrent requests from 8 connections: no token taken twice', async () => {
    const pool = await pgPool();
    try {
      // 0.01/s: the refill during the test is far below one token.
      const l = { perSecond: 0.01, burst: 50 };
      const grants = await Promise.all(Array.from({ length: 200 }, () => pgTakeTokens(pool, 1, 'gmail', 1, l)));
      const granted = grants.reduce((a, g) => a + g.granted, 0);
      expect(granted).toBe(50);
      expect(grants.filter((g) => g.granted === 0).every((g) => g.waitMs > 90_000)).toBe(true);
      await pgReturnTokens(pool, 1, 'gmail', 10, l);
      expect((await pgTakeTokens(pool, 1, 'gmail', 20, l)).granted).toBe(10);
      // Another campaign has a bucket of its own.
      expect((await pgTakeTokens(pool, 2, 'gmail', 20, l)).granted).toBe(20);
    } finally {
      await pool.end();
    }
  });

  it('refills from the elapsed time at the rate, capped at the burst, the same as SQLite', async () => {
    const pool = await pgPool();
    try {
      const l = { perSecond: 20, burst: 20 };
      expect(await pgTakeTokens(pool, 1, 'k', 25, l)).toMatchObject({ granted: 20 });
      const t = Date.now();
      await new Promise((r) => setTimeout(r, 300));
      const g = await pgTakeTokens(pool, 1, 'k', 25, l);
      const elapsed = Date.now() - t;
      // ~300 ms at 20/s = 6 tokens; bounded by the wall time measured around it.
      expect(g.granted).toBeGreaterThanOrEqual(5);
      expect(g.granted).toBeLessThanOrEqual(Math.floor((elapsed * 20) / 1000) + 1);
      expect(g.waitMs).toBeGreaterThan(0);
      expect(g.waitMs).toBeLessThanOrEqual(50);
    } finally {
      await pool.end();
    }
  });

  it('reports runs with heartbeats on the database clock', async () => {
    const pool = await pgPool();
    try {
      // A run whose host clock is an hour behind: its stored start says so, its heartbeat age does not.
      const skewed = Date.now() - 3_600_000;
      await pool.query(`INSERT INTO runs (campaign_id, owner, host, pid, started_at, heartbeat_at, settings_json) VALUES (1, 'h9:9:z', 'h9', 9, $1, $1, '{}')`, [skewed]);
      await pgReportRun(pool, 'h9:9:z', { sent: 42, sentLastMinute: 7 });
      const [r] = await pgRunHealth(pool, 1, Date.now(), 60_000);
      expect(r).toMatchObject({ owner: 'h9:9:z', host: 'h9', pid: 9, sent: 42, sentLastMinute: 7, startedAt: skewed, finishedAt: undefined });
      expect(r?.heartbeatAgeMs).toBeLessThan(5_000);
    } finally {
      await pool.end();
    }
  });
});
