import path from 'node:path';
import { InputError } from '../errors.js';
import type { AlertRule } from '../engine/events.js';
import { parseDuration, parseRate, type Rate } from '../engine/units.js';

/**
 * Alert settings: the five rules with their thresholds, the hysteresis, and
 * the optional actions. Defaults below; the `alerts` section of the config
 * file and of the --rules file override them field by field (the rules file
 * wins, as it is the more specific of the two).
 */

export type Severity = 'warning' | 'critical';

interface RuleCommon {
  readonly enabled: boolean;
  readonly severity: Severity;
}

export interface QueueStalledSettings extends RuleCommon {
  /** No outcome for this long while work is due. */
  readonly afterMs: number;
}

export interface RatioSettings extends RuleCommon {
  /** A fraction (0.2 = 20 %); the rule holds above it. */
  readonly threshold: number;
  readonly windowMs: number;
  /** Fewer outcomes than this in the window never fire the rule: 1 failure of 2 is not a rate. */
  readonly minSamples: number;
}

export interface RateFloorSettings extends RuleCommon {
  /** Sent messages per second below which the rule holds; undefined = rule off. */
  readonly floor: Rate | undefined;
  readonly windowMs: number;
  /** From the run's start: connections and the throttle's first tokens make the first minutes slow. */
  readonly warmupMs: number;
}

export interface ConnectionsFailingSettings extends RuleCommon {
  readonly windowMs: number;
  /** Connection failures needed, all attempts of the window failing to connect. */
  readonly minFailures: number;
}

export interface ActionSettings {
  /** argv, run without a shell; the alert JSON on stdin. */
  readonly command: readonly string[] | undefined;
  readonly commandTimeoutMs: number;
  /** http(s) URL the alert JSON is POSTed to; may hold a token, so it is never printed in full. */
  readonly webhook: string | undefined;
  readonly webhookTimeoutMs: number;
}

export interface AlertSettings {
  readonly 'queue-stalled': QueueStalledSettings;
  readonly 'error-rate': RatioSettings;
  readonly 'rate-floor': RateFloorSettings;
  readonly 'bounce-rate': RatioSettings;
  readonly 'connections-failing': ConnectionsFailingSettings;
  /** A firing alert resolves only after its condition has been clear this long (no flapping). */
  readonly clearForMs: number;
  readonly actions: ActionSettings;
}

export const ALERT_RULES: readonly AlertRule[] = ['queue-stalled', 'error-rate', 'rate-floor', 'bounce-rate', 'connections-failing'];

/**
 * Defaults, and why:
 * - queue-stalled 5 min: the longest normal gap is a retry backoff, which is
 *   not "due" work; 5 min without any outcome while work is due is a stuck
 *   relay, a throttle pause or a hung connection.
 * - error-rate 20 % of >= 20 outcomes in 5 min: greylisting alone defers
 *   first attempts at some providers, so lower thresholds cry wolf.
 * - rate-floor off: a sensible floor depends on the throttle settings (a
 *   rules file at 10/m would trip any fixed default); set one per campaign.
 * - bounce-rate 5 % of >= 50 final outcomes in 10 min: Amazon SES puts an
 *   account under review at a 5 % bounce rate; a list that bounces this
 *   much needs cleaning before it damages the sender's reputation.
 * - connections-failing: >= 5 connection failures in 2 min and nothing
 *   else, i.e. the relay is unreachable.
 * - clear for 1 min: resolves only once the condition stayed clear across
 *   several progress ticks (2-5 s apart), so a rate hovering at its
 *   threshold does not fire and resolve every tick.
 */
export function defaultAlertSettings(): AlertSettings {
  return {
    'queue-stalled': { enabled: true, severity: 'critical', afterMs: 5 * 60_000 },
    'error-rate': { enabled: true, severity: 'warning', threshold: 0.2, windowMs: 5 * 60_000, minSamples: 20 },
    'rate-floor': { enabled: false, severity: 'warning', floor: undefined, windowMs: 5 * 60_000, warmupMs: 2 * 60_000 },
    'bounce-rate': { enabled: true, severity: 'critical', threshold: 0.05, windowMs: 10 * 60_000, minSamples: 50 },
    'connections-failing': { enabled: true, severity: 'critical', windowMs: 2 * 60_000, minFailures: 5 },
    clearForMs: 60_000,
    actions: { command: undefined, commandTimeoutMs: 10_000, webhook: undefined, webhookTimeoutMs: 5_000 },
  };
}

