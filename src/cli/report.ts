import path from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { buildHtmlReport } from '../report/report-html.js';
import { writeFileAtomically, writeToStream, type ReportOutput } from '../report/report-output.js';
import { writeCsvReport, writeJsonReport } from '../report/report-rows.js';
import type { Campaign, Store } from '../store/types.js';
import { VERSION } from '../version.js';
import { parseFormat, requireCampaign, say, withStore } from './context.js';

const formats = ['csv', 'json', 'html'] as const;
type ReportFormat = (typeof formats)[number];

interface ReportFlags {
  campaign: string;
  format?: string;
  out?: string;
}

/** --format, or else the extension of --out (`report.html`), so the common case needs one flag. */
export function reportFormat(flags: { format?: string; out?: string }): ReportFormat {
  if (flags.format !== undefined) return parseFormat(flags.format, formats);
  const ext = flags.out === undefined ? '' : path.extname(flags.out).toLowerCase().slice(1);
  const inferred = ext === 'htm' ? 'html' : ext;
  if ((formats as readonly string[]).includes(inferred)) return inferred as ReportFormat;
  throw new InputError('--format is required (csv, json or html)', 'e.g. `mailq report -c <name> --format html --out report.html`');
}

async function produce(store: Store, campaign: Campaign, format: ReportFormat, out: ReportOutput): Promise<string> {
  if (format === 'html') {
    await out.write(await buildHtmlReport(store, campaign, { now: Date.now, version: VERSION }));
    return 'an HTML report';
  }
  const rows = store.iterateReportRows(campaign.id);
  const n = format === 'csv' ? await writeCsvReport(rows, out) : await writeJsonReport(rows, out);
  return `${n} recipient${n === 1 ? '' : 's'} as ${format.toUpperCase()}`;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('export every recipient with its outcome (csv, json), or a self-contained HTML report with charts')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--format <format>', 'csv, json or html (default: from the --out extension)')
    .option('-o, --out <file>', 'write to this file, replaced atomically (default: stdout)')
    .action(async (flags: ReportFlags, cmd: Command) => {
      const format = reportFormat(flags);
      await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        if ((await store.pendingImports(campaign.id)).length > 0) {
          say(`warning: campaign ${campaign.name} has an unfinished import; the report shows the rows imported so far`);
        }
        if (flags.out === undefined) {
          await writeToStream(process.stdout, (out) => produce(store, campaign, format, out).then(() => undefined));
          return;
        }
        const file = flags.out;
        let what = '';
        const bytes = await writeFileAtomically(file, async (out) => {
          what = await produce(store, campaign, format, out);
        });
        say(`wrote ${what} of campaign ${campaign.name} to ${file} (${bytes} bytes)`);
      });
    });
}
