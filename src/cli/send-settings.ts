import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InputError } from '../errors.js';
import { parseBackoff, parseDomainRate, parseDuration, parseRate, type Rate } from '../engine/units.js';
import type { DomainLimit } from '../engine/throttle.js';
import { applyAlertConfig, defaultAlertSettings, type AlertSettings } from '../alerts/config.js';

/**
 * Send settings from three layers: flags win over MAILQ_* environment
 * variables, which win over the config file (mailq.config.json / .yaml in the
 * working directory, or --config). Secrets are never settings: the SMTP
 * password comes from MAILQ_SMTP_PASSWORD or --password-file only.
 */

export interface SendFlags {
  transport?: string;
  concurrency?: string;
  rate?: string;
  domainRate?: string[];
  rules?: string;
  maxAttempts?: string;
  maxAge?: string;
  backoff?: string;
  resendAmbiguous?: boolean;
  limit?: string;
  insecureTls?: boolean;
  passwordFile?: string;
  config?: string;
  metricsPort?: string;
  threads?: string;
}

export interface SendSettings {
  readonly transport: string | undefined;
  readonly concurrency: number;
  readonly rate: Rate | undefined;
  readonly domainLimits: ReadonlyMap<string, DomainLimit>;
  readonly maxAttempts: number;
  readonly maxAgeMs: number;
  readonly backoff: { initialMs: number; maxMs: number };
  readonly resendAmbiguous: boolean;
  readonly limit: number | undefined;
  readonly insecureTls: boolean;
  readonly passwordFile: string | undefined;
  /** Prometheus endpoint on 127.0.0.1; 0 picks a free port; undefined: none. */
  readonly metricsPort: number | undefined;
  /** Compose (render + MIME) threads; 0 composes on the main thread. */
  readonly threads: number;
  /** Alert rules and actions: defaults, then the config file's `alerts`, then the rules file's. */
  readonly alerts: AlertSettings;
}

type Raw = Record<string, unknown>;

const KEYS = ['transport', 'concurrency', 'rate', 'domainRate', 'rules', 'maxAttempts', 'maxAge', 'backoff', 'resendAmbiguous', 'insecureTls', 'passwordFile', 'metricsPort', 'threads'] as const;
/** Settings only the config file (or the rules file) can hold: structured, no flag or variable. */
const FILE_ONLY_KEYS = ['alerts'] as const;

const ENV: Record<(typeof KEYS)[number], string> = {
  transport: 'MAILQ_TRANSPORT',
  concurrency: 'MAILQ_CONCURRENCY',
  rate: 'MAILQ_RATE',
  domainRate: 'MAILQ_DOMAIN_RATE',
  rules: 'MAILQ_RULES',
  maxAttempts: 'MAILQ_MAX_ATTEMPTS',
  maxAge: 'MAILQ_MAX_AGE',
  backoff: 'MAILQ_BACKOFF',
  resendAmbiguous: 'MAILQ_RESEND_AMBIGUOUS',
  insecureTls: 'MAILQ_INSECURE_TLS',
  passwordFile: 'MAILQ_PASSWORD_FILE',
  metricsPort: 'MAILQ_METRICS_PORT',
  threads: 'MAILQ_THREADS',
};

/** Defaults: 10 in flight (KumoMTA's per-site connections), 8 attempts over at most 3 days (Postfix gives up after 5). */
const DEFAULTS = { concurrency: 10, maxAttempts: 8, maxAge: '3d', backoff: '1m:40m' };

function readStructured(file: string): Raw {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file}: ${(err as Error).message.split('\n')[0] ?? 'parse error'}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError(`${file}: expected an object at the top`);
  return value as Raw;
}

/** The config file's settings, and its folder (paths in it are relative to it). */
function configFile(flag: string | undefined, cwd: string): { raw: Raw; dir: string } {
  if (flag !== undefined) return { raw: readStructured(flag), dir: path.dirname(path.resolve(flag)) };
  for (const name of ['mailq.config.json', 'mailq.config.yaml', 'mailq.config.yml']) {
    const file = path.join(cwd, name);
    if (fs.existsSync(file)) return { raw: readStructured(file), dir: cwd };
  }
  return { raw: {}, dir: cwd };
}

function str(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new InputError(`${where} must be a string`);
}

function bool(v: unknown, where: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === '') return false;
  throw new InputError(`${where} must be true or false`);
}

function positiveInt(text: string, where: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InputError(`${where} must be a whole number >= 1 (got "${text}")`);
  return Number(text);
}

/**
 * Threads: one per core beside the main thread's by default (1 on 2 cores),
 * since the main thread keeps a core busy with SMTP and SQLite. On the
 * 2-core bench (bench/README.md) one compose thread beat two: 912-991 vs
 * 851-928 msg/s, 1.38-1.45 vs 1.53-1.62 ms CPU and ~25 MB less RSS a
 * message; a single core composes on the main thread.
 */
function threadCount(text: string | undefined): number {
  if (text === undefined) return Math.max(0, os.availableParallelism() - 1);
  if (!/^\d+$/.test(text.trim()) || Number(text) > 64) throw new InputError(`--threads must be a whole number from 0 to 64 (got "${text}")`, '0 renders on the main thread');
  return Number(text);
}

function metricsPort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65_535) throw new InputError(`--metrics-port must be a port number from 0 to 65535 (got "${text}")`, '0 picks a free port');
  return Number(text);
}