type Raw = Record<string, unknown>;

function object(v: unknown, where: string): Raw {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${where} must be an object`);
  return v as Raw;
}

function onlyKeys(raw: Raw, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) throw new InputError(`${where}: unknown key "${key}"`, `known keys: ${allowed.join(', ')}`);
  }
}

function text(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new InputError(`${where} must be a string`);
}

function duration(v: unknown, where: string, positive = true): number {
  const ms = parseDuration(text(v, where), where);
  if (positive && ms <= 0) throw new InputError(`${where} must be longer than 0`);
  return ms;
}

function count(v: unknown, where: string): number {
  const t = text(v, where);
  if (!/^\d+$/.test(t) || Number(t) < 1 || !Number.isSafeInteger(Number(t))) throw new InputError(`${where} must be a whole number >= 1 (got "${t}")`);
  return Number(t);
}

/** A percentage: 20, "20" or "20%" (never a fraction, so 0.2 means 0.2 %). */
function percent(v: unknown, where: string): number {
  const t = text(v, where).trim();
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(t);
  const n = m?.[1] === undefined ? Number.NaN : Number(m[1]);
  if (!(n > 0 && n <= 100)) throw new InputError(`${where} must be a percentage above 0 and at most 100 (got "${t}")`, 'e.g. 5 or "5%"');
  return n / 100;
}

function severity(v: unknown, where: string): Severity {
  if (v === 'warning' || v === 'critical') return v;
  throw new InputError(`${where} must be "warning" or "critical"`);
}

function bool(v: unknown, where: string): boolean {
  if (typeof v === 'boolean') return v;
  throw new InputError(`${where} must be true or false`);
}

/** `false` turns a rule off, `true` on with its settings; an object overrides fields (and turns it on unless enabled: false). */
function ruleObject(v: unknown, where: string): Raw {
  if (typeof v === 'boolean') return { enabled: v };
  const raw = object(v, where);
  return raw['enabled'] === undefined ? { ...raw, enabled: true } : raw;
}

function common<T extends RuleCommon>(base: T, raw: Raw, where: string): T {
  return {
    ...base,
    enabled: raw['enabled'] === undefined ? base.enabled : bool(raw['enabled'], `${where}.enabled`),
    severity: raw['severity'] === undefined ? base.severity : severity(raw['severity'], `${where}.severity`),
  };
}

function ratio(base: RatioSettings, v: unknown, where: string): RatioSettings {
  const raw = ruleObject(v, where);
  onlyKeys(raw, ['enabled', 'severity', 'threshold', 'window', 'minSamples'], where);
  return {
    ...common(base, raw, where),
    threshold: raw['threshold'] === undefined ? base.threshold : percent(raw['threshold'], `${where}.threshold`),
    windowMs: raw['window'] === undefined ? base.windowMs : duration(raw['window'], `${where}.window`),
    minSamples: raw['minSamples'] === undefined ? base.minSamples : count(raw['minSamples'], `${where}.minSamples`),
  };
}

function commandArgv(v: unknown, where: string, baseDir: string): string[] {
  const argv = Array.isArray(v) && v.every((x): x is string => typeof x === 'string') ? v : [];
  const [cmd, ...args] = argv;
  if (cmd === undefined || cmd === '') {
    throw new InputError(`${where} must be a non-empty array of strings (argv, run without a shell)`, 'e.g. ["./notify.sh", "--team", "mail"]');
  }
  // Paths in the config file are relative to the file; a bare name is looked up on PATH.
  const resolved = cmd.includes('/') && !path.isAbsolute(cmd) ? path.resolve(baseDir, cmd) : cmd;
  return [resolved, ...args];
}

function webhookUrl(v: unknown, where: string): string {
  const t = text(v, where);
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    // The URL may carry a token: name the setting, not the value.
    throw new InputError(`${where} is not a URL`, 'use http(s)://host/path');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InputError(`${where} must be an http:// or https:// URL (got ${url.protocol})`);
  return t;
}

