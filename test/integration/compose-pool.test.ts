/**
 * The compose threads (the built dist/engine/compose-pool.js, since the
 * worker file is compiled output): a batch of requests made together comes
 * back byte for byte what the main thread builds, spread over the threads,
 * and a recipient whose render fails fails alone.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { composeMessage } from '../../src/engine/compose.js';
import { compileCampaign } from '../../src/campaign/check.js';
import { loadTemplateDir } from '../../src/campaign/template/snapshot.js';
import type { Campaign, MessageRow } from '../../src/store/types.js';
import type { ComposedForSend } from '../../src/engine/compose.js';

interface Pool {
  compose(row: MessageRow, dateMs: number): Promise<ComposedForSend>;
  close(): Promise<void>;
}
const { ComposePool } = (await import(path.resolve('dist/engine/compose-pool.js'))) as { ComposePool: new (c: Campaign, threads: number) => Pool };

const DATE = Date.UTC(2026, 10, 29, 12, 0, 0);

function row(i: number, vars: Record<string, string>): MessageRow {
  const address = `user${i}@d${i % 3}.example.com`;
  return { id: i, campaignId: 1, line: i + 2, source: 'list.csv', address, addressKey: address, domain: `d${i % 3}.example.com`, vars, state: 'sending', attempts: 0 };
}

describe('compose pool (2 threads)', () => {
  it('answers a batch with the same bytes the main thread builds, and fails a bad row alone', async () => {
    const snapshot = await loadTemplateDir(path.resolve('templates/newsletter'));
    const campaign: Campaign = { id: 1, name: 'pool', createdAt: 0, status: 'sending', templateJson: JSON.stringify(snapshot), templateHash: 'h', templateSource: 'templates/newsletter', vars: {} };
    const template = compileCampaign(campaign);
    const rows = Array.from({ length: 12 }, (_, i) => row(i, { first_name: `F${i}`, last_name: `L${i}`, plan: 'pro', city: `C${i}` }));
    // Row 5 lacks the variables the template needs: a render failure, not a pool failure.
    rows[5] = row(5, {});
    const pool = new ComposePool(campaign, 2);
    try {
      // Asked in one go, as the runner launches the leases of one commit.
      const got = await Promise.all(rows.map((r) => pool.compose(r, DATE)));
      for (const [i, r] of rows.entries()) {
        const want = await composeMessage(template, campaign, r, new Date(DATE));
        const g = got[i];
        if (i === 5) {
          expect(want.ok).toBe(false);
          expect(g).toMatchObject({ ok: false, reason: 'undefined-variable' });
          continue;
        }
        if (!want.ok || g === undefined || !g.ok) throw new Error(`row ${i} did not compose`);
        expect(g.raw.equals(want.raw)).toBe(true);
        expect(g.messageId).toBe(want.messageId);
        expect(g.envelopeFrom).toBe('news@acme.test');
      }
    } finally {
      await pool.close();
    }
    // Closed: refuses instead of hanging.
    await expect(pool.compose(rows[0] as MessageRow, DATE)).rejects.toThrow(/closed/);
  });
});
