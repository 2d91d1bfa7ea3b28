import type { AlertRule, EngineEvent } from '../../engine/events.js';
import type { HostHealth } from '../../engine/hosts.js';
import { emptyCounts, type MessageState, type StateCounts } from '../../store/types.js';
import { clock, cleanText, duration, int, normalizeReply } from './format.js';
import { ringRate, SampleRing, SecondRing, TopStrings } from './rolling.js';
import type {
  ActiveAlert,
  DashboardSnapshot,
  DomainRow,
  ErrorCategory,
  ErrorRow,
  FinishedLine,
  Phase,
  ProgressView,
  Severity,
  ThrottleView,
} from './snapshot.js';

export type * from './snapshot.js';

/**
 * The dashboard's state, framework-free: `apply` folds engine events in, cheaply
 * (the send emits thousands a second), and `snapshot` builds an immutable view
 * a few times a second for the renderer. Every structure is bounded: per-second
 * rings, the last 1,000 latencies, 32 reply texts per error category, 10,000
 * domains, 1,000 notices.
 *
 * Counts come from `progress` events (counted by the store, every 2 s on a
 * TTY); sent and failed messages since the last one are added on top so that
 * the progress bar moves with every message rather than in 2 s steps.
 */

export interface DashboardModelOptions {
  /** Throttle key of a domain (the engine's Throttle.keyFor), so "google" pauses show on gmail.com. Default: the domain. */
  readonly keyFor?: (domain: string) => string;
  /** Rows of the domain table in a snapshot, besides throttled ones (default 20). */
  readonly topDomains?: number;
  /** Distinct domains tracked; later ones are counted in totals only (default 10,000). */
  readonly maxDomains?: number;
  /** Notices kept for <Static>; stops and breaker trips are always kept (default 1,000). */
  readonly maxLines?: number;
  /** Distinct reply texts tracked per error category (default 32). */
  readonly repliesPerCategory?: number;
  /** Latency samples kept (default 1,000). */
  readonly latencySamples?: number;
}

export interface DashboardModel {
  apply(event: EngineEvent): void;
  snapshot(): DashboardSnapshot;
}

const RATE_WINDOW_MS = 10_000;

interface DomainStats {
  readonly domain: string;
  readonly key: string;
  sent: number;
  deferred: number;
  failed: number;
  ring: SecondRing | undefined;
}

interface ErrorStats {
  deferred: number;
  failed: number;
  readonly replies: TopStrings;
  /** The last raw reply and its normalized text: a throttled or broken server repeats itself. */
  lastRaw: string | undefined;
  lastText: string;
}

interface ThrottleState extends ThrottleView {
  readonly since: number;
}

const volume = (d: DomainStats): number => d.sent + d.deferred + d.failed;

