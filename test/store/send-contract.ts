import { describe, expect, it } from 'vitest';
import type { OutcomeUpdate, RecipientInsert, Store } from '../../src/store/types.js';

/** Leasing and outcome behaviour every backend must share (see contract.ts). */
export function sendStoreContract(name: string, fresh: () => Promise<Store>): void {
  const recipient = (i: number, domain: string): RecipientInsert => ({
    line: i + 2,
    address: `u${i}@${domain}`,
    varsJson: JSON.stringify([`u${i}@${domain}`]),
  });

  async function seeded(): Promise<{ store: Store; campaignId: number }> {
    const store = await fresh();
    const c = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
    const run = await store.beginImport(c.id, '/a.csv', ['email']);
    await store.insertBatch(run, [recipient(1, 'a.test'), recipient(2, 'a.test'), recipient(3, 'b.test')], []);
    await store.finishImport(run.id, { rejected: 0, total: 3 });
    await store.prepareForSending();
    return { store, campaignId: c.id };
  }

  const outcome = (messageId: number, attemptId: string, next: OutcomeUpdate['next'], extra: Partial<OutcomeUpdate> = {}): OutcomeUpdate => ({
    messageId,
    attemptId,
    runOwner: 'run-1',
    startedAt: 1000,
    finishedAt: 1100,
    stage: 'body',
    code: 250,
    enhanced: '2.0.0',
    category: 'sent',
    rule: 'class-2xx',
    reply: '250 2.0.0 OK queued as X',
    bodyWritten: true,
    flagPossibleDuplicate: false,
    next,
    ...extra,
  });

  describe(`Send store contract: ${name}`, () => {
    it('lists due domains and ids, and leases a row exactly once', async () => {
      const { store, campaignId } = await seeded();
      expect(await store.dueDomains(campaignId, 1000)).toEqual([
        { domain: 'a.test', due: 2 },
        { domain: 'b.test', due: 1 },
      ]);
      const ids = await store.dueIds(campaignId, 'a.test', 1000, 10);
      expect(ids).toHaveLength(2);
      const id = ids[0] as number;
      const first = await store.lease(id, 'run-1', 'att-1', 1000, 60_000);
      expect(first?.address).toBe('u1@a.test');
      expect(first?.reclaimed).toBe(false);
      expect(await store.lease(id, 'run-2', 'att-2', 1001, 60_000)).toBeUndefined();
      expect(await store.dueIds(campaignId, 'a.test', 1000, 10)).toHaveLength(1);
      expect((await store.countByState(campaignId)).sending).toBe(1);
      await store.close();
    });

    it('commits an outcome only for the attempt that holds the lease', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'a.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      expect(await store.recordOutcome(outcome(id as number, 'stale-attempt', { state: 'sent', smtpMessageId: '<x@y>' }))).toBe(false);
      expect((await store.countByState(campaignId)).sent).toBe(0);
      expect(await store.recordOutcome(outcome(id as number, 'att-1', { state: 'sent', smtpMessageId: '<x@y>' }))).toBe(true);
      expect((await store.countByState(campaignId)).sent).toBe(1);
      // A second commit for the same attempt changes nothing.
      expect(await store.recordOutcome(outcome(id as number, 'att-1', { state: 'deferred', nextAttemptAt: 5000, countsAttempt: true }))).toBe(false);
      await store.close();
    });

    it('defers to a later time, then the row is due again', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      await store.recordOutcome(outcome(id as number, 'att-1', { state: 'deferred', nextAttemptAt: 9000, countsAttempt: true }, { category: 'retry', code: 451 }));
      expect(await store.dueIds(campaignId, 'b.test', 5000, 10)).toEqual([]);
      expect(await store.nextDueAt(campaignId)).toBe(0);
      expect(await store.dueIds(campaignId, 'b.test', 9000, 10)).toEqual([id]);
      const again = await store.lease(id as number, 'run-1', 'att-2', 9000, 60_000);
      expect(again?.attempts).toBe(1);
      await store.close();
    });

    it('a released row keeps its attempts and goes back to its queue', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      expect(await store.recordOutcome(outcome(id as number, 'att-1', { state: 'released', nextAttemptAt: 0 }))).toBe(true);
      const counts = await store.countByState(campaignId);
      expect(counts.queued).toBe(3);
      expect((await store.lease(id as number, 'run-1', 'att-2', 1000, 60_000))?.attempts).toBe(0);
      await store.close();
    });

    it('unlease hands a never-sent message back as it was, and only for the attempt holding it', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      await store.recordOutcome(outcome(id as number, 'att-1', { state: 'deferred', nextAttemptAt: 2000, countsAttempt: true }, { category: 'retry', code: 451 }));
      await store.lease(id as number, 'run-1', 'att-2', 2000, 60_000);
      expect(await store.unlease(id as number, 'att-1', 2001)).toBe(false);
      expect((await store.countByState(campaignId)).sending).toBe(1);
      expect(await store.unlease(id as number, 'att-2', 2001)).toBe(true);
      expect(await store.unlease(id as number, 'att-2', 2001)).toBe(false);
      const counts = await store.countByState(campaignId);
      expect(counts).toMatchObject({ sending: 0, deferred: 1, queued: 2 });
      // Due as before: the next lease sees the one real attempt and no duplicate flag.
      expect(await store.dueIds(campaignId, 'b.test', 2000, 10)).toContain(id);
      const again = await store.lease(id as number, 'run-1', 'att-3', 2000, 60_000);
      expect(again?.attempts).toBe(1);
      expect(again?.possibleDuplicate).toBe(false);
      await store.close();
    });

    it('fails into the failures table with the verbatim reply, and suppresses bad recipients', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      const reply = '550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 https://support.google.com';
      await store.recordOutcome(outcome(id as number, 'att-1', { state: 'failed', reason: 'bad-recipient', suppress: true, countsAttempt: true }, {
        category: 'bad-recipient', code: 550, enhanced: '5.1.1', reply, stage: 'rcpt', bodyWritten: false,
      }));
      const failures = [];
      for await (const f of store.listFailures(campaignId)) failures.push(f);
      expect(failures).toEqual([{ address: 'u3@b.test', category: 'bad-recipient', reason: 'bad-recipient', code: 550, enhanced: '5.1.1', reply, attempts: 1, at: 1100 }]);
      expect(await store.isSuppressed('u3@b.test')).toBe(true);
      await store.close();
    });

    it('takes over an expired lease and flags the row as a possible duplicate', async () => {
      const { store, campaignId } = await seeded();
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'dead-run', 'att-1', 1000, 60_000);
      expect(await store.dueIds(campaignId, 'b.test', 2000, 10)).toEqual([]);
      expect(await store.dueIds(campaignId, 'b.test', 61_001, 10)).toEqual([id]);
      const taken = await store.lease(id as number, 'run-2', 'att-2', 61_001, 60_000);
      expect(taken?.reclaimed).toBe(true);
      expect(taken?.possibleDuplicate).toBe(true);
      expect(await store.countPossibleDuplicates(campaignId)).toBe(1);
      // The dead run's late commit is refused.
      expect(await store.recordOutcome(outcome(id as number, 'att-1', { state: 'sent', smtpMessageId: '<a@b>' }))).toBe(false);
      await store.close();
    });

    it('expires the leases of a run known to be dead', async () => {
      const { store, campaignId } = await seeded();
      await store.startRun(campaignId, { owner: 'dead-run', host: 'h', pid: 1, settingsJson: '{}' });
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'dead-run', 'att-1', 1000, 600_000);
      expect((await store.openRuns(campaignId)).map((r) => r.owner)).toEqual(['dead-run']);
      expect(await store.expireLeasesOf('dead-run', 2000)).toBe(1);
      expect(await store.dueIds(campaignId, 'b.test', 2000, 10)).toEqual([id]);
      await store.finishRun('dead-run', 'lost');
      expect(await store.openRuns(campaignId)).toEqual([]);
      await store.close();
    });

    it('persists domain state and campaign settings', async () => {
      const { store, campaignId } = await seeded();
      await store.saveDomainState(campaignId, [{ key: 'google', statusJson: '{"kind":"open"}', rateFactor: 0.5 }]);
      await store.saveDomainState(campaignId, [{ key: 'google', statusJson: '{"kind":"paused"}', rateFactor: 0.25 }]);
      expect(await store.loadDomainState(campaignId)).toEqual([{ key: 'google', statusJson: '{"kind":"paused"}', rateFactor: 0.25 }]);
      await store.setCampaignSettings(campaignId, '{"transport":"smtp://127.0.0.1:2525"}');
      expect(await store.campaignSettings(campaignId)).toBe('{"transport":"smtp://127.0.0.1:2525"}');
      await store.setCampaignStatus(campaignId, 'sending');
      expect((await store.getCampaign('c'))?.status).toBe('sending');
      await store.close();
    });
  });

  // ---- History: trace and retry
  describe(`History store contract: ${name}`, () => {
    async function failAll(store: Store, campaignId: number): Promise<Record<string, number>> {
      const ids: Record<string, number> = {};
      for (const domain of ['a.test', 'b.test']) {
        for (const id of await store.dueIds(campaignId, domain, 1000, 10)) {
          const m = await store.lease(id, 'run-1', `att-${id}`, 1000, 60_000);
          if (m !== undefined) ids[m.address] = id;
        }
      }
      const failed = (reason: string, suppress: boolean): OutcomeUpdate['next'] => ({ state: 'failed', reason, suppress, countsAttempt: true });
      await store.recordOutcome(outcome(ids['u1@a.test'] ?? 0, `att-${ids['u1@a.test'] ?? 0}`, failed('expired', false), { category: 'retry', code: 451, stage: 'rcpt', bodyWritten: false }));
      await store.recordOutcome(outcome(ids['u2@a.test'] ?? 0, `att-${ids['u2@a.test'] ?? 0}`, failed('render: header-injection', false), {
        category: 'message-rejected', code: undefined, stage: undefined, rule: 'render-header-injection', bodyWritten: false,
      }));
      await store.recordOutcome(outcome(ids['u3@b.test'] ?? 0, `att-${ids['u3@b.test'] ?? 0}`, failed('bad-recipient', true), { category: 'bad-recipient', code: 550, stage: 'rcpt', bodyWritten: false }));
      return ids;
    }

    it('gives a recipient\'s history: import, attempts in order with the back-off chosen and the run host, final state', async () => {
      const { store, campaignId } = await seeded();
      await store.startRun(campaignId, { owner: 'run-1', host: 'host-1', pid: 1, settingsJson: '{}' });
      const [id] = await store.dueIds(campaignId, 'b.test', 1000, 1);
      await store.lease(id as number, 'run-1', 'att-1', 1000, 60_000);
      await store.recordOutcome(outcome(id as number, 'att-1', { state: 'deferred', nextAttemptAt: 1600, countsAttempt: true }, {
        category: 'retry', code: 451, enhanced: '4.3.0', stage: 'rcpt', rule: 'class-4xx', reply: '451 4.3.0 try again', bodyWritten: false,
      }));
      await store.lease(id as number, 'run-2', 'att-2', 1600, 60_000);
      await store.recordOutcome(outcome(id as number, 'att-2', { state: 'sent', smtpMessageId: '<x@y>' }, { runOwner: 'run-2', startedAt: 1600, finishedAt: 1700 }));

      const h = await store.recipientHistory(campaignId, 'u3@b.test');
      expect(h?.message).toMatchObject({ address: 'u3@b.test', line: 5, source: '/a.csv', state: 'sent', attempts: 2 });
      expect(h?.importRun).toMatchObject({ source: '/a.csv', status: 'complete', startedAt: expect.any(Number) as number });
      expect(h?.attempts).toEqual([
        {
          attemptId: 'att-1', runOwner: 'run-1', runHost: 'host-1', startedAt: 1000, finishedAt: 1100, stage: 'rcpt', code: 451, enhanced: '4.3.0',
          category: 'retry', rule: 'class-4xx', reply: '451 4.3.0 try again', bodyWritten: false, nextState: 'deferred', delayMs: 500,
        },
        {
          // run-2 never registered in runs: its host is unknown, the attempt is still listed.
          attemptId: 'att-2', runOwner: 'run-2', runHost: undefined, startedAt: 1600, finishedAt: 1700, stage: 'body', code: 250, enhanced: '2.0.0',
          category: 'sent', rule: 'class-2xx', reply: '250 2.0.0 OK queued as X', bodyWritten: true, nextState: 'sent', delayMs: undefined,
        },
      ]);
      expect(h).toMatchObject({ smtpMessageId: '<x@y>', sentAt: 1700, possibleDuplicate: false, failure: undefined, leaseOwner: undefined });
      expect(await store.recipientHistory(campaignId, 'nobody@b.test')).toBeUndefined();
      const queued = await store.recipientHistory(campaignId, 'u1@a.test');
      expect(queued?.attempts).toEqual([]);
      expect(queued?.message.state).toBe('queued');
      await store.close();
    });

    it('finds rejected rows containing an address, case-insensitively, with LIKE wildcards taken literally', async () => {
      const store = await fresh();
      const c = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
      const run = await store.beginImport(c.id, '/a.csv', ['email']);
      await store.insertBatch(run, [], [
        { line: 2, raw: 'Tim <Tim@Example.com>', reason: 'display-name', message: 'm' },
        { line: 3, raw: 'a_b@x.test,1,2', reason: 'ragged-row', message: 'm' },
        { line: 4, raw: 'axb@x.test,1,2', reason: 'ragged-row', message: 'm' },
      ]);
      await store.finishImport(run.id, { rejected: 3, total: 3 });
      expect((await store.findRejects(c.id, 'tim@example.com')).map((r) => [r.line, r.raw])).toEqual([[2, 'Tim <Tim@Example.com>']]);
      expect((await store.findRejects(c.id, 'a_b@x.test')).map((r) => r.line)).toEqual([3]);
      expect(await store.findRejects(c.id, '%')).toEqual([]);
      const [hit] = await store.findRejects(c.id, 'axb@');
      expect(hit).toMatchObject({ source: '/a.csv', line: 4, reason: 'ragged-row', message: 'm', importedAt: expect.any(Number) as number });
      expect(await store.getSuppression('tim@example.com')).toBeUndefined();
      await store.addSuppression('tim@example.com', 'manual');
      expect(await store.getSuppression('tim@example.com')).toEqual({ reason: 'manual', createdAt: expect.any(Number) as number });
      await store.close();
    });

    it('re-queues failed recipients by category in one go; suppressed ones only when asked, lifting the suppression', async () => {
      const { store, campaignId } = await seeded();
      await store.setCampaignStatus(campaignId, 'finished');
      const ids = await failAll(store, campaignId);
      const all = { categories: undefined, includeSuppressed: false, dryRun: false, settingsJson: undefined };

      expect(await store.requeueFailed(campaignId, { ...all, dryRun: true })).toEqual({
        requeued: { retry: 1, render: 1 }, keptSuppressed: { 'bad-recipient': 1 }, unsuppressed: 0,
      });
      expect((await store.countByState(campaignId)).failed).toBe(3);
      expect((await store.getCampaign('c'))?.status).toBe('finished');

      expect(await store.requeueFailed(campaignId, { ...all, categories: ['render'], settingsJson: '{"flags":{}}' })).toEqual({
        requeued: { render: 1 }, keptSuppressed: {}, unsuppressed: 0,
      });
      expect(await store.countByState(campaignId)).toMatchObject({ failed: 2, queued: 1 });
      expect((await store.getCampaign('c'))?.status).toBe('paused');
      expect(await store.campaignSettings(campaignId)).toBe('{"flags":{}}');
      const left = [];
      for await (const f of store.listFailures(campaignId)) left.push(f.address);
      expect(left).toEqual(['u1@a.test', 'u3@b.test']);
      // The attempts budget starts again; the attempts log keeps the failed try.
      expect((await store.lease(ids['u2@a.test'] ?? 0, 'run-2', 'att-x', 2000, 60_000))?.attempts).toBe(0);
      expect((await store.recipientHistory(campaignId, 'u2@a.test'))?.attempts.map((a) => a.nextState)).toEqual(['failed']);

      expect(await store.requeueFailed(campaignId, { ...all, categories: ['bad-recipient'] })).toEqual({
        requeued: {}, keptSuppressed: { 'bad-recipient': 1 }, unsuppressed: 0,
      });
      expect(await store.isSuppressed('u3@b.test')).toBe(true);
      expect(await store.requeueFailed(campaignId, { ...all, includeSuppressed: true })).toEqual({
        requeued: { retry: 1, 'bad-recipient': 1 }, keptSuppressed: {}, unsuppressed: 1,
      });
      expect(await store.isSuppressed('u3@b.test')).toBe(false);
      expect(await store.countByState(campaignId)).toMatchObject({ failed: 0, queued: 2, sending: 1 });
      expect(await store.dueIds(campaignId, 'b.test', 2000, 10)).toEqual([ids['u3@b.test']]);
      expect(await store.requeueFailed(campaignId, all)).toEqual({ requeued: {}, keptSuppressed: {}, unsuppressed: 0 });
      await store.close();
    });
  });
}
