import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Alert, EngineEvent } from '../engine/events.js';
import type { ActionSettings } from './config.js';

/**
 * What an alert does besides being shown: run a command and/or POST to a
 * webhook. Both are best effort: time-limited, and a failure is one warning
 * line, never a failed send. Actions of one kind run one at a time, in order,
 * so a receiver sees `firing` before its `resolved`.
 */

/** The JSON an action receives: the alert plus where it comes from; never a recipient address. */
export interface AlertPayload {
  readonly type: 'alert';
  readonly at: string;
  readonly campaign: string;
  readonly rule: Alert['rule'];
  readonly state: Alert['state'];
  readonly severity: Alert['severity'];
  readonly message: string;
}

export function alertPayload(campaign: string, at: number, alert: Alert): AlertPayload {
  return { type: 'alert', at: new Date(at).toISOString(), campaign, rule: alert.rule, state: alert.state, severity: alert.severity, message: alert.message };
}

/**
 * A webhook URL often is the secret (Slack, Teams and PagerDuty put the token
 * in the path or query), so only its scheme and host are ever shown.
 */
export function redactWebhook(url: string): string {
  try {
    const u = new URL(url);
    const rest = u.pathname === '/' && u.search === '' ? '' : '/…';
    return `${u.protocol}//${u.host}${rest}`;
  } catch {
    return '(webhook)';
  }
}

/** The first line of a child's stderr, capped: enough to explain a failure in one warning line. */
function firstLine(text: string): string {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function spawnCommand(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv) {
  return spawn(cmd, args, { env, stdio: ['pipe', 'ignore', 'pipe'], shell: false });
}

export interface ActionContext {
  readonly campaign: string;
  readonly warn: (line: string) => void;
  /** Environment handed to the command (secrets are removed from it). */
  readonly env: NodeJS.ProcessEnv;
}

/** Variables a command gets that it has no business seeing. */
const SECRET_ENV = ['MAILQ_SMTP_PASSWORD'];

export class AlertActions {
  private commandChain: Promise<void> = Promise.resolve();
  private webhookChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly settings: ActionSettings,
    private readonly context: ActionContext,
  ) {}

  readonly onEvent = (e: EngineEvent): void => {
    if (e.type !== 'alert') return;
    const payload = alertPayload(this.context.campaign, e.at, e.alert);
    const { command, webhook } = this.settings;
    if (command !== undefined) this.commandChain = this.commandChain.then(() => this.runCommand(command, payload));
    if (webhook !== undefined) this.webhookChain = this.webhookChain.then(() => this.post(webhook, payload));
  };

  /** Waits for the actions started so far; each is time-limited, so this ends. */
  async drain(): Promise<void> {
    await Promise.all([this.commandChain, this.webhookChain]);
  }

  private runCommand(argv: readonly string[], payload: AlertPayload): Promise<void> {
    const [cmd, ...args] = argv;
    if (cmd === undefined) return Promise.resolve();
    const name = path.basename(cmd);
    const env: NodeJS.ProcessEnv = { ...this.context.env };
    for (const k of SECRET_ENV) delete env[k];
    Object.assign(env, {
      MAILQ_ALERT_RULE: payload.rule,
      MAILQ_ALERT_STATE: payload.state,
      MAILQ_ALERT_SEVERITY: payload.severity,
      MAILQ_ALERT_MESSAGE: payload.message,
      MAILQ_ALERT_CAMPAIGN: payload.campaign,
      MAILQ_ALERT_AT: payload.at,
    });
    const timeoutMs = this.settings.commandTimeoutMs;
    const warn = (why: string): void => this.context.warn(`mailq: warning: alert command ${name} (${payload.rule} ${payload.state}): ${why}`);
    let child: ReturnType<typeof spawnCommand>;
    try {
      child = spawnCommand(cmd, args, env);
    } catch (err) {
      warn(err instanceof Error ? err.message : String(err));
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let stderr = '';
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let settled = false;
      const settle = (why: string | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.stderr.destroy();
        if (why !== undefined) warn(why);
        resolve();
      };
      const outcome = (e: { code: number | null; signal: NodeJS.Signals | null }): string | undefined => {
        if (e.code === 0) return undefined;
        const line = firstLine(stderr);
        return `${e.code === null ? `killed by ${e.signal ?? 'a signal'}` : `exited with code ${e.code}`}${line === '' ? '' : `: ${line}`}`;
      };
      const timer = setTimeout(() => {
        // Exited, but a process it left behind still holds stderr: judge by the exit status.
        if (exit !== undefined) return settle(outcome(exit));
        child.kill('SIGKILL');
        settle(`timed out after ${timeoutMs} ms and was killed`);
      }, timeoutMs);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < 4096) stderr += d;
      });
      child.on('error', (err) => settle(err.message));
      child.on('exit', (code, signal) => (exit = { code, signal }));
      // 'close' comes after stderr is drained, so the warning can quote it.
      child.on('close', (code, signal) => settle(outcome(exit ?? { code, signal })));
      // A command that does not read stdin closes it early: not a failure.
      child.stdin.on('error', () => undefined);
      child.stdin.end(`${JSON.stringify(payload)}\n`);
    });
  }

  private async post(url: string, payload: AlertPayload): Promise<void> {
    const shown = redactWebhook(url);
    const warn = (why: string): void => this.context.warn(`mailq: warning: alert webhook ${shown} (${payload.rule} ${payload.state}): ${why}`);
    // fetch refuses credentials in the URL: https://user:token@host/ becomes HTTP basic auth.
    const target = new URL(url);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'mailq-alerts' };
    if (target.username !== '' || target.password !== '') {
      headers['authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}`;
      target.username = '';
      target.password = '';
    }
    try {
      const res = await fetch(target, {
        method: 'POST',
        headers,
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.settings.webhookTimeoutMs),
      });
      // Read the body so the connection is released; its content does not matter.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) warn(`HTTP ${res.status}`);
    } catch (err) {
      const e = err as Error & { cause?: unknown };
      const why =
        e.name === 'TimeoutError'
          ? `no answer within ${this.settings.webhookTimeoutMs} ms`
          : e.cause instanceof Error
            ? e.cause.message
            : e.message;
      // Error texts from fetch can quote the URL; never let the token through.
      warn([url, target.href].reduce((text, u) => text.split(u).join(shown), why));
    }
  }
}
