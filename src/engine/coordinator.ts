import type { RunStats, Store } from '../store/types.js';
import { classifyRuns, FINISHED_WITHIN_MS, hostState, type HostHealth } from './hosts.js';
import type { DomainStatus, StateRow, Throttle } from './throttle.js';

/**
 * What one run shares with the other runs of its campaign, through the
 * store, beside the token buckets (shared-throttle.ts):
 * - domain pauses and slow-downs: each run saves the key a throttle reply
 *   changed, and every SYNC_MS polls the persisted rows and takes over the
 *   ones stricter than its own (a later pause, a lower rate factor);
 * - its heartbeat with its figures (sent, sent in the last minute);
 * - runs that died (process gone on this host, or silent past the lease on
 *   any host): their leases are ended so that the others take their messages.
 */

/** How often the persisted domain state is polled for other runs' pauses and slow-downs. */
export const SYNC_MS = 2_000;

const EPS = 1e-9;

const pausedUntil = (s: DomainStatus, now: number): number => (s.kind === 'paused' && s.until > now ? s.until : 0);

/**
 * The row to import when `remote` (persisted by some run) is stricter than
 * our own state of the key: a pause lasting longer, or a lower rate factor.
 * Undefined when ours is at least as strict. The merge keeps the stricter of
 * each: the later pause and the lower factor, so that importing it never
 * loosens anything we had.
 */
export function stricterRow(local: StateRow | undefined, remote: StateRow, now: number): StateRow | undefined {
  const lStatus: DomainStatus = local?.status ?? { kind: 'open' };
  const lFactor = local?.rateFactor ?? 1;
  const rFactor = Number.isFinite(remote.rateFactor) && remote.rateFactor > 0 ? remote.rateFactor : 1;
  const lPause = pausedUntil(lStatus, now);
  const rPause = pausedUntil(remote.status, now);
  if (!(rPause > lPause) && !(rFactor < lFactor - EPS)) return undefined;
  const factor = Math.min(lFactor, rFactor);
  if (Math.max(lPause, rPause) > now) {
    const reason = rPause >= lPause && remote.status.kind === 'paused' ? remote.status.reason : lStatus.kind === 'paused' ? lStatus.reason : '';
    return { key: remote.key, status: { kind: 'paused', until: Math.max(lPause, rPause), reason }, rateFactor: factor };
  }
  if (factor < 1 - EPS) {
    const until = Math.max(now, lStatus.kind === 'slowed' ? lStatus.until : 0, remote.status.kind === 'slowed' ? remote.status.until : 0);
    return { key: remote.key, status: { kind: 'slowed', factor, until }, rateFactor: factor };
  }
  return undefined;
}

/** Sent messages per second over the last 60 s: 60 one-second slots. */
class MinuteCounter {
  private readonly slots = new Array<number>(60).fill(0);
  private readonly stamps = new Array<number>(60).fill(-1);
  total = 0;

  add(at: number): void {
    const sec = Math.floor(at / 1000);
    const i = ((sec % 60) + 60) % 60;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.slots[i] = 0;
    }
    this.slots[i] = (this.slots[i] ?? 0) + 1;
    this.total++;
  }

  lastMinute(now: number): number {
    const sec = Math.floor(now / 1000);
    let n = 0;
    for (let i = 0; i < 60; i++) {
      const s = this.stamps[i] ?? -1;
      if (s > sec - 60 && s <= sec) n += this.slots[i] ?? 0;
    }
    return n;
  }
}

export interface CoordinatorDeps {
  readonly store: Store;
  readonly throttle: Throttle;
  readonly now: () => number;
  /** This machine's hostname and pid, and a liveness check for pids here. */
  readonly host: string;
  readonly pid: number;
  readonly alive: (pid: number) => boolean;
}

export interface CoordinatorConfig {
  readonly campaignId: number;
  readonly owner: string;
  readonly leaseMs: number;
}

export class Coordinator {
  /** The last persisted row seen per key (status JSON and factor): only changes are considered. */
  private readonly seen = new Map<string, string>();
  private readonly sent = new MinuteCounter();
  private peers = 0;

  constructor(
    private readonly deps: CoordinatorDeps,
    private readonly config: CoordinatorConfig,
  ) {}

