import { InputError } from '../errors.js';
import type { Rate } from './units.js';

/**
 * The scheduler's admission control (DESIGN.md §7). Pure bookkeeping: no
 * timers, no waiting, the clock is injected. The scheduler asks
 * tryAcquire(domain) while leasing and skips domains that say no, so a
 * throttled or paused domain never holds up the others.
 *
 * Per bucket key (a provider group, an overridden domain, or any other domain):
 * - a token bucket: capacity max(1, rate/s) tokens (a 1-second burst), refilled
 *   continuously from the clock;
 * - a connection cap: at most `connections` transactions in flight;
 * - AIMD: a throttle reply halves the rate (floor 1/min) and holds it for a
 *   10 min cool-down; afterwards each minute with a success adds back 10% of
 *   the configured rate. Repeated throttling, a server retry-after or a
 *   "severe" reply (Yahoo TSS04) pauses the key instead.
 * A global bucket (whole-run cap) must also have a token: a message takes one
 * from both or from neither.
 */

export interface DomainLimit {
  readonly rate: Rate;
  readonly connections: number;
}

export interface ProviderGroup {
  readonly name: string;
  /** Lowercase punycode recipient domains that share ONE bucket and ONE connection cap. */
  readonly domains: readonly string[];
  readonly limit: DomainLimit;
  /** Pause on a severe throttle reply; defaults to ThrottleTuning.defaultSeverePauseMs (30 min). */
  readonly severePauseMs?: number;
}

export interface ThrottleConfig {
  /** Whole-run cap, across all domains. */
  readonly globalRate: Rate | undefined;
  /** For domains not in any group or override. */
  readonly defaultLimit: DomainLimit;
  /** Per domain (from --domain-rate / rules file); wins over groups: the domain gets its own bucket. */
  readonly overrides: ReadonlyMap<string, DomainLimit>;
  readonly groups: readonly ProviderGroup[];
}

export type DomainStatus =
  | { readonly kind: 'open' }
  /** Rate multiplied by factor (0 < factor < 1) at least until `until`; afterwards sustained success restores it step by step. */
  | { readonly kind: 'slowed'; readonly factor: number; readonly until: number }
  | { readonly kind: 'paused'; readonly until: number; readonly reason: string };

export interface StateRow {
  readonly key: string;
  readonly status: DomainStatus;
  readonly rateFactor: number;
}

export interface ThrottleTuning {
  /** How long a halved rate holds before recovery starts. */
  readonly coolDownMs: number;
  /** No key is ever slowed below this rate (messages per second). */
  readonly floorPerSecond: number;
  /** Additive increase: fraction of the configured rate given back per recovery step. */
  readonly recoveryStep: number;
  /** At most one recovery step per this interval, and only on a success. */
  readonly recoveryIntervalMs: number;
  /** Throttle replies within this window of the last halving are the same episode: no further halving. */
  readonly reactionWindowMs: number;
  /** This many halvings, each within coolDownMs of the previous one, turn into a pause. */
  readonly strikesBeforePause: number;
  /** Severe pause for keys whose group does not set one. */
  readonly defaultSeverePauseMs: number;
  /** Cap on a server's retry-after pause. */
  readonly maxPauseMs: number;
}

export const defaultThrottleTuning: ThrottleTuning = {
  // KumoMTA's shipped automations hold a throttled rate for 15-90 min
  // (community shaping.toml: Gmail "unusual rate" 30m, Outlook "Server busy"
  // 15m, default rule 90m); 10 min then a gradual climb sits at the short end
  // because our recovery is additive, not all at once when the rule expires.
  coolDownMs: 10 * 60_000,
  // KumoMTA's harshest SetConfig is max_message_rate "1/minute" (Yahoo TS02, Outlook, default rule).
  floorPerSecond: 1 / 60,
  // 0.5 -> 1.0 in 5 steps of a minute each: full rate back ~15 min after the last throttle reply.
  recoveryStep: 0.1,
  recoveryIntervalMs: 60_000,
  // With 5 connections all transactions in flight when the provider starts
  // deferring get the same 421 within a few seconds; they are one signal, not
  // five (one halving, like TCP's one window reduction per round trip).
  reactionWindowMs: 10_000,
  // KumoMTA triggers its Suspend actions on thresholds of 2-5 matches per hour; 3 halvings
  // (rate / 8) within ~20 min mean slowing is not working.
  strikesBeforePause: 3,
  defaultSeverePauseMs: 30 * 60_000,
  maxPauseMs: 24 * 3_600_000,
};

