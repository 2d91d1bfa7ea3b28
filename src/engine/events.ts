import type { StateCounts } from '../store/types.js';
import type { Category } from './classify.js';

/**
 * Everything the engine has to say, as data. UIs (plain lines, NDJSON, the
 * dashboard) listen; the engine never prints. Recipient addresses are not in
 * events: a message is named by its CSV line.
 */
export type EngineEvent =
  | { readonly type: 'run-started'; readonly at: number; readonly campaign: string; readonly owner: string; readonly transport: string; readonly counts: StateCounts; readonly reclaimed: number }
  | { readonly type: 'message-sent'; readonly at: number; readonly line: number; readonly domain: string; readonly latencyMs: number; readonly possibleDuplicate: boolean }
  | { readonly type: 'message-deferred'; readonly at: number; readonly line: number; readonly domain: string; readonly category: Category; readonly code: number | undefined; readonly reply: string | undefined; readonly retryAt: number }
  | { readonly type: 'message-failed'; readonly at: number; readonly line: number; readonly domain: string; readonly category: Category | 'render'; readonly reason: string; readonly code: number | undefined; readonly reply: string | undefined }
  | { readonly type: 'lease-lost'; readonly at: number; readonly line: number }
  | { readonly type: 'domain-throttled'; readonly at: number; readonly key: string; readonly until: number; readonly paused: boolean; readonly reason: string }
  | { readonly type: 'breaker-tripped'; readonly at: number; readonly cause: string; readonly count: number }
  | { readonly type: 'stopping'; readonly at: number; readonly reason: StopReason; readonly graceful: boolean }
  | { readonly type: 'progress'; readonly at: number; readonly counts: StateCounts; readonly inFlight: number; readonly openConnections: number }
  | { readonly type: 'run-finished'; readonly at: number; readonly outcome: RunOutcome; readonly counts: StateCounts; readonly possibleDuplicates: number };

export type StopReason = 'signal' | 'breaker' | 'quota' | 'fatal' | 'limit';

export type RunOutcome =
  | { readonly kind: 'finished' }
  | { readonly kind: 'stopped'; readonly reason: Exclude<StopReason, 'fatal'>; readonly message: string }
  | { readonly kind: 'fatal'; readonly message: string };
