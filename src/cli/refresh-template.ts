import path from 'node:path';
import type { Command } from 'commander';
import { compileTemplate } from '../campaign/template/compile.js';
import { loadTemplateDir, snapshotHash } from '../campaign/template/snapshot.js';
import { out, requireCampaign, withStore } from './context.js';

export function registerRefreshTemplate(program: Command): void {
  program
    .command('refresh-template')
    .description("replace a campaign's template snapshot with the folder's current files")
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('-t, --template <dir>', 'template folder (default: the one the campaign was created from)')
    .action(async (flags: { campaign: string; template?: string }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        const dir = path.resolve(flags.template ?? campaign.templateSource);
        const snapshot = await loadTemplateDir(dir);
        compileTemplate(snapshot);
        const hash = snapshotHash(snapshot);
        if (hash === campaign.templateHash) {
          out(`campaign ${campaign.name}: template unchanged (${hash.slice(0, 12)})\n`);
          return;
        }
        await store.updateTemplate(campaign.id, JSON.stringify(snapshot), hash, dir);
        const counts = await store.countByState(campaign.id);
        out(`campaign ${campaign.name}: template ${campaign.templateHash.slice(0, 12)} -> ${hash.slice(0, 12)} from ${dir}\n`);
        if (counts.sent > 0) out(`  note: ${counts.sent} recipients were already sent the previous version\n`);
      });
    });
}
