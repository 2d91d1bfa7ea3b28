import type { Category } from '../../engine/classify.js';
import type { AlertRule, RunOutcome, StopReason } from '../../engine/events.js';
import type { HostHealth } from '../../engine/hosts.js';

/** What the dashboard model hands the renderer, a few times a second: plain immutable data. */

export type ErrorCategory = Exclude<Category, 'sent'> | 'render';

export type Phase =
  | { readonly kind: 'waiting' }
  | { readonly kind: 'running' }
  | { readonly kind: 'stopping'; readonly reason: StopReason; readonly graceful: boolean }
  | { readonly kind: 'finished'; readonly outcome: RunOutcome };

export interface ProgressView {
  /** Every recipient of the campaign, whatever its state. */
  readonly total: number;
  readonly sent: number;
  readonly failed: number;
  readonly suppressed: number;
  readonly cancelled: number;
  /** sent + failed + suppressed + cancelled. */
  readonly done: number;
  /** queued + sending + deferred. */
  readonly remaining: number;
  readonly fraction: number;
  /** From the last-10-s rate; undefined when nothing was sent in that window. */
  readonly etaMs: number | undefined;
}

export interface RateView {
  /** Messages sent per second over the last 10 s (DESIGN.md §9). */
  readonly last10s: number;
  /** Messages sent by this run per second since it started. */
  readonly overall: number;
}

export interface QueueView {
  readonly queued: number;
  readonly sending: number;
  readonly deferred: number;
  /** Earliest retry among deferred messages. */
  readonly nextRetryAt: number | undefined;
  readonly failed: number;
  readonly suppressed: number;
}

export interface ErrorRow {
  readonly category: ErrorCategory;
  readonly deferred: number;
  readonly failed: number;
  /** The most common reply text of the category (addresses and trace ids masked). */
  readonly reply: string | undefined;
}

export interface LatencyView {
  /** Lease to final 250, over the last `samples` messages sent. */
  readonly p50: number | undefined;
  readonly p95: number | undefined;
  readonly samples: number;
}

export interface ThrottleView {
  /** The throttle key: the domain itself or its provider group ("google"). */
  readonly key: string;
  readonly paused: boolean;
  readonly until: number;
  readonly reason: string;
}

export interface DomainRow {
  readonly domain: string;
  readonly sent: number;
  readonly deferred: number;
  readonly failed: number;
  /** Sent per second over the last 10 s. */
  readonly rate: number;
  readonly throttle: ThrottleView | undefined;
}

export interface HealthView {
  readonly openConnections: number;
  readonly inFlight: number;
  /** In-flight SMTP transactions older than STALLED_MS. */
  readonly stalled: number;
  readonly possibleDuplicates: number;
}

export interface ActiveAlert {
  readonly rule: AlertRule;
  readonly severity: 'warning' | 'critical';
  readonly message: string;
  readonly since: number;
}

export type Severity = 'info' | 'warning' | 'critical';

/** A notice printed once above the live region (Ink <Static>), kept in the terminal history. */
export interface FinishedLine {
  readonly seq: number;
  readonly at: number;
  readonly severity: Severity;
  readonly text: string;
}

export interface DashboardSnapshot {
  readonly at: number;
  readonly campaign: string | undefined;
  readonly transport: string | undefined;
  readonly startedAt: number | undefined;
  readonly phase: Phase;
  /** Leasing paused by the operator (`p`). */
  readonly paused: boolean;
  readonly progress: ProgressView;
  readonly rate: RateView;
  readonly queue: QueueView;
  /** Most frequent first. */
  readonly errors: readonly ErrorRow[];
  readonly latency: LatencyView;
  /** Throttled domains first (paused before slowed), then the busiest. */
  readonly domains: readonly DomainRow[];
  /** Distinct domains seen (capped at maxDomains; beyond it, `moreDomains` is true). */
  readonly domainCount: number;
  readonly moreDomains: boolean;
  readonly health: HealthView;
  /** Firing alerts, critical first. */
  readonly alerts: readonly ActiveAlert[];
  /** Append-only across snapshots (Ink <Static> prints only the new tail). */
  readonly finished: readonly FinishedLine[];
  /** Notices not kept because the cap was reached. */
  readonly droppedLines: number;
  /** Runs sending this campaign (this one included), from the last progress event; empty when unknown. */
  readonly hosts: readonly HostHealth[];
}
