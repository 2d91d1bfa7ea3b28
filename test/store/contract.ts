import { describe, expect, it } from 'vitest';
import type { RecipientInsert, Store } from '../../src/store/types.js';

/**
 * The behaviour every Store backend must share. Each backend's test file calls
 * this with a factory giving a fresh, empty store per test.
 */
export function storeContract(name: string, fresh: () => Promise<Store>): void {
  const newCampaign = (store: Store, campaign = 'c1') =>
    store.createCampaign({ name: campaign, templateJson: '{}', templateHash: 'h1', templateSource: '/tpl', vars: { product: 'mailq' } });

  const recipient = (i: number, domain = 'example.com'): RecipientInsert => ({
    line: i + 2,
    address: `User${i}@${domain}`,
    varsJson: JSON.stringify([`User${i}@${domain}`, String(i)]),
  });

  describe(`Store contract: ${name}`, () => {
    it('creates and finds campaigns, with their variables', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      expect(c.name).toBe('c1');
      expect(c.status).toBe('draft');
      expect((await store.getCampaign('c1'))?.vars).toEqual({ product: 'mailq' });
      expect(await store.getCampaign('nope')).toBeUndefined();
      await store.setCampaignVars(c.id, { product: 'x', version: '1' });
      expect((await store.getCampaign('c1'))?.vars).toEqual({ product: 'x', version: '1' });
      await expect(newCampaign(store)).rejects.toThrow();
      await store.close();
    });

    it('imports in batches, ignores duplicates and tallies what the run added', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const run = await store.beginImport(c.id, '/data/a.csv', ['email', 'n']);
      expect(run.resumed).toBe(false);
      await store.insertBatch(run, [recipient(1), recipient(2)], []);
      // Between batches, as the import calls it: changes nothing visible.
      await store.importEndInSight(run.id);
      await store.insertBatch(run, [recipient(2), recipient(3)], [{ line: 9, raw: 'x', reason: 'missing-at', message: 'm' }]);
      expect(await store.pendingImports(c.id)).toHaveLength(1);
      const tally = await store.finishImport(run.id, { rejected: 1, total: 5 });
      expect(tally).toEqual({ imported: 3, duplicates: 1, suppressed: 0 });
      expect(await store.pendingImports(c.id)).toHaveLength(0);
      expect(await store.campaignColumns(c.id)).toEqual(['email', 'n']);
      const counts = await store.countByState(c.id);
      expect(counts.queued).toBe(3);
      expect(counts.sent).toBe(0);
      await store.close();
    });

    it('keeps the lowest line of an address within a run, whichever batch came first', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const run = await store.beginImport(c.id, '/data/a.csv', ['email', 'n']);
      const at = (i: number, line: number, n: string): RecipientInsert => ({ ...recipient(i), line, varsJson: JSON.stringify([null, n]) });
      // A later part of the file arrives first, with a duplicate inside it too.
      await store.insertBatch(run, [at(1, 900, 'late'), at(2, 901, 'two'), at(1, 950, 'later')], []);
      await store.insertBatch(run, [at(1, 5, 'early'), at(3, 6, 'three')], []);
      expect(await store.finishImport(run.id, { rejected: 0, total: 5 })).toEqual({ imported: 3, duplicates: 2, suppressed: 0 });
      const seen = new Map<string, { line: number; n: string | undefined }>();
      for await (const m of store.iterateMessages(c.id)) seen.set(m.addressKey, { line: m.line, n: m.vars.n });
      expect(seen.get('user1@example.com')).toEqual({ line: 5, n: 'early' });
      expect(seen.get('user2@example.com')?.line).toBe(901);
      // Another run never replaces a row it did not write, even from an earlier line.
      const again = await store.beginImport(c.id, '/data/b.csv', ['email', 'n']);
      await store.insertBatch(again, [at(2, 2, 'other file')], []);
      expect(await store.finishImport(again.id, { rejected: 0, total: 1 })).toEqual({ imported: 0, duplicates: 1, suppressed: 0 });
      const after = new Map<string, number>();
      for await (const m of store.iterateMessages(c.id)) after.set(m.addressKey, m.line);
      expect(after.get('user2@example.com')).toBe(901);
      await store.close();
    });

    it('resumes an interrupted run for the same source, and counts its earlier rows as imported', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const first = await store.beginImport(c.id, '/data/a.csv', ['email']);
      await store.insertBatch(first, [recipient(1)], []);
      const again = await store.beginImport(c.id, '/data/a.csv', ['email']);
      expect(again.id).toBe(first.id);
      expect(again.resumed).toBe(true);
      await store.insertBatch(again, [recipient(1), recipient(2)], []);
      expect(await store.finishImport(again.id, { rejected: 0, total: 2 })).toEqual({ imported: 2, duplicates: 0, suppressed: 0 });
      const other = await store.beginImport(c.id, '/data/a.csv', ['email']);
      expect(other.id).not.toBe(first.id);
      await store.close();
    });

    it('aborting a run removes exactly what it inserted, and an empty new campaign can be dropped', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const ok = await store.beginImport(c.id, '/data/a.csv', ['email']);
      await store.insertBatch(ok, [recipient(1)], []);
      await store.finishImport(ok.id, { rejected: 0, total: 1 });
      const bad = await store.beginImport(c.id, '/data/b.csv', ['email']);
      await store.insertBatch(bad, [recipient(1), recipient(2), recipient(3)], [{ line: 4, raw: 'x', reason: 'r', message: 'm' }]);
      await store.abortImport(bad.id);
      expect((await store.countByState(c.id)).queued).toBe(1);
      expect(await store.countRejects(c.id)).toBe(0);
      expect(await store.pendingImports(c.id)).toHaveLength(0);
      expect(await store.deleteEmptyCampaign(c.id)).toBe(false);

      const c2 = await newCampaign(store, 'c2');
      const r2 = await store.beginImport(c2.id, '/data/c.csv', ['email']);
      await store.insertBatch(r2, [recipient(5)], []);
      await store.abortImport(r2.id);
      expect(await store.deleteEmptyCampaign(c2.id)).toBe(true);
      expect(await store.getCampaign('c2')).toBeUndefined();
      await store.close();
    });

    it('streams recipients and rejects in import order across pages', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const run = await store.beginImport(c.id, '/data/a.csv', ['email', 'n']);
      const batch = Array.from({ length: 2500 }, (_, i) => recipient(i));
      const rejects = Array.from({ length: 1200 }, (_, i) => ({ line: 10_000 + i, raw: `r${i}`, reason: 'missing-at', message: 'm' }));
      await store.insertBatch(run, batch, rejects);
      await store.finishImport(run.id, { rejected: 1200, total: 3700 });
      const seen: number[] = [];
      for await (const m of store.iterateMessages(c.id)) seen.push(Number(m.vars['n']));
      expect(seen).toEqual(batch.map((_, i) => i));
      let n = 0;
      for await (const r of store.listRejects(c.id)) {
        expect(r.line).toBe(10_000 + n);
        expect(r.source).toBe('/data/a.csv');
        n++;
      }
      expect(n).toBe(1200);
      expect(await store.countRejects(c.id)).toBe(1200);
      let none = 0;
      for await (const _ of store.iterateMessages(c.id, { states: ['sent'] })) none++;
      expect(none).toBe(0);
      await store.close();
    });

    it('finds a recipient by key and by position', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      const run = await store.beginImport(c.id, '/data/a.csv', ['email', 'n']);
      await store.insertBatch(run, [recipient(7), recipient(8)], []);
      await store.finishImport(run.id, { rejected: 0, total: 2 });
      const byKey = await store.findMessageByKey(c.id, 'user8@example.com');
      expect(byKey?.address).toBe('User8@example.com');
      expect(byKey?.line).toBe(10);
      expect(byKey?.source).toBe('/data/a.csv');
      expect(byKey?.state).toBe('queued');
      // The store derives the key and the domain from the address (RecipientInsert).
      expect(byKey?.addressKey).toBe('user8@example.com');
      expect(byKey?.domain).toBe('example.com');
      expect((await store.findMessageByPosition(c.id, 1))?.addressKey).toBe('user7@example.com');
      expect(await store.findMessageByPosition(c.id, 3)).toBeUndefined();
      expect(await store.findMessageByPosition(c.id, 0)).toBeUndefined();
      await store.close();
    });

    it('imports suppressed addresses straight into the suppressed state', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      await store.addSuppression('user2@example.com', 'bad-recipient');
      expect(await store.isSuppressed('user2@example.com')).toBe(true);
      const run = await store.beginImport(c.id, '/data/a.csv', ['email']);
      await store.insertBatch(run, [recipient(1), recipient(2)], []);
      expect((await store.finishImport(run.id, { rejected: 0, total: 2 })).suppressed).toBe(1);
      const counts = await store.countByState(c.id);
      expect(counts.queued).toBe(1);
      expect(counts.suppressed).toBe(1);
      await store.close();
    });

    it('lists campaigns with counts and pending imports', async () => {
      const store = await fresh();
      const c = await newCampaign(store);
      await store.beginImport(c.id, '/data/a.csv', ['email']);
      const list = await store.listCampaigns();
      expect(list).toHaveLength(1);
      expect(list[0]?.pendingImports).toBe(1);
      await store.close();
    });
  });
}
