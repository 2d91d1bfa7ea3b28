import type { Command } from 'commander';
import { csvLine } from '../report/csv-write.js';
import { writeJsonArray } from '../report/json-write.js';
import { renderTable } from '../report/table.js';
import type { RejectRow } from '../store/types.js';
import { out, parseFormat, requireCampaign, withStore } from './context.js';

const formats = ['table', 'csv', 'json'] as const;

export function registerRejects(program: Command): void {
  program
    .command('rejects')
    .description('list the CSV rows an import rejected, with line and reason')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--format <format>', 'table, csv or json', 'table')
    .action(async (flags: { campaign: string; format: string }, cmd: Command) => {
      const format = parseFormat(flags.format, formats);
      await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        const rows = store.listRejects(campaign.id);
        if (format === 'csv') {
          out(csvLine(['source', 'line', 'raw', 'reason', 'message']));
          for await (const r of rows) out(csvLine([r.source, r.line, r.raw, r.reason, r.message]));
        } else if (format === 'json') {
          await writeJsonArray(rows, (r: RejectRow) => r, out);
        } else {
          const table: (string | number)[][] = [];
          for await (const r of rows) table.push([r.line, r.reason, r.raw, r.message]);
          if (table.length === 0) out(`no rejected rows in campaign ${campaign.name}\n`);
          else out(renderTable(['line', 'reason', 'value', 'why'], table));
        }
      });
    });
}
