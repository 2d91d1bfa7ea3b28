import type { Command } from 'commander';
import { normalizeAddress } from '../campaign/address.js';
import { formatDuration } from '../engine/units.js';
import { InputError } from '../errors.js';
import type { AttemptLogRow, Campaign, RecipientHistory, RejectMatch, Store, Suppression } from '../store/types.js';
import { out, requireCampaign, withStore } from './context.js';

/**
 * `mailq trace <address>`: the journey of one recipient through every
 * campaign that has it: import (or the rejected row), suppression, every
 * SMTP attempt with its classification and back-off, and where it ended.
 * Only reads; it names the recipient the operator asked about.
 */

interface Journey {
  readonly campaign: Campaign;
  readonly history: RecipientHistory | undefined;
  readonly rejects: readonly RejectMatch[];
}

interface Trace {
  /** The normalized address asked about. */
  readonly address: string;
  readonly searched: readonly string[];
  readonly suppression: Suppression | undefined;
  readonly journeys: readonly Journey[];
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : iso(ms));

/** Characters of a dot-atom local part (RFC 5322 atext) and of a host name label. */
const LOCAL_CHAR = /[a-z0-9!#$%&'*+/=?^_`{|}~.-]/;
const DOMAIN_CHAR = /[a-z0-9-]/;

/**
 * True when `needle` occurs in `raw` as a whole address: `ann@x.test` is in
 * `Ann <ann@x.test>` and in a ragged row `ann@x.test,Ann,extra`, but not in
 * `joann@x.test` nor `ann@x.test.example`.
 */
export function containsAddress(raw: string, needle: string): boolean {
  const hay = raw.toLowerCase();
  const n = needle.toLowerCase();
  for (let i = hay.indexOf(n); i >= 0; i = hay.indexOf(n, i + 1)) {
    const before = hay[i - 1];
    const after = hay[i + n.length];
    const next = hay[i + n.length + 1];
    if (before !== undefined && LOCAL_CHAR.test(before)) continue;
    if (after !== undefined && DOMAIN_CHAR.test(after)) continue;
    if (after === '.' && next !== undefined && DOMAIN_CHAR.test(next)) continue;
    return true;
  }
  return false;
}

async function matchingRejects(store: Store, campaignId: number, needles: readonly string[]): Promise<RejectMatch[]> {
  const found = new Map<string, RejectMatch>();
  for (const needle of needles) {
    for (const r of await store.findRejects(campaignId, needle)) {
      if (containsAddress(r.raw, needle)) found.set(`${r.source}\n${r.line}`, r);
    }
  }
  return [...found.values()].sort((a, b) => a.source.localeCompare(b.source) || a.line - b.line);
}

async function gather(store: Store, input: string, campaignName: string | undefined): Promise<Trace> {
  const address = normalizeAddress(input);
  if (!address.ok) throw new InputError(`trace ${JSON.stringify(input)}: ${address.message}`, 'give one bare address, e.g. ada@example.com');
  const campaigns = campaignName !== undefined
    ? [await requireCampaign(store, campaignName)]
    : (await store.listCampaigns()).map((c) => c.campaign);
  if (campaigns.length === 0) {
    throw new InputError(`no campaigns in ${store.location}`, 'import one with `mailq import`');
  }
  // The key finds the recipient row; the rejected row kept the cell as typed,
  // so look for both the normalized address and what the operator typed.
  const needles = [...new Set([address.key, address.address.toLowerCase(), input.trim().toLowerCase()])];
  const journeys: Journey[] = [];
  for (const campaign of campaigns) {
    const history = await store.recipientHistory(campaign.id, address.key);
    const rejects = await matchingRejects(store, campaign.id, needles);
    if (history !== undefined || rejects.length > 0) journeys.push({ campaign, history, rejects });
  }
  const searched = campaigns.map((c) => c.name);
  if (journeys.length === 0) {
    throw new InputError(
      `${address.address} is not a recipient ${campaigns.length === 1 ? `of campaign ${searched[0] ?? ''}` : `of any of the ${campaigns.length} campaigns`}, nor in ${campaigns.length === 1 ? 'its' : 'their'} rejected rows`,
      `searched: ${searched.join(', ')}; check the spelling, or list rows with \`mailq rejects -c <campaign>\``,
    );
  }
  return { address: address.address, searched, suppression: await store.getSuppression(address.key), journeys };
}

/** An attempt that failed the message but is followed by more history was put back by `mailq retry`. */
function requeuedAfter(h: RecipientHistory, index: number): boolean {
  const a = h.attempts[index];
  if (a === undefined || a.nextState !== 'failed') return false;
  return index < h.attempts.length - 1 || h.message.state !== 'failed';
}

function attemptJson(h: RecipientHistory, a: AttemptLogRow, index: number): Record<string, unknown> {
  return {
    n: index + 1,
    attempt_id: a.attemptId,
    started_at: iso(a.startedAt),
    finished_at: iso(a.finishedAt),
    run_owner: a.runOwner,
    run_host: a.runHost ?? null,
    stage: a.stage ?? null,
    code: a.code ?? null,
    enhanced: a.enhanced ?? null,
    reply: a.reply ?? null,
    category: a.category,
    rule: a.rule ?? null,
    body_written: a.bodyWritten,
    next_state: a.nextState,
    retry_at: a.delayMs === undefined ? null : iso(a.finishedAt + a.delayMs),
    retry_in_ms: a.delayMs ?? null,
    requeued_after: requeuedAfter(h, index),
  };
}

function toJson(t: Trace): Record<string, unknown> {
  return {
    address: t.address,
    searched: t.searched,
    suppression: t.suppression === undefined ? null : { reason: t.suppression.reason, at: iso(t.suppression.createdAt) },
    campaigns: t.journeys.map(({ campaign, history: h, rejects }) => ({
      campaign: campaign.name,
      status: campaign.status,
      import: h === undefined ? null : {
        address: h.message.address,
        source: h.importRun.source,
        line: h.message.line,
        import_id: h.importRun.id,
        imported_at: iso(h.importRun.startedAt),
        import_status: h.importRun.status,
      },
      rejects: rejects.map((r) => ({ source: r.source, line: r.line, raw: r.raw, reason: r.reason, message: r.message, imported_at: iso(r.importedAt) })),
      attempts: h === undefined ? [] : h.attempts.map((a, i) => attemptJson(h, a, i)),
      final: h === undefined ? null : {
        state: h.message.state,
        attempts: h.message.attempts,
        next_attempt_at: h.message.state === 'deferred' ? iso(h.nextAttemptAt) : null,
        lease_owner: h.leaseOwner ?? null,
        possible_duplicate: h.possibleDuplicate,
        smtp_message_id: h.smtpMessageId ?? null,
        sent_at: isoOrNull(h.sentAt),
        failure: h.failure === undefined ? null : {
          category: h.failure.category,
          reason: h.failure.reason,
          code: h.failure.code ?? null,
          enhanced: h.failure.enhanced ?? null,
          reply: h.failure.reply ?? null,
          attempts: h.failure.attempts,
          at: iso(h.failure.at),
        },
      },
    })),
  };
}

/** Control characters of a server reply or CSV cell must not reach the terminal raw. */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => (c === '\n' ? ' / ' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

const label = (name: string): string => `  ${name.padEnd(12)}`;
const cont = ' '.repeat(14);

function attemptLines(h: RecipientHistory, a: AttemptLogRow, index: number): string[] {
  const host = a.runHost === undefined ? '' : ` on ${a.runHost}`;
  const reply = [a.code, a.enhanced].filter((x) => x !== undefined).join(' ');
  const lines = [
    `${label(`attempt ${index + 1}`)}${iso(a.startedAt)}  run ${a.runOwner}${host}`,
    `${cont}${a.stage ?? 'no stage'}${reply === '' ? '' : ` ${reply}`}  ${a.category}${a.rule === undefined ? '' : ` (rule ${a.rule})`}  body ${a.bodyWritten ? 'written' : 'not written'}`,
  ];
  if (a.reply !== undefined) lines.push(`${cont}reply: ${clean(a.reply)}`);
  const retry = a.delayMs === undefined ? '' : `, retry at ${iso(a.finishedAt + a.delayMs)} (in ${formatDuration(a.delayMs)})`;
  lines.push(`${cont}→ ${a.nextState}${retry}`);
  if (requeuedAfter(h, index)) lines.push(`${label('re-queued')}by \`mailq retry\` (attempt budget reset)`);
  return lines;
}

function finalLine(h: RecipientHistory, now: number): string {
  const m = h.message;
  const flags = `possible duplicate: ${h.possibleDuplicate ? 'YES (the server may have it twice)' : 'no'}; Message-ID ${h.smtpMessageId ?? '—'}`;
  switch (m.state) {
    case 'sent':
      return `${label('state')}sent${h.sentAt === undefined ? '' : ` at ${iso(h.sentAt)}`}; ${flags}`;
    case 'failed': {
      const f = h.failure;
      const why = f === undefined ? '' : ` (${f.category}: ${f.reason}) at ${iso(f.at)}`;
      return `${label('state')}failed${why} after ${m.attempts} counted attempts; ${flags}`;
    }
    case 'deferred':
      return `${label('state')}deferred, next attempt at ${iso(h.nextAttemptAt)} (${h.nextAttemptAt > now ? `in ${formatDuration(h.nextAttemptAt - now)}` : 'due now'}); ${flags}`;
    case 'sending':
      return `${label('state')}sending (run ${h.leaseOwner ?? '?'}); ${flags}`;
    default:
      return `${label('state')}${m.state}; ${flags}`;
  }
}

function toText(t: Trace, now: number): string {
  const names = t.journeys.map((j) => j.campaign.name);
  const lines = [
    `${t.address}: found in ${t.journeys.length} of ${t.searched.length} campaign${t.searched.length === 1 ? '' : 's'} searched (${names.join(', ')})`,
    t.suppression === undefined
      ? 'suppression list: not on it'
      : `suppression list: SUPPRESSED since ${iso(t.suppression.createdAt)} (${t.suppression.reason}); imports skip it`,
  ];
  for (const { campaign, history: h, rejects } of t.journeys) {
    lines.push('', `campaign ${campaign.name} (${campaign.status})`);
    if (h !== undefined) {
      lines.push(`${label('imported')}${h.message.address} from ${h.importRun.source} line ${h.message.line}, at ${iso(h.importRun.startedAt)}`);
    }
    for (const r of rejects) {
      lines.push(`${label('rejected')}${r.source} line ${r.line}, at ${iso(r.importedAt)}: ${r.reason} (${clean(r.message)}); value ${JSON.stringify(clean(r.raw))}`);
    }
    if (h === undefined) continue;
    if (h.attempts.length === 0) lines.push(`${label('attempts')}none yet`);
    h.attempts.forEach((a, i) => lines.push(...attemptLines(h, a, i)));
    lines.push(finalLine(h, now));
  }
  return `${lines.join('\n')}\n`;
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('the journey of one recipient: import, suppression, every attempt, final state')
    .argument('<address>', 'recipient address (normalized as import does)')
    .option('-c, --campaign <name>', 'only this campaign (default: every campaign that has the address)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (input: string, flags: { campaign?: string; json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const trace = await gather(store, input, flags.campaign);
        out(flags.json === true ? `${JSON.stringify(toJson(trace))}\n` : toText(trace, Date.now()));
      });
    });
}
