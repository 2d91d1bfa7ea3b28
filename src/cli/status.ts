import os from 'node:os';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { classifyRuns, FINISHED_WITHIN_MS, processAlive, type HostHealth } from '../engine/hosts.js';
import { formatDuration } from '../engine/units.js';
import { csvLine } from '../report/csv-write.js';
import { writeJsonArray } from '../report/json-write.js';
import { renderTable } from '../report/table.js';
import type { Campaign, Store } from '../store/types.js';
import { out, parseFormat, requireCampaign, withStore } from './context.js';

/** Every run open or finished within the hour, as the engine classifies it (engine/hosts.ts). */
async function campaignHosts(store: Store, campaign: Campaign, now: number): Promise<HostHealth[]> {
  const runs = await store.runHealth(campaign.id, now, FINISHED_WITHIN_MS);
  return classifyRuns(runs, { host: os.hostname(), self: undefined, alive: processAlive, pid: process.pid });
}

function hostsJson(hosts: readonly HostHealth[]): object[] {
  return hosts.map((h) => ({
    owner: h.owner,
    host: h.host,
    pid: h.pid,
    started_at: new Date(h.startedAt).toISOString(),
    heartbeat_age_ms: Math.round(h.heartbeatAgeMs),
    state: h.state,
    outcome: h.outcome ?? null,
    sent: h.sent,
    sent_last_minute: h.sentLastMinute,
  }));
}

/** `2025-03-02 09:14:07Z`: to the second, since runs of one campaign often start the same minute. */
const utc = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;

/** `finished`, `stopped (signal)`, `fatal`; a lost run that another run closed says its messages were taken over. */
function stateText(h: HostHealth): string {
  if (h.state === 'lost') return h.outcome === 'lost' ? 'lost (taken over)' : 'lost';
  if (h.state !== 'finished') return h.state;
  const outcome = h.outcome ?? 'finished';
  return outcome.startsWith('stopped:') ? `stopped (${outcome.slice('stopped:'.length)})` : outcome;
}

function hostsTable(hosts: readonly HostHealth[]): string {
  const count = (state: HostHealth['state']): number => hosts.filter((h) => h.state === state).length;
  const summary = (['alive', 'silent', 'lost', 'finished'] as const).filter((st) => count(st) > 0).map((st) => `${count(st)} ${st}`).join(', ');
  const rows = hosts.map((h) => [
    h.host,
    h.pid,
    utc(h.startedAt),
    h.state === 'finished' ? '-' : `${formatDuration(h.heartbeatAgeMs)} ago`,
    h.state === 'alive' ? h.sentLastMinute : '-',
    h.sent,
    stateText(h),
  ]);
  const table = renderTable(['host', 'pid', 'started', 'heartbeat', 'sent/min', 'sent', 'state'], rows)
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  return `runs in the last hour (${summary}):\n${table}`;
}

async function pickCampaign(store: Store, name: string | undefined): Promise<Campaign> {
  if (name !== undefined) return requireCampaign(store, name);
  const all = await store.listCampaigns();
  const only = all[0];
  if (all.length !== 1 || only === undefined) {
    throw new InputError(
      all.length === 0 ? `no campaigns in ${store.location}` : `${all.length} campaigns here: ${all.map((c) => c.campaign.name).join(', ')}`,
      all.length === 0 ? 'import one with `mailq import`' : 'name one with --campaign',
    );
  }
  return only.campaign;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('counts of recipients by state')
    .option('-c, --campaign <name>', 'campaign (default: the only one)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: { campaign?: string; json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const campaign = await pickCampaign(store, flags.campaign);
        const c = await store.countByState(campaign.id);
        const possible = await store.countPossibleDuplicates(campaign.id);
        const total = Object.values(c).reduce((a, b) => a + b, 0);
        const hosts = await campaignHosts(store, campaign, Date.now());
        if (flags.json === true) {
          out(`${JSON.stringify({ campaign: campaign.name, total, queued: c.queued, sending: c.sending, deferred: c.deferred, sent: c.sent, failed: c.failed, suppressed: c.suppressed, cancelled: c.cancelled, possible_duplicates: possible, hosts: hostsJson(hosts) })}\n`);
          return;
        }
        const pending = await store.pendingImports(campaign.id);
        const lines = [
          `campaign ${campaign.name} (${campaign.status})${pending.length > 0 ? ' — unfinished import: re-run it before sending' : ''}`,
          ...Object.entries(c).map(([state, n]) => `  ${state.padEnd(12)} ${n}`),
          `  ${'total'.padEnd(12)} ${total}`,
          `  possible duplicates ${possible}${possible > 0 ? ' (the server may have received these twice: see `mailq failures` / report)' : ''}`,
          ...(hosts.length > 0 ? [hostsTable(hosts).trimEnd()] : []),
        ];
        out(`${lines.join('\n')}\n`);
      });
    });
}

const formats = ['table', 'csv', 'json'] as const;

export function registerFailures(program: Command): void {
  program
    .command('failures')
    .description('one entry per failed recipient, with the verbatim last reply')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--format <format>', 'table, csv or json', 'table')
    .action(async (flags: { campaign: string; format: string }, cmd: Command) => {
      const format = parseFormat(flags.format, formats);
      await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        const rows = store.listFailures(campaign.id);
        if (format === 'json') {
          await writeJsonArray(
            rows,
            (f) => ({ address: f.address, category: f.category, code: f.code ?? null, enhanced: f.enhanced ?? null, reply: f.reply ?? null, attempts: f.attempts, at: new Date(f.at).toISOString() }),
            out,
          );
        } else if (format === 'csv') {
          out(csvLine(['address', 'category', 'reason', 'code', 'enhanced', 'reply', 'attempts', 'at']));
          for await (const f of rows) out(csvLine([f.address, f.category, f.reason, f.code, f.enhanced, f.reply, f.attempts, new Date(f.at).toISOString()]));
        } else {
          const table: (string | number)[][] = [];
          for await (const f of rows) table.push([f.address, f.category, f.code ?? '', f.reply ?? '', f.attempts]);
          out(table.length === 0 ? `no failed recipients in campaign ${campaign.name}\n` : renderTable(['address', 'category', 'code', 'reply', 'attempts'], table));
        }
      });
    });
}