/** Float slack for token comparisons: 6,000 refills of 10 ms accumulate ~1e-12 of error. */
const EPS = 1e-9;

interface KeyState {
  readonly key: string;
  readonly limit: DomainLimit;
  readonly severePauseMs: number;
  /** floorPerSecond / configured rate, capped at 1. */
  readonly floorFactor: number;
  tokens: number;
  refilledAt: number;
  inFlight: number;
  factor: number;
  /** Earliest time the factor may step up again. */
  nextIncreaseAt: number;
  /** 0 when never paused; a pause is in force while pausedUntil > now. */
  pausedUntil: number;
  pauseReason: string;
  lastCongestionAt: number | undefined;
  strikes: number;
}

interface GlobalBucket {
  readonly perSecond: number;
  tokens: number;
  refilledAt: number;
}

function checkLimit(limit: DomainLimit, what: string): void {
  const r = limit.rate.perSecond;
  if (!(r > 0) || !Number.isFinite(r)) throw new InputError(`${what}: the rate must be greater than 0, got ${r}/s`);
  if (!Number.isInteger(limit.connections) || limit.connections < 1) {
    throw new InputError(`${what}: connections must be a whole number >= 1, got ${limit.connections}`);
  }
}

export class Throttle {
  private readonly tuning: ThrottleTuning;
  private readonly defaultLimit: DomainLimit;
  private readonly overrides = new Map<string, DomainLimit>();
  private readonly groupsByName = new Map<string, ProviderGroup>();
  private readonly groupOfDomain = new Map<string, ProviderGroup>();
  private readonly keys = new Map<string, KeyState>();
  private readonly global: GlobalBucket | undefined;

  constructor(
    config: ThrottleConfig,
    private readonly now: () => number,
    tuning: Partial<ThrottleTuning> = {},
  ) {
    this.tuning = { ...defaultThrottleTuning, ...tuning };
    checkLimit(config.defaultLimit, 'default domain limit');
    this.defaultLimit = config.defaultLimit;
    for (const [domain, limit] of config.overrides) {
      checkLimit(limit, `--domain-rate ${domain}`);
      this.overrides.set(domain.toLowerCase(), limit);
    }
    for (const group of config.groups) {
      checkLimit(group.limit, `provider group ${group.name}`);
      if (group.name === '' || this.groupsByName.has(group.name)) {
        throw new InputError(`provider group ${JSON.stringify(group.name)} is defined twice or has no name`);
      }
      this.groupsByName.set(group.name, group);
      for (const raw of group.domains) {
        const domain = raw.toLowerCase();
        const other = this.groupOfDomain.get(domain);
        if (other !== undefined) {
          throw new InputError(`${domain} is listed in two provider groups: ${other.name} and ${group.name}`);
        }
        this.groupOfDomain.set(domain, group);
      }
    }
    if (config.globalRate !== undefined) {
      checkLimit({ rate: config.globalRate, connections: 1 }, 'global rate');
      const perSecond = config.globalRate.perSecond;
      this.global = { perSecond, tokens: Math.max(1, perSecond), refilledAt: now() };
    }
  }

  /** The bucket key: the domain itself when overridden, else its group's name, else the domain. */
  keyFor(domain: string): string {
    const d = domain.toLowerCase();
    if (this.overrides.has(d)) return d;
    return this.groupOfDomain.get(d)?.name ?? d;
  }

  /** The configured (not slowed) limit that applies to this domain's key. */
  limitFor(domain: string): DomainLimit {
    return this.limitForKey(this.keyFor(domain));
  }

  /** May a message to this domain start now? Consumes a domain token, a global token and a connection slot when yes. */
  tryAcquire(domain: string): boolean {
    const now = this.now();
    const s = this.stateFor(domain);
    if (s.pausedUntil > now) return false;
    if (s.inFlight >= s.limit.connections) return false;
    this.refill(s, now);
    if (s.tokens < 1 - EPS) return false;
    const g = this.global;
    if (g !== undefined) {
      this.refillGlobal(g, now);
      if (g.tokens < 1 - EPS) return false;
      g.tokens -= 1;
    }
    s.tokens -= 1;
    s.inFlight += 1;
    return true;
  }

