import os from 'node:os';
import type { Command } from 'commander';
import type { Category } from '../engine/classify.js';
import { formatDuration } from '../engine/units.js';
import { InputError } from '../errors.js';
import type { Campaign, RequeueResult, RunInfo, Store } from '../store/types.js';
import { out, requireCampaign, withStore } from './context.js';
import { collect } from './vars.js';

/**
 * `mailq retry`: after the operator fixed what made recipients fail (a DMARC
 * record, a template, a relay setting), put them back in the queue so that
 * `mailq resume` sends them. The attempts log is history and stays untouched;
 * the failures table is the list of recipients that are failed *now*, so
 * their entries go (as when a retried message is sent).
 */

/**
 * Which classifier categories can end a message as `failed` (transition.ts):
 * `sent` never does, and `quota` / `fatal` stop the run and hand the message
 * back untouched. `render` is a template that did not render.
 */
const CAN_FAIL = {
  sent: false,
  retry: true,
  throttle: true,
  connection: true,
  ambiguous: true,
  'bad-recipient': true,
  'message-rejected': true,
  'sender-blocked': true,
  quota: false,
  fatal: false,
} as const satisfies Record<Category, boolean>;

export const FAILURE_CATEGORIES: readonly string[] = [
  ...Object.entries(CAN_FAIL).filter(([, can]) => can).map(([c]) => c),
  'render',
];

/**
 * A run counts as live as the send engine counts it (runner.ts
 * reclaimDeadRuns): on this host while its process exists, elsewhere while
 * its heartbeat (every 10 s) is younger than the 10-minute lease. A run the
 * engine would take over as dead does not block a retry either.
 */
const SILENT_AFTER_MS = 10 * 60_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isLive(run: RunInfo, now: number, host: string, alive: (pid: number) => boolean): boolean {
  if (now - run.heartbeatAt > SILENT_AFTER_MS) return false;
  return run.host !== host || alive(run.pid);
}

function parseCategories(values: readonly string[]): readonly string[] | undefined {
  if (values.length === 0) return undefined;
  for (const v of values) {
    if (!FAILURE_CATEGORIES.includes(v)) {
      throw new InputError(
        `--category must be one of ${FAILURE_CATEGORIES.join(', ')} (got "${v}")`,
        '`mailq failures` shows each category; `render` selects templates that did not render (reason "render: …")',
      );
    }
  }
  return [...new Set(values)];
}

/**
 * The max-age clock (`--max-age`) runs from the `startedAt` that send stores
 * with the campaign. A retry days later would expire every re-queued message
 * at its first deferral, so the clock starts again at the next send.
 */
function withoutStartedAt(settingsJson: string): string | undefined {
  try {
    const v: unknown = JSON.parse(settingsJson);
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !('startedAt' in v)) return undefined;
    const copy: Record<string, unknown> = { ...v };
    delete copy['startedAt'];
    return JSON.stringify(copy);
  } catch {
    return undefined;
  }
}

async function refuseLiveRun(store: Store, campaign: Campaign, now: number): Promise<void> {
  const live = (await store.openRuns(campaign.id)).filter((r) => isLive(r, now, os.hostname(), processAlive));
  const run = live[0];
  if (run !== undefined) {
    throw new InputError(
      `campaign "${campaign.name}" is being sent by run ${run.owner} (pid ${run.pid} on ${run.host}, heartbeat ${formatDuration(now - run.heartbeatAt)} ago); nothing was changed`,
      'stop that send (Ctrl-C) or let it finish, then run retry again',
    );
  }
}

const sum = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);

function byCategory(counts: Readonly<Record<string, number>>): string[] {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([c, n]) => `  ${c.padEnd(18)} ${n}`);
}

function summary(campaign: Campaign, r: RequeueResult, dryRun: boolean): string {
  const n = sum(r.requeued);
  const kept = sum(r.keptSuppressed);
  const lines: string[] = [];
  if (n === 0) lines.push(`no failed recipients to re-queue in campaign ${campaign.name}`);
  else {
    lines.push(`${dryRun ? 'would re-queue' : 're-queued'} ${n} failed recipient${n === 1 ? '' : 's'} of campaign ${campaign.name} (attempt budget reset):`);
    lines.push(...byCategory(r.requeued));
  }
  if (kept > 0) {
    lines.push(`kept ${kept} suppressed recipient${kept === 1 ? '' : 's'} failed (add --include-suppressed to send to them again):`);
    lines.push(...byCategory(r.keptSuppressed));
  }
  if (r.unsuppressed > 0) {
    lines.push(`${dryRun ? 'would remove' : 'removed'} ${r.unsuppressed} address${r.unsuppressed === 1 ? '' : 'es'} from the suppression list`);
  }
  if (dryRun) lines.push('dry run: nothing was changed');
  else if (n > 0) lines.push(`campaign ${campaign.name} is paused: run \`mailq resume -c ${campaign.name}\` to send them`);
  return `${lines.join('\n')}\n`;
}

interface RetryFlags {
  campaign: string;
  category: string[];
  includeSuppressed?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function registerRetry(program: Command): void {
  program
    .command('retry')
    .description('put failed recipients back in the queue (after fixing the cause), for `mailq resume`')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--category <category>', `only failures of this category (repeatable): ${FAILURE_CATEGORIES.join(', ')}`, collect, [])
    .option('--include-suppressed', 'also re-queue suppressed recipients, removing them from the suppression list')
    .option('--dry-run', 'count what would be re-queued; change nothing')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: RetryFlags, cmd: Command) => {
      const categories = parseCategories(flags.category);
      const dryRun = flags.dryRun === true;
      await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        await refuseLiveRun(store, campaign, Date.now());
        const result = await store.requeueFailed(campaign.id, {
          categories,
          includeSuppressed: flags.includeSuppressed === true,
          dryRun,
          settingsJson: withoutStartedAt(await store.campaignSettings(campaign.id)),
        });
        const status = (await store.getCampaign(campaign.name))?.status ?? campaign.status;
        if (flags.json === true) {
          out(`${JSON.stringify({
            campaign: campaign.name,
            dry_run: dryRun,
            requeued: sum(result.requeued),
            by_category: result.requeued,
            kept_suppressed: sum(result.keptSuppressed),
            kept_suppressed_by_category: result.keptSuppressed,
            unsuppressed: result.unsuppressed,
            status,
          })}\n`);
        } else out(summary(campaign, result, dryRun));
      });
    });
}
