import fs from 'node:fs';
import type { Command } from 'commander';
import { InputError, MailqError, ExitCode } from '../errors.js';
import { normalizeAddress } from '../campaign/address.js';
import { compileCampaign } from '../campaign/check.js';
import { composeMessage } from '../engine/compose.js';
import type { Campaign, MessageRow, Store } from '../store/types.js';
import { out, parseFormat, parsePositiveInt, requireCampaign, say, withStore } from './context.js';

const formats = ['eml', 'html', 'text'] as const;

interface PreviewFlags {
  campaign: string;
  to?: string;
  row?: string;
  format: string;
  out?: string;
}

async function pickRecipient(store: Store, campaign: Campaign, flags: PreviewFlags): Promise<MessageRow> {
  if (flags.to !== undefined && flags.row !== undefined) throw new InputError('give --to or --row, not both');
  if (flags.to !== undefined) {
    const address = normalizeAddress(flags.to);
    if (!address.ok) throw new InputError(`--to ${JSON.stringify(flags.to)}: ${address.message}`);
    const row = await store.findMessageByKey(campaign.id, address.key);
    if (row === undefined) throw new InputError(`--to: ${address.address} is not a recipient of campaign ${campaign.name}`);
    return row;
  }
  const position = flags.row === undefined ? 1 : parsePositiveInt(flags.row, '--row');
  const row = await store.findMessageByPosition(campaign.id, position);
  if (row === undefined) {
    throw new InputError(
      position === 1 ? `campaign ${campaign.name} has no recipients` : `campaign ${campaign.name} has fewer than ${position} recipients`,
    );
  }
  return row;
}

export function registerPreview(program: Command): void {
  program
    .command('preview')
    .description('print the exact message send would build for one recipient')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--to <address>', 'the recipient to preview')
    .option('--row <n>', 'the n-th recipient in import order (default 1)')
    .option('--format <format>', 'eml (the raw MIME message), html or text', 'eml')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (flags: PreviewFlags, cmd: Command) => {
      const format = parseFormat(flags.format, formats);
      const body = await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        if ((await store.pendingImports(campaign.id)).length > 0) {
          say(`warning: campaign ${campaign.name} has an unfinished import; send will refuse it until it is re-run`);
        }
        const row = await pickRecipient(store, campaign, flags);
        const result = await composeMessage(compileCampaign(campaign), campaign, row, new Date());
        if (!result.ok) {
          throw new MailqError(`recipient on line ${row.line} does not render: ${result.message} (${result.reason})`, {
            exitCode: ExitCode.someFailed,
            hint: `run \`mailq check --campaign ${campaign.name}\` to see every failing recipient`,
          });
        }
        if (format === 'eml') return result.raw;
        if (format === 'html') {
          if (result.message.html === undefined) throw new InputError('this template has no HTML part', 'use --format text or eml');
          return Buffer.from(result.message.html, 'utf8');
        }
        return Buffer.from(result.message.text, 'utf8');
      });
      if (flags.out === undefined) out(body.toString('utf8'));
      else {
        try {
          fs.writeFileSync(flags.out, body, { mode: 0o600 });
        } catch (err) {
          throw new InputError(`cannot write ${flags.out}: ${(err as Error).message}`);
        }
        say(`wrote ${body.length} bytes to ${flags.out}`);
      }
    });
}