export function createDashboardModel(now: () => number, options: DashboardModelOptions = {}): DashboardModel {
  const keyFor = options.keyFor ?? ((d: string): string => d);
  const topDomains = options.topDomains ?? 20;
  const maxDomains = options.maxDomains ?? 10_000;
  const maxLines = options.maxLines ?? 1_000;
  const repliesPerCategory = options.repliesPerCategory ?? 32;

  let campaign: string | undefined;
  let transport: string | undefined;
  let startedAt: number | undefined;
  let finishedAt: number | undefined;
  let phase: Phase = { kind: 'waiting' };
  let paused = false;
  let base: StateCounts = emptyCounts();
  let startSent = 0;
  // Outcomes since the last progress event, which recounted the store.
  let liveSent = 0;
  let liveFailed = 0;
  let inFlight = 0;
  let openConnections = 0;
  let stalled = 0;
  let nextRetryAt: number | undefined;
  let possibleDuplicates = 0;

  const sentRing = new SecondRing(RATE_WINDOW_MS / 1000);
  const latencies = new SampleRing(options.latencySamples ?? 1_000);
  const errors = new Map<ErrorCategory, ErrorStats>();
  const domains = new Map<string, DomainStats>();
  let overflow = false;
  const throttles = new Map<string, ThrottleState>();
  const lowered = new Set<string>();
  const alerts = new Map<AlertRule, ActiveAlert>();
  const lines: FinishedLine[] = [];
  let droppedLines = 0;
  let seq = 0;
  let finishedView: readonly FinishedLine[] = [];
  let hosts: readonly HostHealth[] = [];

  /** Notices for other runs joining, going silent, lost or back: what an operator of many hosts must see. */
  function noteHosts(at: number, next: readonly HostHealth[]): void {
    const before = new Map(hosts.map((h) => [h.owner, h.state]));
    for (const h of next) {
      if (h.self) continue;
      const was = before.get(h.owner);
      // Runs that had ended before this one looked are history, not news.
      if (was === h.state || (was === undefined && h.outcome !== undefined)) continue;
      const name = cleanText(`${h.host}:${h.pid}`);
      if (h.state === 'lost') note(at, 'warning', `run ${name} lost (no heartbeat for ${duration(h.heartbeatAgeMs)}, or its process is gone): its messages are taken over`, true);
      else if (h.state === 'silent') note(at, 'warning', `run ${name} silent for ${duration(h.heartbeatAgeMs)}`);
      else if (h.state === 'alive') note(at, 'info', was === undefined ? `run ${name} is sending this campaign too` : `run ${name} is alive again`);
      else if (was !== undefined) note(at, 'info', `run ${name} finished`);
    }
    hosts = next;
  }

  function note(at: number, severity: Severity, text: string, always = false): void {
    if (!always && lines.length >= maxLines) {
      droppedLines++;
      return;
    }
    lines.push({ seq: seq++, at, severity, text });
  }

  function domainStats(domain: string): DomainStats | undefined {
    const d = domains.get(domain);
    if (d !== undefined) return d;
    if (domains.size >= maxDomains) {
      overflow = true;
      return undefined;
    }
    const created: DomainStats = { domain, key: keyFor(domain), sent: 0, deferred: 0, failed: 0, ring: undefined };
    domains.set(domain, created);
    return created;
  }

  function errorStats(category: ErrorCategory): ErrorStats {
    let e = errors.get(category);
    if (e === undefined) {
      e = { deferred: 0, failed: 0, replies: new TopStrings(repliesPerCategory), lastRaw: undefined, lastText: '' };
      errors.set(category, e);
    }
    return e;
  }

  function addReply(s: ErrorStats, raw: string): void {
    if (raw !== s.lastRaw) {
      s.lastRaw = raw;
      s.lastText = normalizeReply(raw);
    }
    s.replies.add(s.lastText);
  }

  function apply(e: EngineEvent): void {
    switch (e.type) {
      case 'message-sent': {
        liveSent++;
        sentRing.add(e.at);
        latencies.add(e.latencyMs);
        if (e.possibleDuplicate) possibleDuplicates++;
        const d = domainStats(e.domain);
        if (d !== undefined) {
          d.sent++;
          (d.ring ??= new SecondRing(RATE_WINDOW_MS / 1000)).add(e.at);
        }
        break;
      }
      case 'message-deferred': {
        // 'sent' is never deferred or failed; mapping it keeps ErrorCategory exact.
        const s = errorStats(e.category === 'sent' ? 'retry' : e.category);
        s.deferred++;
        if (e.reply !== undefined) addReply(s, e.reply);
        const d = domainStats(e.domain);
        if (d !== undefined) d.deferred++;
        if (nextRetryAt === undefined || e.retryAt < nextRetryAt) nextRetryAt = e.retryAt;
        break;
      }
      case 'message-failed': {
        liveFailed++;
        const s = errorStats(e.category === 'sent' ? 'retry' : e.category);
        s.failed++;
        addReply(s, e.reply ?? e.reason);
        const d = domainStats(e.domain);
        if (d !== undefined) d.failed++;
        break;
      }
      case 'progress':
        base = e.counts;
        liveSent = 0;
        liveFailed = 0;
        inFlight = e.inFlight;
        openConnections = e.openConnections;
        stalled = e.stalled;
        nextRetryAt = e.nextRetryAt;
        paused = e.paused;
        if (e.hosts !== undefined) noteHosts(e.at, e.hosts);
        startedAt ??= e.at;
        if (phase.kind === 'waiting') phase = { kind: 'running' };
        break;
      case 'run-started':
        campaign = cleanText(e.campaign);
        transport = cleanText(e.transport);
        startedAt = e.at;
        base = e.counts;
        startSent = e.counts.sent;
        liveSent = 0;
        liveFailed = 0;
        phase = { kind: 'running' };
        if (e.reclaimed > 0) note(e.at, 'warning', `took over ${int(e.reclaimed)} messages from a run that died (resent flagged as possible duplicates if their body had gone out)`, true);
        break;
      case 'domain-throttled': {
        const before = throttles.get(e.key);
        const reason = normalizeReply(e.reason);
        if (!e.paused && e.until <= e.at) {
          // The engine halved the rate without holding the domain (runner: until =
          // now when the throttle stays open): nothing to count down, and no
          // domain-resumed will follow. One notice per key.
          if (!lowered.has(e.key) && lowered.size < maxDomains) {
            lowered.add(e.key);
            note(e.at, 'info', `${e.key} rate lowered: ${reason}`);
          }
          break;
        }
        if (before === undefined && throttles.size >= maxDomains) break;
        throttles.set(e.key, { key: e.key, paused: e.paused, until: e.until, reason, since: before?.since ?? e.at });
        // One notice per change of state, not one per throttle reply: a throttled
        // provider answers every attempt with the same 421.
        if (before === undefined || before.paused !== e.paused) {
          const verb = e.paused ? 'paused' : 'slowed down';
          note(e.at, e.paused ? 'warning' : 'info', `${e.key} ${verb} until ${clock(e.until)} (${duration(e.until - e.at)}): ${reason}`);
        }
        break;
      }
      case 'domain-resumed':
        if (throttles.delete(e.key)) note(e.at, 'info', `${e.key} resumed`);
        break;
      case 'breaker-tripped':
        note(e.at, 'critical', `circuit breaker: ${int(e.count)} ${e.cause} replies in a row; stopping the run`, true);
        break;
      case 'leasing-paused':
        paused = true;
        note(e.at, 'warning', 'leasing paused: messages in flight finish, nothing new starts (p to continue)', true);
        break;
      case 'leasing-resumed':
        paused = false;
        note(e.at, 'info', 'leasing resumed', true);
        break;
      case 'alert': {
        const a = e.alert;
        const before = alerts.get(a.rule);
        const message = cleanText(a.message);
        if (a.state === 'firing') {
          alerts.set(a.rule, { rule: a.rule, severity: a.severity, message, since: before?.since ?? e.at });
          if (before === undefined || before.severity !== a.severity) note(e.at, a.severity, `ALERT ${a.severity} ${a.rule}: ${message}`);
        } else if (alerts.delete(a.rule)) {
          note(e.at, 'info', `resolved ${a.rule}: ${message}`);
        }
        break;
      }
      case 'stopping':
        phase = { kind: 'stopping', reason: e.reason, graceful: e.graceful };
        note(
          e.at,
          'warning',
          e.graceful ? `stopping (${e.reason}): finishing messages in flight; Ctrl-C again to abort them` : 'aborting messages in flight: they go back to the queue',
          true,
        );
        break;
      case 'lease-lost':
        note(e.at, 'warning', `line ${e.line}: lease lost to another run; its outcome was not recorded here`);
        break;
      case 'run-finished':
        base = e.counts;
        liveSent = 0;
        liveFailed = 0;
        inFlight = 0;
        finishedAt = e.at;
        possibleDuplicates = Math.max(possibleDuplicates, e.possibleDuplicates);
        phase = { kind: 'finished', outcome: e.outcome };
        break;
      default: {
        const unknown: never = e;
        void unknown;
      }
    }
  }

  function progressView(last10s: number): ProgressView {
    const sent = base.sent + liveSent;
    const failed = base.failed + liveFailed;
    let total = 0;
    for (const state in base) total += base[state as MessageState];
    const done = Math.min(total, sent + failed + base.suppressed + base.cancelled);
    const remaining = total - done;
    return {
      total,
      sent,
      failed,
      suppressed: base.suppressed,
      cancelled: base.cancelled,
      done,
      remaining,
      fraction: total === 0 ? 0 : done / total,
      etaMs: remaining === 0 ? 0 : last10s > 0 ? (remaining / last10s) * 1000 : undefined,
    };
  }

  function topDomainRows(t: number): DomainRow[] {
    // One pass keeping the N busiest in a small sorted array: O(domains × N)
    // worst case, but most domains fail the first comparison.
    const top: DomainStats[] = [];
    for (const d of domains.values()) {
      const v = volume(d);
      if (v === 0) continue;
      if (top.length === topDomains && v <= volume(top[top.length - 1] as DomainStats)) continue;
      let i = top.length;
      while (i > 0 && volume(top[i - 1] as DomainStats) < v) i--;
      top.splice(i, 0, d);
      if (top.length > topDomains) top.pop();
    }
    const start = startedAt ?? t;
    const row = (d: DomainStats): DomainRow => ({
      domain: d.domain,
      sent: d.sent,
      deferred: d.deferred,
      failed: d.failed,
      rate: d.ring === undefined ? 0 : ringRate(d.ring, RATE_WINDOW_MS, t, start),
      throttle: throttleView(throttles.get(d.key)),
    });
    const rows = top.map(row);
    // A throttle key none of the busiest domains maps to still gets a row: a
    // paused provider is what the operator most needs to see.
    const covered = new Set(top.map((d) => d.key));
    const missing = [...throttles.keys()].filter((k) => !covered.has(k));
    if (missing.length > 0) {
      const sums = new Map<string, DomainStats>(missing.map((k) => [k, { domain: k, key: k, sent: 0, deferred: 0, failed: 0, ring: undefined }]));
      for (const d of domains.values()) {
        const s = sums.get(d.key);
        if (s === undefined) continue;
        s.sent += d.sent;
        s.deferred += d.deferred;
        s.failed += d.failed;
        if (d.ring !== undefined) (s.ring ??= new SecondRing(RATE_WINDOW_MS / 1000)).add(t, d.ring.sum(t));
      }
      for (const s of sums.values()) rows.push(row(s));
    }
    const rank = (r: DomainRow): number => (r.throttle === undefined ? 2 : r.throttle.paused ? 0 : 1);
    return rows.sort((a, b) => rank(a) - rank(b) || b.sent + b.deferred + b.failed - (a.sent + a.deferred + a.failed));
  }

  function throttleView(s: ThrottleState | undefined): ThrottleView | undefined {
    return s === undefined ? undefined : { key: s.key, paused: s.paused, until: s.until, reason: s.reason };
  }

  function snapshot(): DashboardSnapshot {
    const t = now();
    const start = startedAt ?? t;
    const end = finishedAt ?? t;
    const last10s = startedAt === undefined ? 0 : ringRate(sentRing, RATE_WINDOW_MS, t, start);
    const progress = progressView(last10s);
    const overall = end > start ? ((progress.sent - startSent) * 1000) / Math.max(1000, end - start) : 0;
    const errorRows: ErrorRow[] = [];
    for (const [category, s] of errors) errorRows.push({ category, deferred: s.deferred, failed: s.failed, reply: s.replies.top() });
    errorRows.sort((a, b) => b.deferred + b.failed - (a.deferred + a.failed));
    if (finishedView.length !== lines.length) finishedView = lines.slice();
    return {
      at: t,
      campaign,
      transport,
      startedAt,
      phase,
      paused,
      progress,
      rate: { last10s, overall: Math.max(0, overall) },
      queue: { queued: base.queued, sending: base.sending, deferred: base.deferred, nextRetryAt, failed: progress.failed, suppressed: base.suppressed },
      errors: errorRows,
      latency: { p50: latencies.percentile(50), p95: latencies.percentile(95), samples: latencies.size },
      domains: topDomainRows(t),
      domainCount: domains.size,
      moreDomains: overflow,
      health: { openConnections, inFlight, stalled, possibleDuplicates },
      alerts: [...alerts.values()].sort((a, b) => (a.severity === b.severity ? a.since - b.since : a.severity === 'critical' ? -1 : 1)),
      finished: finishedView,
      droppedLines,
      hosts,
    };
  }

  return { apply, snapshot };
}