function actions(base: ActionSettings, v: unknown, where: string, baseDir: string): ActionSettings {
  const raw = object(v, where);
  onlyKeys(raw, ['command', 'commandTimeout', 'webhook', 'webhookTimeout'], where);
  return {
    command: raw['command'] === undefined ? base.command : commandArgv(raw['command'], `${where}.command`, baseDir),
    commandTimeoutMs: raw['commandTimeout'] === undefined ? base.commandTimeoutMs : duration(raw['commandTimeout'], `${where}.commandTimeout`),
    webhook: raw['webhook'] === undefined ? base.webhook : webhookUrl(raw['webhook'], `${where}.webhook`),
    webhookTimeoutMs: raw['webhookTimeout'] === undefined ? base.webhookTimeoutMs : duration(raw['webhookTimeout'], `${where}.webhookTimeout`),
  };
}

/**
 * Applies one `alerts` section over `base`. `where` names the section in
 * errors ("mailq.config.yaml: alerts"); `baseDir` resolves a relative
 * command path.
 */
export function applyAlertConfig(base: AlertSettings, value: unknown, where: string, baseDir: string): AlertSettings {
  const raw = object(value, where);
  onlyKeys(raw, [...ALERT_RULES, 'clearFor', 'actions'], where);
  let next: AlertSettings = { ...base };
  const qs = raw['queue-stalled'];
  if (qs !== undefined) {
    const w = `${where}.queue-stalled`;
    const r = ruleObject(qs, w);
    onlyKeys(r, ['enabled', 'severity', 'after'], w);
    next = { ...next, 'queue-stalled': { ...common(base['queue-stalled'], r, w), afterMs: r['after'] === undefined ? base['queue-stalled'].afterMs : duration(r['after'], `${w}.after`) } };
  }
  if (raw['error-rate'] !== undefined) next = { ...next, 'error-rate': ratio(base['error-rate'], raw['error-rate'], `${where}.error-rate`) };
  if (raw['bounce-rate'] !== undefined) next = { ...next, 'bounce-rate': ratio(base['bounce-rate'], raw['bounce-rate'], `${where}.bounce-rate`) };
  const rf = raw['rate-floor'];
  if (rf !== undefined) {
    const w = `${where}.rate-floor`;
    const r = ruleObject(rf, w);
    onlyKeys(r, ['enabled', 'severity', 'floor', 'window', 'warmup'], w);
    const b = base['rate-floor'];
    const settings: RateFloorSettings = {
      ...common(b, r, w),
      floor: r['floor'] === undefined ? b.floor : parseRate(text(r['floor'], `${w}.floor`), `${w}.floor`),
      windowMs: r['window'] === undefined ? b.windowMs : duration(r['window'], `${w}.window`),
      warmupMs: r['warmup'] === undefined ? b.warmupMs : duration(r['warmup'], `${w}.warmup`, false),
    };
    if (settings.enabled && settings.floor === undefined) throw new InputError(`${w}: a floor is required to turn this rule on`, 'e.g. rate-floor: { floor: 2/s }');
    next = { ...next, 'rate-floor': settings };
  }
  const cf = raw['connections-failing'];
  if (cf !== undefined) {
    const w = `${where}.connections-failing`;
    const r = ruleObject(cf, w);
    onlyKeys(r, ['enabled', 'severity', 'window', 'minFailures'], w);
    const b = base['connections-failing'];
    next = {
      ...next,
      'connections-failing': {
        ...common(b, r, w),
        windowMs: r['window'] === undefined ? b.windowMs : duration(r['window'], `${w}.window`),
        minFailures: r['minFailures'] === undefined ? b.minFailures : count(r['minFailures'], `${w}.minFailures`),
      },
    };
  }
  if (raw['clearFor'] !== undefined) next = { ...next, clearForMs: duration(raw['clearFor'], `${where}.clearFor`, false) };
  if (raw['actions'] !== undefined) next = { ...next, actions: actions(base.actions, raw['actions'], `${where}.actions`, baseDir) };
  return next;
}