/**
 * A rules file: {"domains": {"gmail.com": "20/s:5", "example.org": {"rate": "5/s", "connections": 2}}},
 * optionally with an "alerts" section (read by resolveSendSettings).
 */
export function readRules(file: string, raw: Raw = readStructured(file)): Map<string, DomainLimit> {
  const out = new Map<string, DomainLimit>();
  for (const key of Object.keys(raw)) if (key !== 'domains' && key !== 'alerts') throw new InputError(`${file}: unknown key "${key}" (expected "domains" or "alerts")`);
  const domains = raw['domains'] ?? {};
  if (typeof domains !== 'object' || domains === null || Array.isArray(domains)) throw new InputError(`${file}: "domains" must be an object`);
  for (const [domain, spec] of Object.entries(domains as Raw)) {
    if (typeof spec === 'string') {
      const d = parseDomainRate(`${domain}=${spec}`);
      out.set(d.domain, { rate: d.rate, connections: d.connections ?? 10 });
    } else if (typeof spec === 'object' && spec !== null) {
      const s = spec as Raw;
      const rate = parseRate(str(s['rate'], `${file}: ${domain}.rate`), `${file}: ${domain}.rate`);
      const connections = s['connections'] === undefined ? 10 : positiveInt(str(s['connections'], `${file}: ${domain}.connections`), `${file}: ${domain}.connections`);
      out.set(domain.toLowerCase(), { rate, connections });
    } else throw new InputError(`${file}: domains.${domain} must be "<rate>[:<connections>]" or {rate, connections}`);
  }
  return out;
}

export function resolveSendSettings(flags: SendFlags, env: NodeJS.ProcessEnv, cwd: string): SendSettings {
  const { raw: file, dir: configDir } = configFile(flags.config, cwd);
  for (const key of Object.keys(file)) {
    if (!([...KEYS, ...FILE_ONLY_KEYS] as readonly string[]).includes(key)) throw new InputError(`config file: unknown setting "${key}"`, `known settings: ${[...KEYS, ...FILE_ONLY_KEYS].join(', ')}`);
  }
  // Layering: flag, else environment, else file.
  const pick = (key: (typeof KEYS)[number]): unknown => {
    const flag = (flags as Record<string, unknown>)[key];
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) return flag;
    const e = env[ENV[key]];
    if (e !== undefined && e !== '') return key === 'domainRate' ? e.split(',').map((s) => s.trim()).filter((s) => s !== '') : e;
    return file[key];
  };

  const domainLimits = new Map<string, DomainLimit>();
  let alerts = file['alerts'] === undefined ? defaultAlertSettings() : applyAlertConfig(defaultAlertSettings(), file['alerts'], 'config file: alerts', configDir);
  const rules = pick('rules');
  if (rules !== undefined) {
    const fromFile = rules === file['rules'] && flags.rules === undefined && env[ENV.rules] === undefined;
    const rulesPath = fromFile ? path.resolve(configDir, str(rules, 'rules')) : str(rules, 'rules');
    const rulesRaw = readStructured(rulesPath);
    for (const [d, l] of readRules(rulesPath, rulesRaw)) domainLimits.set(d, l);
    // The rules file is the more specific source: its alert settings win over the config file's.
    if (rulesRaw['alerts'] !== undefined) alerts = applyAlertConfig(alerts, rulesRaw['alerts'], `${rulesPath}: alerts`, path.dirname(path.resolve(rulesPath)));
  }
  const dr = pick('domainRate');
  const specs = dr === undefined ? [] : Array.isArray(dr) ? dr.map((x) => str(x, 'domainRate')) : [str(dr, 'domainRate')];
  for (const spec of specs) {
    const d = parseDomainRate(spec);
    domainLimits.set(d.domain, { rate: d.rate, connections: d.connections ?? domainLimits.get(d.domain)?.connections ?? 10 });
  }
  const v = (key: (typeof KEYS)[number], fallback?: string): string | undefined => {
    const x = pick(key);
    return x === undefined ? fallback : str(x, key);
  };
  const limitFlag = flags.limit;
  const rate = v('rate');
  const port = v('metricsPort');
  return {
    transport: v('transport'),
    concurrency: positiveInt(v('concurrency', String(DEFAULTS.concurrency)) as string, '--concurrency'),
    rate: rate === undefined ? undefined : parseRate(rate, '--rate'),
    domainLimits,
    maxAttempts: positiveInt(v('maxAttempts', String(DEFAULTS.maxAttempts)) as string, '--max-attempts'),
    maxAgeMs: parseDuration(v('maxAge', DEFAULTS.maxAge) as string, '--max-age'),
    backoff: parseBackoff(v('backoff', DEFAULTS.backoff) as string),
    resendAmbiguous: pick('resendAmbiguous') === undefined ? true : bool(pick('resendAmbiguous'), 'resendAmbiguous'),
    limit: limitFlag === undefined ? undefined : positiveInt(limitFlag, '--limit'),
    insecureTls: pick('insecureTls') === undefined ? false : bool(pick('insecureTls'), 'insecureTls'),
    passwordFile: v('passwordFile'),
    metricsPort: port === undefined ? undefined : metricsPort(port.trim()),
    threads: threadCount(v('threads')),
    alerts,
  };
}
