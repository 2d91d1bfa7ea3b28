import { describe, expect, it } from 'vitest';
import type { OutcomeUpdate, RecipientInsert, Store } from '../../src/store/types.js';

/** Leasing and outcome behaviour every backend must share (see contract.ts). */
export function sendStoreContract(name: string, fresh: () => Promise<Store>): void {
  const recipient = (i: number, domain: string): RecipientInsert => ({
    line: i + 2,
    address: `u${i}@${domain}`,
    addressKey: `u${i}@${domain}`,
    domain,
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
}
