import { describe, expect, it } from 'vitest';
import type { Category, Classification } from '../../src/engine/classify.js';
import { decide, type TransitionPolicy } from '../../src/engine/transition.js';

const policy: TransitionPolicy = {
  maxAttempts: 3,
  maxAgeMs: 3_600_000,
  backoff: { initialMs: 1000, factor: 2, maxMs: 60_000, jitter: 0 },
  resendAmbiguous: true,
  throttleDelayMs: 30_000,
};

const c = (category: Category, extra: Partial<Classification> = {}): Classification => ({
  category,
  enhanced: undefined,
  retryAfterSeconds: undefined,
  rule: 'test',
  explanation: 'test',
  ...extra,
});

const input = (classification: Classification, attemptsBefore = 0, now = 10_000) => ({
  classification,
  attemptsBefore,
  campaignStartedAt: 0,
  now,
  smtpMessageId: '<id@x>',
});

const half = (): number => 0.5;

describe('decide: the state after an attempt', () => {
  it('sent', () => {
    expect(decide(input(c('sent')), policy, half)).toEqual({
      next: { state: 'sent', smtpMessageId: '<id@x>' },
      flagPossibleDuplicate: false,
      action: { kind: 'none' },
    });
  });

  it('retry backs off exponentially, honours the server, and expires after max attempts', () => {
    expect(decide(input(c('retry'), 0), policy, half).next).toEqual({ state: 'deferred', nextAttemptAt: 11_000, countsAttempt: true });
    expect(decide(input(c('retry'), 1), policy, half).next).toEqual({ state: 'deferred', nextAttemptAt: 12_000, countsAttempt: true });
    expect(decide(input(c('retry', { retryAfterSeconds: 90 }), 0), policy, half).next).toEqual({ state: 'deferred', nextAttemptAt: 100_000, countsAttempt: true });
    expect(decide(input(c('retry'), 2), policy, half).next).toEqual({ state: 'failed', reason: 'expired', suppress: false, countsAttempt: true });
  });

  it('expires anything deferred past the campaign max age', () => {
    expect(decide(input(c('retry'), 0, 3_600_000), policy, half).next).toMatchObject({ state: 'failed', reason: 'expired' });
    expect(decide(input(c('throttle'), 0, 3_600_000), policy, half).next).toMatchObject({ state: 'failed', reason: 'expired' });
  });

  it('throttle and connection problems do not use an attempt, and act on the domain', () => {
    const t = decide(input(c('throttle', { rule: 'yahoo-tss04' }), 2), policy, half);
    expect(t.next).toEqual({ state: 'deferred', nextAttemptAt: 40_000, countsAttempt: false });
    expect(t.action).toEqual({ kind: 'throttle-domain', retryAfterMs: undefined, severe: true });
    const n = decide(input(c('connection'), 2), policy, half);
    expect(n.next).toMatchObject({ state: 'deferred', countsAttempt: false });
    expect(n.action.kind).toBe('backoff-domain');
  });

  it('ambiguous: resend flagged, or fail as unknown', () => {
    const resend = decide(input(c('ambiguous')), policy, half);
    expect(resend.flagPossibleDuplicate).toBe(true);
    expect(resend.next).toMatchObject({ state: 'deferred', countsAttempt: true });
    const no = decide(input(c('ambiguous')), { ...policy, resendAmbiguous: false }, half);
    expect(no.next).toEqual({ state: 'failed', reason: 'unknown', suppress: false, countsAttempt: true });
    expect(no.flagPossibleDuplicate).toBe(true);
  });

  it('permanent failures: only bad recipients are suppressed; rejections feed the breaker', () => {
    expect(decide(input(c('bad-recipient')), policy, half).next).toEqual({ state: 'failed', reason: 'bad-recipient', suppress: true, countsAttempt: true });
    const rejected = decide(input(c('message-rejected')), policy, half);
    expect(rejected.next).toMatchObject({ state: 'failed', suppress: false });
    expect(rejected.action).toEqual({ kind: 'breaker', cause: 'message-rejected' });
    const blocked = decide(input(c('sender-blocked')), policy, half);
    expect(blocked.next).toMatchObject({ state: 'failed', suppress: false });
    expect(blocked.action).toEqual({ kind: 'breaker', cause: 'sender-blocked' });
  });

  it('quota and fatal stop the run and leave the message untouched', () => {
    expect(decide(input(c('quota')), policy, half)).toMatchObject({ next: { state: 'released' }, action: { kind: 'stop', exit: 'quota' } });
    expect(decide(input(c('fatal')), policy, half)).toMatchObject({ next: { state: 'released' }, action: { kind: 'stop', exit: 'fatal' } });
  });
});
