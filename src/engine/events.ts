import type { StateCounts } from '../store/types.js';
import type { Category } from './classify.js';
import type { HostHealth } from './hosts.js';

/**
 * Everything the engine has to say, as data. UIs (plain lines, NDJSON, the
 * dashboard), alerts and metrics listen; the engine never prints. Recipient
 * addresses are not in events: a message is named by its CSV line.
 */
export type EngineEvent =
  | { readonly type: 'run-started'; readonly at: number; readonly campaign: string; readonly owner: string; readonly transport: string; readonly counts: StateCounts; readonly reclaimed: number }
  /** latencyMs: from the lease to the final reply (250). */
  | { readonly type: 'message-sent'; readonly at: number; readonly line: number; readonly domain: string; readonly latencyMs: number; readonly possibleDuplicate: boolean }
  | { readonly type: 'message-deferred'; readonly at: number; readonly line: number; readonly domain: string; readonly category: Category; readonly code: number | undefined; readonly reply: string | undefined; readonly retryAt: number }
  | { readonly type: 'message-failed'; readonly at: number; readonly line: number; readonly domain: string; readonly category: Category | 'render'; readonly reason: string; readonly code: number | undefined; readonly reply: string | undefined }
  | { readonly type: 'lease-lost'; readonly at: number; readonly line: number }
  /** key: the throttle key (a domain, or a provider group such as "google"). */
  | { readonly type: 'domain-throttled'; readonly at: number; readonly key: string; readonly until: number; readonly paused: boolean; readonly reason: string }
  | { readonly type: 'domain-resumed'; readonly at: number; readonly key: string }
  | { readonly type: 'breaker-tripped'; readonly at: number; readonly cause: string; readonly count: number }
  /** The operator paused (`p` in the dashboard) or continued leasing; in-flight messages finish either way. */
  | { readonly type: 'leasing-paused'; readonly at: number }
  | { readonly type: 'leasing-resumed'; readonly at: number }
  | { readonly type: 'alert'; readonly at: number; readonly alert: Alert }
  | { readonly type: 'stopping'; readonly at: number; readonly reason: StopReason; readonly graceful: boolean }
  | {
      readonly type: 'progress';
      readonly at: number;
      readonly counts: StateCounts;
      readonly inFlight: number;
      readonly openConnections: number;
      /** In-flight SMTP transactions older than STALLED_MS. */
      readonly stalled: number;
      /** Earliest next_attempt_at among deferred messages, if any. */
      readonly nextRetryAt: number | undefined;
      /** Leasing paused by the operator. */
      readonly paused: boolean;
      /** Every run of the campaign (this one included), open or finished within the hour, when the store could tell. */
      readonly hosts?: readonly HostHealth[];
    }
  | { readonly type: 'run-finished'; readonly at: number; readonly outcome: RunOutcome; readonly counts: StateCounts; readonly possibleDuplicates: number };

/** An in-flight transaction this old counts as stalled in progress events and the dashboard. */
export const STALLED_MS = 30_000;

export type StopReason = 'signal' | 'breaker' | 'quota' | 'fatal' | 'limit';

export type RunOutcome =
  | { readonly kind: 'finished' }
  | { readonly kind: 'stopped'; readonly reason: Exclude<StopReason, 'fatal'>; readonly message: string }
  | { readonly kind: 'fatal'; readonly message: string };

export type AlertRule = 'queue-stalled' | 'error-rate' | 'rate-floor' | 'bounce-rate' | 'connections-failing';

/** One alert transition: `firing` when a rule's condition starts to hold, `resolved` when it stops. */
export interface Alert {
  readonly rule: AlertRule;
  readonly state: 'firing' | 'resolved';
  readonly severity: 'warning' | 'critical';
  /** One line for humans, with the figures that tripped it (no recipient addresses). */
  readonly message: string;
}
