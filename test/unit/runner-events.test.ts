/**
 * The engine's own events for the operator: the runner, on a real SQLite
 * store with a scripted transport, announces a throttled domain and later
 * its recovery (domain-throttled, then domain-resumed), and the operator's
 * pause (leasing-paused / leasing-resumed, `paused` in progress events)
 * while leasing nothing new.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultBackoff } from '../../src/engine/backoff.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { defaultThrottleConfig } from '../../src/engine/providers.js';
import { Runner } from '../../src/engine/runner.js';
import { Throttle } from '../../src/engine/throttle.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Transport, TransportResult } from '../../src/transport/types.js';

async function campaignOf(count: number): Promise<{ store: SqliteStore; campaign: Awaited<ReturnType<SqliteStore['createCampaign']>> }> {
  const store = new SqliteStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-runner-')), 'm.db'));
  const campaign = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
  const run = await store.beginImport(campaign.id, '/list.csv', ['email']);
  const rows = Array.from({ length: count }, (_, i) => ({ line: i + 2, address: `u${i}@thr.test`, addressKey: `u${i}@thr.test`, domain: 'thr.test', varsJson: '[null]' }));
  await store.insertBatch(run, rows, []);
  await store.finishImport(run.id, { rejected: 0, total: count });
  await store.prepareForSending();
  return { store, campaign };
}

/** Answers from a script, then 250 for ever, each after `delayMs`. */
function scripted(replies: TransportResult[], sent: string[], delayMs = 0): Transport {
  return {
    description: 'scripted',
    maxConnections: 2,
    send: async (m) => {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      sent.push(m.to);
      return replies.shift() ?? { ok: true, code: 250, reply: '250 2.0.0 ok' };
    },
    openConnections: () => 0,
    abortAll: () => undefined,
    close: () => Promise.resolve(),
  };
}

function runnerFor(store: SqliteStore, campaign: Awaited<ReturnType<SqliteStore['createCampaign']>>, transport: Transport, events: EngineEvent[], ahead = 0): Runner {
  // Recovery in one step 30 ms after the halving, so the domain opens again within the run.
  const throttle = new Throttle(defaultThrottleConfig(), Date.now, { coolDownMs: 30, recoveryIntervalMs: 1, recoveryStep: 1 });
  return new Runner(
    {
      store,
      transport,
      throttle,
      now: Date.now,
      random: () => 0.5,
      compose: (m) => Promise.resolve({ ok: true, raw: Buffer.from('Subject: x\r\n\r\nx\r\n'), message: { subject: 'x', from: 'a@b.test', headers: [], text: 'x', textDerived: false }, messageId: `<${m.id}@t>`, envelopeFrom: 'a@b.test' }),
      emit: (e) => events.push(e),
    },
    {
      campaign,
      owner: 'test:1',
      concurrency: 2,
      ahead,
      leaseMs: 60_000,
      limit: undefined,
      policy: { maxAttempts: 5, maxAgeMs: 3_600_000, backoff: { ...defaultBackoff, initialMs: 10, maxMs: 20 }, resendAmbiguous: true, throttleDelayMs: 10 },
      campaignStartedAt: Date.now(),
      breakerThreshold: 10,
      progressEveryMs: 20,
    },
  );
}

describe('runner events', () => {
  it('announces a throttled domain, then its recovery, and finishes every message', async () => {
    const { store, campaign } = await campaignOf(40);
    await store.startRun(campaign.id, { owner: 'test:1', host: os.hostname(), pid: process.pid, settingsJson: '{}' });
    const events: EngineEvent[] = [];
    const sent: string[] = [];
    const throttled: TransportResult = { ok: false, stage: 'rcpt', code: 421, reply: '421 4.7.28 unusual rate of mail, try later', errorCode: undefined, bodyWritten: false, message: 'throttled' };
    const outcome = await runnerFor(store, campaign, scripted([throttled], sent, 5), events).run();
    expect(outcome).toEqual({ kind: 'finished' });
    const types = events.map((e) => e.type);
    const down = types.indexOf('domain-throttled');
    const up = types.indexOf('domain-resumed');
    expect(down).toBeGreaterThanOrEqual(0);
    expect(up).toBeGreaterThan(down);
    expect(events[up]).toMatchObject({ type: 'domain-resumed', key: 'thr.test' });
    expect((await store.countByState(campaign.id)).sent).toBe(40);
    await store.close();
  });

  it('pauses leasing on request: events, progress flag, and nothing new sent until resumed', async () => {
    const { store, campaign } = await campaignOf(30);
    await store.startRun(campaign.id, { owner: 'test:1', host: os.hostname(), pid: process.pid, settingsJson: '{}' });
    const events: EngineEvent[] = [];
    const sent: string[] = [];
    const runner = runnerFor(store, campaign, scripted([], sent, 10), events);
    const done = runner.run();
    while (sent.length < 4) await new Promise((r) => setTimeout(r, 5));
    runner.setPaused(true);
    expect(runner.isPaused()).toBe(true);
    // In-flight messages (2 at most) may still finish; nothing else starts.
    await new Promise((r) => setTimeout(r, 300));
    const atPause = sent.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.length).toBe(atPause);
    expect(events.some((e) => e.type === 'progress' && e.paused)).toBe(true);
    runner.setPaused(false);
    expect(await done).toEqual({ kind: 'finished' });
    expect(sent).toHaveLength(30);
    const types = events.map((e) => e.type);
    expect(types.indexOf('leasing-resumed')).toBeGreaterThan(types.indexOf('leasing-paused'));
    expect(types.filter((t) => t === 'leasing-paused')).toHaveLength(1);
    await store.close();
  });

  it('leases and composes messages ahead of the connections, never more than `concurrency` on the wire, and hands the waiting ones back on a stop', async () => {
    const { store, campaign } = await campaignOf(40);
    await store.startRun(campaign.id, { owner: 'test:1', host: os.hostname(), pid: process.pid, settingsJson: '{}' });
    const events: EngineEvent[] = [];
    let onWire = 0;
    let maxOnWire = 0;
    let maxLeased = 0;
    let sends = 0;
    const held: { runner?: Runner } = {};
    const transport: Transport = {
      ...scripted([], []),
      send: async () => {
        onWire++;
        sends++;
        maxOnWire = Math.max(maxOnWire, onWire);
        maxLeased = Math.max(maxLeased, (await store.countByState(campaign.id)).sending);
        await new Promise((r) => setTimeout(r, 5));
        onWire--;
        // A stop while two messages wait, leased and composed, for the wire.
        if (sends === 10) held.runner?.requestStop('signal', 'stop');
        return { ok: true, code: 250, reply: '250 2.0.0 ok' };
      },
    };
    held.runner = runnerFor(store, campaign, transport, events, 2);
    const outcome = await held.runner.run();
    expect(outcome).toMatchObject({ kind: 'stopped', reason: 'signal' });
    expect(maxOnWire).toBe(2);
    // 2 on the wire and 2 waiting: the connections never wait for a lease or a compose.
    expect(maxLeased).toBe(4);
    const counts = await store.countByState(campaign.id);
    // What went out is sent; the messages waiting at the stop are back in the queue, not sent, not flagged.
    expect(counts).toMatchObject({ sent: sends, sending: 0, queued: 40 - sends });
    // The 10th and at most one more were on the wire when the stop came; the two waiting never went out.
    expect(sends).toBeLessThanOrEqual(11);
    expect(await store.countPossibleDuplicates(campaign.id)).toBe(0);
    await store.close();
  });
});