  /** A transaction finished (any outcome): frees the connection slot. */
  release(domain: string): void {
    const s = this.keys.get(this.keyFor(domain));
    if (s === undefined || s.inFlight === 0) {
      // A release without an acquire would silently raise the connection cap: a bug, not an outcome.
      throw new Error(`throttle: release(${domain}) without a matching tryAcquire`);
    }
    s.inFlight -= 1;
  }

  /**
   * Earliest time (ms, integer) at which tryAcquire(domain) could succeed; `now`
   * when it could succeed at once. Number.POSITIVE_INFINITY when every
   * connection slot is taken: only a release can help, and the scheduler is
   * told about releases anyway.
   */
  nextOpportunity(domain: string): number {
    const now = this.now();
    let at = now;
    const s = this.keys.get(this.keyFor(domain));
    if (s !== undefined) {
      if (s.inFlight >= s.limit.connections) return Number.POSITIVE_INFINITY;
      if (s.pausedUntil > now) at = s.pausedUntil;
      this.refill(s, now);
      if (s.tokens < 1 - EPS) at = Math.max(at, now + ((1 - s.tokens) * 1000) / this.ratePerSecond(s));
    }
    const g = this.global;
    if (g !== undefined) {
      this.refillGlobal(g, now);
      if (g.tokens < 1 - EPS) at = Math.max(at, now + ((1 - g.tokens) * 1000) / g.perSecond);
    }
    return Math.ceil(at);
  }

  /**
   * A throttle reply. The first reply of an episode halves the key's rate
   * (floor 1/min) and holds it for the cool-down; replies within the
   * reaction window (10 s) of that halving are the same episode. Pauses the
   * key when the server gave a retry-after (capped at 24 h), when `severe`
   * (the group's severe pause: Yahoo 2 h, others 30 min), or on the third
   * halving in a row each within a cool-down of the previous one.
   */
  onThrottle(domain: string, info: { retryAfterMs?: number; severe?: boolean; reason: string }): DomainStatus {
    const now = this.now();
    const s = this.stateFor(domain);
    const t = this.tuning;
    let pauseFor = 0;
    if (info.retryAfterMs !== undefined && Number.isFinite(info.retryAfterMs) && info.retryAfterMs > 0) {
      pauseFor = Math.min(Math.ceil(info.retryAfterMs), t.maxPauseMs);
    }
    if (info.severe === true) pauseFor = Math.max(pauseFor, s.severePauseMs);
    const last = s.lastCongestionAt;
    if (last === undefined || now - last >= t.reactionWindowMs) {
      s.strikes = last !== undefined && now - last < t.coolDownMs ? s.strikes + 1 : 1;
      s.lastCongestionAt = now;
      this.setFactor(s, s.factor / 2, now);
      s.nextIncreaseAt = Math.max(s.nextIncreaseAt, now + t.coolDownMs);
      if (s.strikes >= t.strikesBeforePause) {
        pauseFor = Math.max(pauseFor, s.severePauseMs);
        s.strikes = 0;
      }
    }
    if (pauseFor > 0) this.applyPause(s, now + pauseFor, info.reason);
    return this.statusOf(s, now);
  }

  /** Additive increase: after the cool-down, at most one step (10% of the configured rate) per minute, each earned by a success. */
  onSuccess(domain: string): void {
    const s = this.keys.get(this.keyFor(domain));
    if (s === undefined || s.factor >= 1) return;
    const now = this.now();
    if (s.pausedUntil > now || now < s.nextIncreaseAt) return;
    this.setFactor(s, s.factor + this.tuning.recoveryStep, now);
    s.nextIncreaseAt = now + this.tuning.recoveryIntervalMs;
  }

  /** Pause the domain's key until `until`. Never shortens a pause already in force. */
  pause(domain: string, until: number, reason: string): void {
    this.applyPause(this.stateFor(domain), until, reason);
  }

  status(domain: string): DomainStatus {
    const s = this.keys.get(this.keyFor(domain));
    return s === undefined ? { kind: 'open' } : this.statusOf(s, this.now());
  }

  /** Transactions in flight on this domain's key (shared by a group). */
  inFlight(domain: string): number {
    return this.keys.get(this.keyFor(domain))?.inFlight ?? 0;
  }

  /** Every key seen so far, open ones included, so a persisted stale slow-down gets overwritten. */
  exportState(): ReadonlyArray<StateRow> {
    const now = this.now();
    return [...this.keys.values()].map((s) => ({ key: s.key, status: this.statusOf(s, now), rateFactor: s.factor }));
  }

