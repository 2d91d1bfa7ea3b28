import type { Command } from 'commander';
import { renderTable } from '../report/table.js';
import { messageStates } from '../store/types.js';
import { out, withStore } from './context.js';

/** `mailq campaigns`: every campaign in the database with its counts, oldest first. */

interface CampaignLine {
  readonly campaign: string;
  readonly status: string;
  readonly created_at: string;
  readonly total: number;
  readonly queued: number;
  readonly sending: number;
  readonly deferred: number;
  readonly sent: number;
  readonly failed: number;
  readonly suppressed: number;
  readonly cancelled: number;
  readonly possible_duplicates: number;
  readonly pending_imports: number;
  readonly rejected: number;
}

export function registerCampaigns(program: Command): void {
  program
    .command('campaigns')
    .description('list campaigns with status, counts by state, pending imports and possible duplicates')
    .option('--json', 'print a JSON array on stdout')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const lines: CampaignLine[] = [];
        for (const s of await store.listCampaigns()) {
          const c = s.counts;
          lines.push({
            campaign: s.campaign.name,
            status: s.campaign.status,
            created_at: new Date(s.campaign.createdAt).toISOString(),
            total: messageStates.reduce((n, state) => n + c[state], 0),
            queued: c.queued,
            sending: c.sending,
            deferred: c.deferred,
            sent: c.sent,
            failed: c.failed,
            suppressed: c.suppressed,
            cancelled: c.cancelled,
            possible_duplicates: await store.countPossibleDuplicates(s.campaign.id),
            pending_imports: s.pendingImports,
            rejected: await store.countRejects(s.campaign.id),
          });
        }
        if (flags.json === true) {
          out(`${JSON.stringify(lines)}\n`);
          return;
        }
        if (lines.length === 0) {
          out(`no campaigns in ${store.location}\n`);
          return;
        }
        out(renderTable(
          ['campaign', 'status', 'created', 'total', 'queued', 'sending', 'deferred', 'sent', 'failed', 'suppressed', 'cancelled', 'dup?', 'rejected', 'imports'],
          lines.map((l) => [
            l.campaign,
            l.status,
            // Minutes are enough to tell campaigns apart at a glance; --json has the full time.
            `${l.created_at.slice(0, 16).replace('T', ' ')}Z`,
            l.total,
            l.queued,
            l.sending,
            l.deferred,
            l.sent,
            l.failed,
            l.suppressed,
            l.cancelled,
            l.possible_duplicates,
            l.rejected,
            l.pending_imports > 0 ? `${l.pending_imports} UNFINISHED` : 'ok',
          ]),
        ));
      });
    });
}
