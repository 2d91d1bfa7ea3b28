import type { BucketLimit, TokenGrant } from '../store/types.js';
import type { Throttle } from './throttle.js';

/**
 * Per-key rate limits that hold over every process sending a campaign
 * together (DESIGN.md §7: "shared per-domain limits across hosts").
 *
 * The in-memory Throttle stays the admission control of one process
 * (connection caps, pauses, its own pacing). This layer adds the shared
 * budget: a token bucket per (campaign, throttle key) in the database, which
 * grants tokens to the processes in small chunks. A message may only start
 * when its process holds a granted token for its key (and one for the global
 * `--rate` key when there is one). Whatever the number of processes, the
 * tokens taken from a bucket over any window of T seconds are at most
 * rate × T + burst, so the messages sent are at most that plus the tokens
 * the processes held at the window's start (each at most one chunk per key).
 *
 * Why chunks: a grant is one short write transaction. Asking per message
 * would double the writes of a send (lease, outcome, grant); a chunk of up to
 * 200 ms of the key's rate (at least 1, at most what the process has queued
 * for the domain) keeps a single process as fast as without the shared
 * layer: at the default 100/s a grant covers up to 20 messages.
 * Why tokens expire: a process asks only when it holds none, so it never
 * holds more than one chunk per key and the bound above holds whatever the
 * expiry; but tokens held and unused (connection slots busy, the key paused
 * meanwhile) are taken from the others. After holdMs (3 s) they are
 * dropped, never used: that errs on the slow side, since the bucket refills
 * at the limit's rate whatever happens. 3 s rather than 1 s: a process
 * sending 1.5 messages a second to each of 50 domains (3 processes on 2
 * cores) made one request per 2.4 messages with 1 s, one per 4.6 with 3 s.
 *
 * Pure bookkeeping over an injected clock and token source: the runner
 * passes the store (store.takeTokens), the tests a fake.
 */

export interface TokenSource {
  /** Take up to `want` tokens of `key` (see SendStore.takeTokens). */
  take(key: string, want: number, limit: BucketLimit): Promise<TokenGrant>;
  /** Give unused tokens back (see SendStore.returnTokens). */
  giveBack(key: string, count: number, limit: BucketLimit): Promise<void>;
}

export interface SharedThrottleTuning {
  /** A grant covers at most this much of the key's rate (and at least one token). */
  readonly chunkMs: number;
  /** Granted tokens not used within this long are dropped. */
  readonly holdMs: number;
  /**
   * After a short grant, ask again once the bucket could have refilled what
   * was missing, plus a random share of that wait (up to jitter × it):
   * processes told the same wait would otherwise come back at the same
   * instant, every time in the same order, and the last one would never get
   * a token. No sooner than this…
   */
  readonly minRetryMs: number;
  /** …and no later than this, whatever the bucket said (limits change). */
  readonly maxRetryMs: number;
  readonly jitter: number;
}

export const defaultSharedTuning: SharedThrottleTuning = {
  chunkMs: 200,
  holdMs: 3000,
  // Three processes polling an empty 20/s bucket every 10 ms would be 300
  // transactions a second for 20 messages; the bucket's own wait (50 ms at
  // 20/s) is what normally applies.
  minRetryMs: 10,
  maxRetryMs: 1000,
  // Tokens accumulate in the bucket meanwhile (up to its burst), so a later
  // ask gets more at once: the total rate is unchanged.
  jitter: 0.5,
};

/** The key of the shared `--rate` bucket: no domain or provider group is named "*". */
export const GLOBAL_KEY = '*';

interface Held {
  tokens: number;
  /** When the tokens held were granted (the oldest grant still held). */
  grantedAt: number;
  /** Do not ask the source before this. */
  retryAt: number;
  /** The limit of the last request, for giving tokens back. */
  limit: BucketLimit | undefined;
}

export interface SharedThrottleStats {
  /** Requests made to the token source. */
  readonly requests: number;
  readonly granted: number;
  readonly used: number;
  /** Granted tokens that expired unused. */
  readonly dropped: number;
}

/** The shared limit of a key: the configured rate times the key's current slow-down, burst one second of it (as the local bucket). */
export function sharedLimitFor(throttle: Throttle, domain: string): BucketLimit {
  const status = throttle.status(domain);
  const factor = status.kind === 'slowed' ? status.factor : 1;
  const perSecond = throttle.limitFor(domain).rate.perSecond * factor;
  return { perSecond, burst: Math.max(1, perSecond) };
}

export class SharedThrottle {
  private readonly tuning: SharedThrottleTuning;
  private readonly keys = new Map<string, Held>();
  private readonly global: BucketLimit | undefined;
  private readonly random: () => number;
  private requests = 0;
  private granted = 0;
  private used = 0;
  private dropped = 0;

