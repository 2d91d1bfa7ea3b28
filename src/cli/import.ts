import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { importCsv, prepareImport, type ImportSummary } from '../campaign/import.js';
import { parseDelimiter, type CsvEncoding } from '../campaign/csv-reader.js';
import { collect, parseVars } from './vars.js';
import { out, parseFormat, parsePositiveInt, withStore } from './context.js';

interface ImportFlags {
  campaign: string;
  template?: string;
  emailColumn?: string;
  delimiter?: string;
  encoding: string;
  maxFieldSize?: string;
  var: string[];
  varFile: string[];
  json?: boolean;
}

const encodings: readonly CsvEncoding[] = ['utf-8', 'latin1', 'windows-1252'];

function normalizeEncoding(value: string): CsvEncoding {
  const v = value.toLowerCase();
  if (v === 'utf8') return 'utf-8';
  if (v === 'iso-8859-1' || v === 'latin-1') return 'latin1';
  if (v === 'cp1252') return 'windows-1252';
  return parseFormat(v, encodings, '--encoding');
}

function summaryText(s: ImportSummary): string {
  const lines = [
    `campaign ${s.campaign}${s.createdCampaign ? ' (new)' : ''}${s.resumed ? ': resumed an interrupted import' : ''}`,
    `  records     ${s.total}`,
    `  imported    ${s.imported}${s.suppressed > 0 ? ` (${s.suppressed} on the suppression list, will not be sent)` : ''}`,
    `  duplicates  ${s.duplicates}`,
    `  rejected    ${s.rejected}`,
  ];
  for (const [reason, n] of Object.entries(s.rejectedByReason).sort((a, b) => b[1] - a[1])) {
    lines.push(`    ${reason.padEnd(22)} ${n}`);
  }
  if (s.rejected > 0) lines.push(`  see them with: mailq rejects --campaign ${s.campaign}`);
  return `${lines.join('\n')}\n`;
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('stream a recipient CSV into a campaign (created with --template on first import)')
    .argument('<csv>', 'recipient CSV file with a header row')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('-t, --template <dir>', 'template folder (snapshotted into a new campaign)')
    .option('--email-column <name>', 'header of the address column (case-insensitive)', 'email')
    .option('--delimiter <char>', "field delimiter: ',' ';' '|' or tab (default: detected from the header)")
    .option('--encoding <name>', 'file encoding: utf-8, latin1, windows-1252', 'utf-8')
    .option('--max-field-size <bytes>', 'largest field accepted, in bytes', '65536')
    .option('--var <key=value>', 'campaign-wide variable (repeatable)', collect, [])
    .option('--var-file <key=path>', 'campaign-wide variable read from a UTF-8 file (repeatable)', collect, [])
    .option('--json', 'print the summary as one JSON object on stdout')
    .action(async (csv: string, flags: ImportFlags, cmd: Command) => {
      prepareImport(csv);
      if (flags.campaign.trim() === '') throw new InputError('--campaign is empty');
      const vars = parseVars(flags.var, flags.varFile);
      const summary = await withStore(cmd, (store) =>
        importCsv(store, {
          csvPath: csv,
          campaign: flags.campaign,
          ...(flags.template === undefined ? {} : { templateDir: flags.template }),
          ...(flags.emailColumn === undefined ? {} : { emailColumn: flags.emailColumn }),
          ...(flags.delimiter === undefined ? {} : { delimiter: parseDelimiter(flags.delimiter) }),
          encoding: normalizeEncoding(flags.encoding),
          ...(flags.maxFieldSize === undefined ? {} : { maxFieldBytes: parsePositiveInt(flags.maxFieldSize, '--max-field-size') }),
          vars,
        }),
      );
      if (flags.json === true) {
        const { campaign, imported, duplicates, rejected, total } = summary;
        out(`${JSON.stringify({ campaign, imported, duplicates, rejected, total })}\n`);
      } else {
        out(summaryText(summary));
      }
    });
}
