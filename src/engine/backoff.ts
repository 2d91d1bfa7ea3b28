/**
 * Retry delays for deferred messages (DESIGN.md §8). A pure function of the
 * policy, the attempt number, an injected random source and the server's
 * own "try again in N seconds", so the schedule is testable without sleeping.
 */

export interface BackoffPolicy {
  /** Delay before the first retry. */
  readonly initialMs: number;
  /** Growth per attempt: delay(n) = initialMs * factor^(n-1), before jitter and cap. */
  readonly factor: number;
  /** Cap on the computed delay (a server's retry-after may exceed it, up to 24 h). */
  readonly maxMs: number;
  /**
   * Width of the jitter window as a fraction of the delay, centred on it:
   * delay * (1 + jitter * (random - 0.5)). 0.5 means ±25%; 0 disables it.
   * Centred rather than AWS-style "full jitter" (uniform in [0, delay]) so
   * that the mean schedule is the nominal one an operator reads in the docs,
   * and a retry never comes back almost at once to a greylisting server that
   * asked for patience.
   */
  readonly jitter: number;
}

/**
 * 60 s doubling, capped at 40 min: 1, 2, 4, 8, 16, 32, 40, 40 … minutes for
 * attempts 1..8, which is DESIGN.md §8's "about 1, 2, 5, 10, 20, 40 minutes".
 * Cumulatively that is ~1 h 03 m after 6 retries and ~2 h 23 m after 8; the
 * campaign's max age, not this schedule, decides when to give up. The first
 * minute also clears typical greylisting (Postgrey's default delay is 300 s,
 * so the third retry at ~7 min cumulative gets through). Jitter ±25% spreads
 * a batch deferred together over a 30 s window (45-75 s) on the first retry
 * and 30-40 min at the cap (the upper half is clipped by the cap).
 */
export const defaultBackoff: BackoffPolicy = {
  initialMs: 60_000,
  factor: 2,
  maxMs: 40 * 60_000,
  jitter: 0.5,
};

/** The most a server's retry-after can delay one message: a day. Longer replies are usually misparsed text. */
export const MAX_SERVER_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Delay before retry number `attempt` (1 = first retry), in whole ms.
 *
 * - nominal = min(maxMs, initialMs * factor^(attempt-1))
 * - jittered = nominal * (1 + jitter * (random() - 0.5)), then capped at maxMs
 *   again (so at the cap jitter can only shorten the wait)
 * - never below serverRetryAfterMs when given (capped at 24 h): the server's
 *   "try again in N seconds" wins over our own schedule, even above maxMs.
 *
 * Deterministic given `random`, which is called exactly once.
 */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number,
  serverRetryAfterMs?: number,
): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`backoffDelay: attempt must be an integer >= 1, got ${attempt}`);
  }
  const { initialMs, factor, maxMs, jitter } = policy;
  if (!(initialMs > 0) || !(factor >= 1) || !(maxMs >= initialMs) || !(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`backoffDelay: invalid policy ${JSON.stringify(policy)}`);
  }
  // factor^(attempt-1) overflows to Infinity past ~attempt 1024 with factor 2; min() absorbs it.
  const nominal = Math.min(maxMs, initialMs * factor ** (attempt - 1));
  const r = Math.min(Math.max(random(), 0), 1);
  const jittered = Math.min(maxMs, nominal * (1 + jitter * (r - 0.5)));
  let delay = Math.round(jittered);
  if (serverRetryAfterMs !== undefined && Number.isFinite(serverRetryAfterMs) && serverRetryAfterMs > 0) {
    delay = Math.max(delay, Math.min(Math.ceil(serverRetryAfterMs), MAX_SERVER_RETRY_AFTER_MS));
  }
  return delay;
}