  /** A message of this run was sent (for the heartbeat's figures). */
  noteSent(at: number): void {
    this.sent.add(at);
  }

  stats(): RunStats {
    return { sent: this.sent.total, sentLastMinute: this.sent.lastMinute(this.deps.now()) };
  }

  async heartbeat(): Promise<void> {
    await this.deps.store.reportRun(this.config.owner, this.stats(), this.deps.now());
  }

  /** Every run of the campaign, open or finished within the hour, classified. */
  async hosts(): Promise<HostHealth[]> {
    const { store, now, host, pid, alive } = this.deps;
    const runs = await store.runHealth(this.config.campaignId, now(), FINISHED_WITHIN_MS);
    return classifyRuns(runs, { host, self: this.config.owner, alive, pid, leaseMs: this.config.leaseMs });
  }

  /**
   * Ends the leases of open runs that are lost (process gone on this host,
   * or heartbeat older than the lease anywhere) and closes them as `lost`,
   * so that their messages are taken over now. Returns the messages freed.
   */
  async reclaimDeadRuns(): Promise<number> {
    const { store, now, host, pid, alive } = this.deps;
    let freed = 0;
    let peers = 0;
    for (const run of await store.runHealth(this.config.campaignId, now(), 0)) {
      if (run.finishedAt !== undefined || run.owner === this.config.owner) continue;
      if (hostState(run, { host, self: this.config.owner, alive, pid, leaseMs: this.config.leaseMs }) !== 'lost') {
        peers++;
        continue;
      }
      freed += await store.expireLeasesOf(run.owner, now());
      await store.finishRun(run.owner, 'lost');
    }
    this.peers = peers;
    return freed;
  }

  /** Other runs sending the campaign (not lost) at the last reclaimDeadRuns: they compete for the same due messages. */
  otherRuns(): number {
    return this.peers;
  }

  /** Restores every persisted row (a resume, or joining runs already sending). */
  async restore(): Promise<void> {
    const rows = await this.load();
    this.deps.throttle.importState(rows);
  }

  /**
   * Imports the persisted rows that changed since the last look and are
   * stricter than this run's state; returns them (for domain-throttled events).
   */
  async sync(): Promise<StateRow[]> {
    const { throttle, now } = this.deps;
    const t = now();
    const local = new Map(throttle.exportState().map((r) => [r.key, r]));
    const imported: StateRow[] = [];
    for (const row of await this.load()) {
      const merged = stricterRow(local.get(row.key), row, t);
      if (merged !== undefined) imported.push(merged);
    }
    if (imported.length > 0) throttle.importState(imported);
    return imported;
  }

  /** Persists one key's state (after a throttle reply changed it) without touching the other keys' rows. */
  async saveKey(key: string): Promise<void> {
    const row = this.deps.throttle.exportState().find((r) => r.key === key);
    if (row !== undefined) await this.save([row]);
  }

  /** At the end of a run: takes in what the others persisted meanwhile, then saves every key. */
  async saveAll(): Promise<void> {
    await this.sync();
    const rows = this.deps.throttle.exportState();
    if (rows.length > 0) await this.save(rows);
  }

  private async save(rows: readonly StateRow[]): Promise<void> {
    const persisted = rows.map((r) => ({ key: r.key, statusJson: JSON.stringify(r.status), rateFactor: r.rateFactor }));
    await this.deps.store.saveDomainState(this.config.campaignId, persisted);
    for (const p of persisted) this.seen.set(p.key, `${p.statusJson}|${p.rateFactor}`);
  }

  /** Persisted rows not seen before in this form (our own saves included in `seen`). */
  private async load(): Promise<StateRow[]> {
    const rows = await this.deps.store.loadDomainState(this.config.campaignId);
    const out: StateRow[] = [];
    for (const r of rows) {
      const sig = `${r.statusJson}|${r.rateFactor}`;
      if (this.seen.get(r.key) === sig) continue;
      this.seen.set(r.key, sig);
      try {
        out.push({ key: r.key, status: JSON.parse(r.statusJson) as DomainStatus, rateFactor: r.rateFactor });
      } catch {
        // A row we cannot read is one we cannot honour; the next save overwrites it.
      }
    }
    return out;
  }
}