  /**
   * Restore persisted rows (a resume). Replaces each key's pause and rate
   * factor; keeps its in-flight count. A 'slowed' row resumes recovery at its
   * `until`; after a pause, a slowed key holds its factor for one more
   * cool-down, as it would have without the restart.
   */
  importState(rows: ReadonlyArray<StateRow>): void {
    const now = this.now();
    for (const row of rows) {
      const s = this.stateForKey(row.key);
      const statusFactor = row.status.kind === 'slowed' ? row.status.factor : 1;
      const factor = Number.isFinite(row.rateFactor) && row.rateFactor > 0 ? row.rateFactor : statusFactor;
      this.setFactor(s, factor, now);
      s.pausedUntil = 0;
      s.pauseReason = '';
      s.nextIncreaseAt = row.status.kind === 'slowed' ? row.status.until : now;
      if (row.status.kind === 'paused') this.applyPause(s, row.status.until, row.status.reason);
    }
  }

  private limitForKey(key: string): DomainLimit {
    return this.overrides.get(key) ?? this.groupsByName.get(key)?.limit ?? this.defaultLimit;
  }

  private stateFor(domain: string): KeyState {
    return this.stateForKey(this.keyFor(domain));
  }

  private stateForKey(key: string): KeyState {
    const existing = this.keys.get(key);
    if (existing !== undefined) return existing;
    const limit = this.limitForKey(key);
    // An overridden domain of a group (say yahoo.fr) keeps its provider's severe pause.
    const group = this.groupsByName.get(key) ?? this.groupOfDomain.get(key);
    const created: KeyState = {
      key,
      limit,
      severePauseMs: group?.severePauseMs ?? this.tuning.defaultSeverePauseMs,
      floorFactor: Math.min(1, this.tuning.floorPerSecond / limit.rate.perSecond),
      tokens: Math.max(1, limit.rate.perSecond),
      refilledAt: this.now(),
      inFlight: 0,
      factor: 1,
      nextIncreaseAt: 0,
      pausedUntil: 0,
      pauseReason: '',
      lastCongestionAt: undefined,
      strikes: 0,
    };
    this.keys.set(key, created);
    return created;
  }

  private ratePerSecond(s: KeyState): number {
    return s.limit.rate.perSecond * s.factor;
  }

  private refill(s: KeyState, now: number): void {
    const rate = this.ratePerSecond(s);
    // A clock stepping backwards refills nothing and does not rewind the mark (no double credit later).
    const elapsed = Math.max(0, now - s.refilledAt);
    s.tokens = Math.min(Math.max(1, rate), s.tokens + (elapsed * rate) / 1000);
    s.refilledAt = Math.max(s.refilledAt, now);
  }

  private refillGlobal(g: GlobalBucket, now: number): void {
    const elapsed = Math.max(0, now - g.refilledAt);
    g.tokens = Math.min(Math.max(1, g.perSecond), g.tokens + (elapsed * g.perSecond) / 1000);
    g.refilledAt = Math.max(g.refilledAt, now);
  }

  /**
   * Change the rate factor. Tokens earned so far count at the old rate; the
   * next refill clips them to the new capacity (10 tokens become 5 on a halving).
   */
  private setFactor(s: KeyState, factor: number, now: number): void {
    this.refill(s, now);
    // 0.5 + 5 * 0.1 is 0.9999999999999999 in binary floating point: snap to 1.
    s.factor = factor > 1 - EPS ? 1 : Math.max(s.floorFactor, factor);
  }

  private applyPause(s: KeyState, until: number, reason: string): void {
    if (until > s.pausedUntil) {
      s.pausedUntil = until;
      s.pauseReason = reason;
    }
    // Coming back from a pause, a slowed key holds its factor for a full cool-down before climbing.
    if (s.factor < 1) s.nextIncreaseAt = Math.max(s.nextIncreaseAt, s.pausedUntil + this.tuning.coolDownMs);
  }

  private statusOf(s: KeyState, now: number): DomainStatus {
    if (s.pausedUntil > now) return { kind: 'paused', until: s.pausedUntil, reason: s.pauseReason };
    if (s.factor < 1) return { kind: 'slowed', factor: s.factor, until: Math.max(s.nextIncreaseAt, now) };
    return { kind: 'open' };
  }
}
