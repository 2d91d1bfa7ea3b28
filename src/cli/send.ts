import os from 'node:os';
import readline from 'node:readline/promises';
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { ExitCode, InputError, MailqError } from '../errors.js';
import { compileCampaign } from '../campaign/check.js';
import { composeMessage } from '../engine/compose.js';
import { ComposePool } from '../engine/compose-pool.js';
import type { EngineEvent, RunOutcome } from '../engine/events.js';
import { defaultThrottleConfig } from '../engine/providers.js';
import { Runner } from '../engine/runner.js';
import { Throttle } from '../engine/throttle.js';
import { LEASE_MS } from '../engine/hosts.js';
import { SharedThrottle } from '../engine/shared-throttle.js';
import { defaultBackoff } from '../engine/backoff.js';
import { openTransport, readPasswordFile, redactUrl } from '../transport/open-transport.js';
import type { Campaign, Store } from '../store/types.js';
import { ndjsonReporter } from '../ui/ndjson-reporter.js';
import { BarReporter } from '../ui/bar-reporter.js';
import { startDashboard } from '../ui/dashboard/mount.js';
import { PlainReporter } from '../ui/plain-reporter.js';
import { startMonitor } from '../alerts/monitor.js';
import { collect } from './vars.js';
import { out, requireCampaign, requireImportsComplete, say, withStore } from './context.js';
import { resolveSendSettings, type SendFlags, type SendSettings } from './send-settings.js';

/** Without a TTY nobody can be asked: above this many recipients, --yes is required. */
const UNATTENDED_LIMIT = 1000;
/** Longest SMTP attempt is bounded by the 2-minute socket timeout per stage; the lease (engine/hosts.ts LEASE_MS) outlives it. */
const SOCKET_TIMEOUT_MS = 120_000;
/** After a first Ctrl-C, messages in flight get this long to finish before they are cut. */
const GRACE_MS = 30_000;

interface CliSendFlags extends SendFlags {
  campaign?: string;
  yes?: boolean;
  json?: boolean;
  tui?: boolean;
}

/** What send stores with the campaign so that resume can continue the same way (never a secret). */
interface StoredSettings {
  transport?: string;
  startedAt?: number;
  flags?: SendFlags;
}

function parseStored(json: string): StoredSettings {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    return {};
  }
}

async function confirm(count: number, campaign: Campaign, transport: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    if (count > UNATTENDED_LIMIT) {
      throw new InputError(
        `refusing to send ${count} messages without a terminal to confirm on`,
        'add --yes to send unattended (CI), after checking the campaign with `mailq check`',
      );
    }
    return;
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Send ${count} messages of campaign "${campaign.name}" via ${transport}? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new MailqError('not sent: the operator declined', { exitCode: ExitCode.usage });
  } finally {
    rl.close();
  }
}

type UiChoice = { readonly kind: 'dashboard' } | { readonly kind: 'bar' } | { readonly kind: 'plain' };