  constructor(
    private readonly source: TokenSource,
    private readonly now: () => number,
    options: { readonly global?: BucketLimit | undefined; readonly tuning?: Partial<SharedThrottleTuning>; readonly random?: () => number } = {},
  ) {
    this.random = options.random ?? Math.random;
    this.tuning = { ...defaultSharedTuning, ...options.tuning };
    this.global = options.global;
  }

  /** Tokens of one grant: `chunkMs` of the rate, at least 1. */
  chunk(limit: BucketLimit): number {
    return Math.max(1, Math.floor((limit.perSecond * this.tuning.chunkMs) / 1000));
  }

  /** Tokens held for `key` now (expired ones dropped). */
  held(key: string): number {
    const h = this.keys.get(key);
    if (h === undefined) return 0;
    this.expire(h, this.now());
    return h.tokens;
  }

  /** Earliest time `ready` could succeed for this key (and the global key): now when tokens are held or may be asked for. */
  readyAt(key: string): number {
    const t = this.now();
    let at = t;
    for (const k of this.keysOf(key)) {
      const h = this.keys.get(k);
      if (h === undefined) continue;
      this.expire(h, t);
      if (h.tokens < 1) at = Math.max(at, h.retryAt);
    }
    return at;
  }

  /**
   * Holds at least one token of `key` (and of the global key) when it
   * resolves true, asking the source for a chunk where none is held. Consumes
   * nothing: the caller then asks its local throttle, and calls tryConsume().
   * `queued`: messages the caller has lined up for this key, to size the chunk.
   */
  async ready(key: string, limit: BucketLimit, queued: number): Promise<boolean> {
    for (const k of this.keysOf(key)) {
      const l = k === key ? limit : (this.global as BucketLimit);
      if (!(await this.ensure(k, l, queued))) return false;
    }
    return true;
  }

  /**
   * Uses one held token of `key` (and of the global key); false when one is
   * not held after all. No expiry here: a token ready() saw is used even if
   * its hold window ended during ready()'s own await or in the millisecond
   * since (a 1,000,000-message send died on exactly that once, at 665,522).
   */
  tryConsume(key: string): boolean {
    const hs = this.keysOf(key).map((k) => this.keys.get(k));
    if (hs.some((h) => h === undefined || h.tokens < 1)) return false;
    for (const h of hs) if (h !== undefined) h.tokens -= 1;
    this.used++;
    return true;
  }

  /**
   * Puts back the token tryConsume() took when the message could not start after
   * all (another run leased it first): it still counts as held since its grant.
   */
  refund(key: string): void {
    for (const k of this.keysOf(key)) {
      const h = this.keys.get(k);
      if (h !== undefined) h.tokens += 1;
    }
    this.used--;
  }

  /** Gives every held token back (a stopping run), so the others can use them at once. Best effort. */
  async close(): Promise<void> {
    const t = this.now();
    const back: Promise<void>[] = [];
    for (const [key, h] of this.keys) {
      this.expire(h, t);
      const n = Math.floor(h.tokens);
      if (n >= 1 && h.limit !== undefined) back.push(this.source.giveBack(key, n, h.limit).catch(() => undefined));
      h.tokens = 0;
    }
    await Promise.all(back);
  }

  stats(): SharedThrottleStats {
    return { requests: this.requests, granted: this.granted, used: this.used, dropped: this.dropped };
  }

  private keysOf(key: string): readonly string[] {
    return this.global === undefined ? [key] : [key, GLOBAL_KEY];
  }

  private expire(h: Held, t: number): void {
    if (h.tokens > 0 && t - h.grantedAt >= this.tuning.holdMs) {
      this.dropped += h.tokens;
      h.tokens = 0;
    }
  }

  private async ensure(key: string, limit: BucketLimit, queued: number): Promise<boolean> {
    const t = this.now();
    let h = this.keys.get(key);
    if (h === undefined) {
      h = { tokens: 0, grantedAt: t, retryAt: t, limit: undefined };
      this.keys.set(key, h);
    }
    this.expire(h, t);
    if (h.tokens >= 1) return true;
    if (h.retryAt > t) return false;
    const want = Math.max(1, Math.min(this.chunk(limit), Math.floor(queued)));
    h.limit = limit;
    this.requests++;
    const grant = await this.source.take(key, want, limit);
    const after = this.now();
    this.granted += grant.granted;
    if (grant.granted > 0) {
      // Expiry runs from the newest grant: the tokens held now were all granted within holdMs.
      h.tokens += grant.granted;
      h.grantedAt = after;
    }
    if (grant.granted < want) {
      // Until the bucket could hold the whole chunk again, not just one token:
      // with three processes on one 20/s key, asking at every token cost
      // ~3 requests per message (measured in the unit test), this ~1.
      const full = grant.waitMs + ((want - grant.granted - 1) * 1000) / limit.perSecond;
      const wait = Math.min(this.tuning.maxRetryMs, Math.max(this.tuning.minRetryMs, full * (1 + this.tuning.jitter * this.random())));
      h.retryAt = after + wait;
    } else {
      h.retryAt = after;
    }
    return h.tokens >= 1;
  }
}
