import type { NextState } from '../store/types.js';
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import type { Category, Classification } from './classify.js';

/**
 * The one place that decides what happens to a message after an attempt:
 * a pure function of the classified outcome, the message's history and the
 * campaign's policy. The store applies the result with a guarded update.
 */

export interface TransitionPolicy {
  readonly maxAttempts: number;
  /** Deferred rows older than this (from the run's first start) fail as `expired`. */
  readonly maxAgeMs: number;
  readonly backoff: BackoffPolicy;
  /** Retry a message that may already have been delivered (flagged), or fail it as `unknown`. */
  readonly resendAmbiguous: boolean;
  /** When a throttled domain is retried if the server named no time. */
  readonly throttleDelayMs: number;
}

/** What the run must do besides moving the message. */
export type RunAction =
  | { readonly kind: 'none' }
  | { readonly kind: 'throttle-domain'; readonly retryAfterMs: number | undefined; readonly severe: boolean }
  | { readonly kind: 'backoff-domain'; readonly untilMs: number }
  | { readonly kind: 'breaker'; readonly cause: 'message-rejected' | 'sender-blocked' }
  | { readonly kind: 'stop'; readonly exit: 'quota' | 'fatal' };

export interface Decision {
  readonly next: NextState;
  readonly flagPossibleDuplicate: boolean;
  readonly action: RunAction;
}

export interface TransitionInput {
  readonly classification: Classification;
  /** Attempts already counted before this one. */
  readonly attemptsBefore: number;
  /** When the campaign's sending began (for max age). */
  readonly campaignStartedAt: number;
  readonly now: number;
  readonly smtpMessageId: string;
}

const NONE: RunAction = { kind: 'none' };

function retryLater(input: TransitionInput, policy: TransitionPolicy, random: () => number, flag: boolean): Decision {
  const attempts = input.attemptsBefore + 1;
  if (attempts >= policy.maxAttempts || input.now - input.campaignStartedAt >= policy.maxAgeMs) {
    return { next: { state: 'failed', reason: 'expired', suppress: false, countsAttempt: true }, flagPossibleDuplicate: flag, action: NONE };
  }
  const serverMs = input.classification.retryAfterSeconds === undefined ? undefined : input.classification.retryAfterSeconds * 1000;
  const delay = backoffDelay(policy.backoff, attempts, random, serverMs);
  return { next: { state: 'deferred', nextAttemptAt: input.now + delay, countsAttempt: true }, flagPossibleDuplicate: flag, action: NONE };
}

/** Retried without burning an attempt, but never past the campaign's max age. */
function notCounted(input: TransitionInput, policy: TransitionPolicy, delayMs: number, action: RunAction): Decision {
  if (input.now - input.campaignStartedAt >= policy.maxAgeMs) {
    return { next: { state: 'failed', reason: 'expired', suppress: false, countsAttempt: true }, flagPossibleDuplicate: false, action };
  }
  return { next: { state: 'deferred', nextAttemptAt: input.now + delayMs, countsAttempt: false }, flagPossibleDuplicate: false, action };
}

function failed(reason: Category | 'unknown', suppress: boolean, action: RunAction = NONE, flag = false): Decision {
  return { next: { state: 'failed', reason, suppress, countsAttempt: true }, flagPossibleDuplicate: flag, action };
}

export function decide(input: TransitionInput, policy: TransitionPolicy, random: () => number): Decision {
  const c = input.classification;
  const retryAfterMs = c.retryAfterSeconds === undefined ? undefined : c.retryAfterSeconds * 1000;
  switch (c.category) {
    case 'sent':
      return { next: { state: 'sent', smtpMessageId: input.smtpMessageId }, flagPossibleDuplicate: false, action: NONE };
    case 'retry':
      return retryLater(input, policy, random, false);
    case 'throttle':
      // The domain is slowed or paused; the message itself did nothing wrong.
      return notCounted(input, policy, retryAfterMs ?? policy.throttleDelayMs, {
        kind: 'throttle-domain',
        retryAfterMs,
        severe: c.rule === 'yahoo-tss04',
      });
    case 'connection': {
      const delay = backoffDelay(policy.backoff, input.attemptsBefore + 1, random, retryAfterMs);
      return notCounted(input, policy, delay, { kind: 'backoff-domain', untilMs: input.now + delay });
    }
    case 'ambiguous':
      // The server may own the message already: resend flagged, or stop and say so.
      return policy.resendAmbiguous ? retryLater(input, policy, random, true) : failed('unknown', false, NONE, true);
    case 'bad-recipient':
      return failed('bad-recipient', true);
    case 'message-rejected':
      return failed('message-rejected', false, { kind: 'breaker', cause: 'message-rejected' });
    case 'sender-blocked':
      // Our sending is the problem, not the address: never suppress it.
      return failed('sender-blocked', false, { kind: 'breaker', cause: 'sender-blocked' });
    case 'quota':
      return { next: { state: 'released', nextAttemptAt: input.now }, flagPossibleDuplicate: false, action: { kind: 'stop', exit: 'quota' } };
    case 'fatal':
      return { next: { state: 'released', nextAttemptAt: input.now }, flagPossibleDuplicate: false, action: { kind: 'stop', exit: 'fatal' } };
  }
}