/** CI providers set CI=true (GitHub, GitLab, CircleCI…); CI=false or 0 means "not CI". */
function inCi(env: NodeJS.ProcessEnv): boolean {
  const v = env['CI'];
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * The Ink dashboard needs a terminal on stderr (where it draws) and on stdin
 * (its keys); a bar needs a terminal on stderr; anything else gets plain lines.
 */
function chooseUi(flags: CliSendFlags): UiChoice {
  if (process.stderr.isTTY !== true) return { kind: 'plain' };
  if (flags.tui === false || inCi(process.env) || process.stdin.isTTY !== true) return { kind: 'bar' };
  return { kind: 'dashboard' };
}

interface Display {
  readonly onEvent: (e: EngineEvent) => void;
  stop(): Promise<void>;
}

function startDisplay(ui: UiChoice, throttle: Throttle, control: () => { togglePause: () => void; quit: () => void }): Display {
  if (ui.kind === 'plain') return { onEvent: () => undefined, stop: () => Promise.resolve() };
  if (ui.kind === 'bar') {
    const bar = new BarReporter(process.stderr, process.env['NO_COLOR'] !== undefined && process.env['NO_COLOR'] !== '');
    return { onEvent: bar.onEvent, stop: () => Promise.resolve(bar.stop()) };
  }
  const dashboard = startDashboard({
    stdout: process.stderr,
    stdin: process.stdin,
    now: Date.now,
    onTogglePause: () => control().togglePause(),
    onQuit: () => control().quit(),
    keyFor: (d) => throttle.keyFor(d),
  });
  // The summary is printed after the dashboard is gone, so it stays in the scrollback as text.
  const summary: string[] = [];
  let finishing = false;
  const plain = new PlainReporter((line) => {
    if (finishing) summary.push(line);
  });
  return {
    onEvent: (e) => {
      dashboard.onEvent(e);
      finishing = e.type === 'run-finished';
      plain.onEvent(e);
      finishing = false;
    },
    stop: async () => {
      // A display bug must not turn a finished send into a failed one: say it and go on.
      await dashboard.stop().catch((err: unknown) => say(`mailq: the dashboard failed (a bug; the send was not affected): ${err instanceof Error ? err.message : String(err)}`));
      for (const line of summary) say(line);
    },
  };
}

function exitFor(outcome: RunOutcome, failed: number): number {
  if (outcome.kind === 'fatal') return ExitCode.fatalTransport;
  if (outcome.kind === 'stopped') return ExitCode.stopped;
  return failed > 0 ? ExitCode.someFailed : ExitCode.ok;
}

async function runSend(store: Store, campaign: Campaign, settings: SendSettings, flags: CliSendFlags, storedFlags: SendFlags): Promise<number> {
  await requireImportsComplete(store, campaign);
  const transportUrl = settings.transport;
  if (transportUrl === undefined) {
    throw new InputError('no transport given', 'use --transport smtp://host:port (or MAILQ_TRANSPORT, or "transport" in mailq.config.json); file://<dir> for a dry run');
  }
  const password = settings.passwordFile !== undefined ? readPasswordFile(settings.passwordFile) : process.env['MAILQ_SMTP_PASSWORD'];
  const transport = openTransport({
    url: transportUrl,
    maxConnections: settings.concurrency,
    password: password === '' ? undefined : password,
    insecureTls: settings.insecureTls,
    socketTimeoutMs: SOCKET_TIMEOUT_MS,
  });
  if (settings.insecureTls) say('mailq: WARNING: --insecure-tls: the server certificate is not verified and TLS is not required');
  const counts = await store.countByState(campaign.id);
  const toSend = counts.queued + counts.deferred + counts.sending;
  await confirm(settings.limit === undefined ? toSend : Math.min(toSend, settings.limit), campaign, transport.description, flags.yes === true);

  // Listeners, built before the run is recorded so a busy --metrics-port changes nothing. Alerts come
  // first: those raised at run-finished then reach the reporters before their summary.
  const listeners: ((e: EngineEvent) => void)[] = [];
  const dispatch = (e: EngineEvent): void => {
    for (const l of listeners) l(e);
  };
  const domainsByVolume = (await store.dueDomains(campaign.id, Date.now())).map((d) => d.domain);
  const monitor = await startMonitor({ campaign: campaign.name, alerts: settings.alerts, metricsPort: settings.metricsPort, domainsByVolume, emit: dispatch, say, env: process.env });
  listeners.push(...monitor.listeners);
  if (flags.json === true) listeners.push(monitor.withMetricsUrl(ndjsonReporter(out)));
  const ui = chooseUi(flags);
  if (ui.kind === 'plain') listeners.push(new PlainReporter(say).onEvent);

  await store.prepareForSending();
  const stored = parseStored(await store.campaignSettings(campaign.id));
  const startedAt = stored.startedAt ?? Date.now();
  await store.setCampaignSettings(campaign.id, JSON.stringify({ transport: redactUrl(transportUrl), startedAt, flags: storedFlags } satisfies StoredSettings));
  const owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  await store.startRun(campaign.id, { owner, host: os.hostname(), pid: process.pid, settingsJson: JSON.stringify({ transport: redactUrl(transportUrl), flags: storedFlags }) });
  await store.setCampaignStatus(campaign.id, 'sending');

  const template = compileCampaign(campaign);
  const pool = settings.threads > 0 ? new ComposePool(campaign, settings.threads) : undefined;
  const throttle = new Throttle(defaultThrottleConfig(settings.domainLimits, settings.rate), Date.now);
  // Per-domain and --rate limits hold over every process sending this campaign: tokens come from the database.
  const shared = new SharedThrottle(
    {
      take: (key, want, limit) => store.takeTokens(campaign.id, key, want, limit, Date.now()),
      giveBack: (key, count, limit) => store.returnTokens(campaign.id, key, count, limit, Date.now()),
    },
    Date.now,
    { global: settings.rate === undefined ? undefined : { perSecond: settings.rate.perSecond, burst: Math.max(1, settings.rate.perSecond) } },
  );
  // Assigned below, once the runner exists: the dashboard's keys drive it.
  let control: { togglePause: () => void; quit: () => void } = { togglePause: () => undefined, quit: () => undefined };
  const display = startDisplay(ui, throttle, () => control);
  listeners.push(display.onEvent);
  let failedCount = 0;
  const runner = new Runner(
    {
      store,
      transport,
      throttle,
      now: Date.now,
      random: Math.random,
      shared,
      compose: pool === undefined ? (m) => composeMessage(template, campaign, m, new Date()) : (m) => pool.compose(m, Date.now()),
      emit: (e) => {
        if (e.type === 'run-finished') failedCount = e.counts.failed;
        dispatch(e);
      },
    },
    {
      campaign,
      owner,
      concurrency: settings.concurrency,
      // As many again waiting, composed, for a connection: +N% msg/s on bench/send.
      ahead: settings.concurrency,
      leaseMs: LEASE_MS,
      limit: settings.limit,
      policy: {
        maxAttempts: settings.maxAttempts,
        maxAgeMs: settings.maxAgeMs,
        backoff: { ...defaultBackoff, initialMs: settings.backoff.initialMs, maxMs: settings.backoff.maxMs },
        resendAmbiguous: settings.resendAmbiguous,
        throttleDelayMs: Math.min(60_000, settings.backoff.maxMs),
      },
      campaignStartedAt: startedAt,
      breakerThreshold: 10,
      progressEveryMs: process.env['CI'] !== undefined || !process.stderr.isTTY ? 5000 : 2000,
    },
  );
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals === 1) {
      runner.requestStop('signal', 'stopped by signal; run `mailq resume` to continue');
      setTimeout(() => runner.abort(), GRACE_MS).unref();
    } else runner.abort();
  };
  control = {
    togglePause: () => runner.setPaused(!runner.isPaused()),
    // `q` is a first Ctrl-C: graceful; pressing it again does not escalate to an abort.
    quit: () => {
      if (signals === 0) onSignal();
    },
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let outcome: RunOutcome;
  try {
    outcome = await runner.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await transport.close();
    await pool?.close();
    await monitor.close();
    await display.stop();
  }
  const after = await store.countByState(campaign.id);
  const done = after.queued + after.deferred + after.sending === 0;
  await store.setCampaignStatus(campaign.id, done ? 'finished' : 'paused');
  return exitFor(outcome, failedCount);
}

function sendOptions(cmd: Command): Command {
  return cmd
    .option('--transport <url>', 'smtp://[user@]host[:port], smtps://… or file://<dir> (env MAILQ_TRANSPORT)')
    .option('--concurrency <n>', 'SMTP transactions in flight (default 10)')
    .option('--rate <rate>', 'global cap: N/s, N/m or N/h')
    .option('--domain-rate <domain=rate[:connections]>', 'per-domain limit (repeatable)', collect, [])
    .option('--rules <file>', 'JSON or YAML file of per-domain limits')
    .option('--max-attempts <n>', 'attempts before a message fails as expired (default 8)')
    .option('--max-age <duration>', 'give up on deferred messages after this long, e.g. 3d (default)')
    .option('--backoff <initial[:max]>', 'retry backoff, e.g. 1m:40m (default) or 1s:10s for rehearsals')
    .option('--no-resend-ambiguous', 'fail messages that may have been delivered (drop after ".") instead of resending them flagged')
    .option('--limit <n>', 'stop after attempting this many messages')
    .option('--insecure-tls', 'do not require TLS or verify certificates (warns)')
    .option('--password-file <file>', 'SMTP password file (else MAILQ_SMTP_PASSWORD)')
    .option('--config <file>', 'config file (default mailq.config.json or .yaml here)')
    .option('-y, --yes', 'do not ask for confirmation (required without a TTY above 1,000 messages)')
    .option('--json', 'NDJSON events on stdout')
    .option('--no-tui', 'no live dashboard; plain lines on stderr')
    .option('--threads <n>', 'render and MIME-build on this many worker threads; 0 on the main thread (env MAILQ_THREADS; default: one per core beside the main thread)')
    .option('--metrics-port <port>', 'Prometheus endpoint on 127.0.0.1:<port>/metrics while sending; 0 picks a free port (env MAILQ_METRICS_PORT)');
}

function explicitFlags(cmd: Command, flags: CliSendFlags): SendFlags {
  const out: SendFlags = { ...flags };
  // commander gives --no-resend-ambiguous a default of true; only an explicit flag may override env/config.
  if (cmd.getOptionValueSource('resendAmbiguous') === 'default') delete out.resendAmbiguous;
  delete (out as CliSendFlags).campaign;
  // A --limit is for this run only (a canary); resume must not inherit it.
  delete out.limit;
  delete (out as CliSendFlags).yes;
  delete (out as CliSendFlags).json;
  delete (out as CliSendFlags).tui;
  return out;
}

export function registerSend(program: Command): void {
  sendOptions(program.command('send').description('send a campaign (resumable: stop any time, then `mailq resume`)'))
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .action(async (flags: CliSendFlags, cmd: Command) => {
      const explicit = explicitFlags(cmd, flags);
      const settings = resolveSendSettings({ ...explicit, ...(flags.limit === undefined ? {} : { limit: flags.limit }) }, process.env, process.cwd());
      process.exitCode = await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign ?? '');
        return runSend(store, campaign, settings, flags, { ...explicit, transport: settings.transport === undefined ? undefined : redactUrl(settings.transport) });
      });
    });

  sendOptions(program.command('resume').description('continue an interrupted send with the settings it stored'))
    .option('-c, --campaign <name>', 'campaign (default: the only unfinished one)')
    .action(async (flags: CliSendFlags, cmd: Command) => {
      process.exitCode = await withStore(cmd, async (store) => {
        let campaign: Campaign;
        if (flags.campaign !== undefined) campaign = await requireCampaign(store, flags.campaign);
        else {
          const open = (await store.listCampaigns()).filter((c) => c.campaign.status === 'sending' || c.campaign.status === 'paused');
          const only = open[0];
          if (open.length !== 1 || only === undefined) {
            throw new InputError(
              open.length === 0 ? 'no unfinished campaign to resume' : `${open.length} unfinished campaigns: ${open.map((c) => c.campaign.name).join(', ')}`,
              open.length === 0 ? 'start one with `mailq send --campaign <name>`' : 'name one with --campaign',
            );
          }
          campaign = only.campaign;
        }
        const stored = parseStored(await store.campaignSettings(campaign.id));
        const explicit = explicitFlags(cmd, flags);
        // Flags given now win over what the interrupted send stored.
        const merged: SendFlags = { ...(stored.flags ?? {}), ...Object.fromEntries(Object.entries(explicit).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0))) };
        const settings = resolveSendSettings({ ...merged, ...(flags.limit === undefined ? {} : { limit: flags.limit }) }, process.env, process.cwd());
        return runSend(store, campaign, settings, { ...flags, yes: flags.yes ?? false }, merged);
      });
    });
}
