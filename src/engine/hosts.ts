import type { RunHealth } from '../store/types.js';

/**
 * Health of the runs (`mailq send` / `resume` processes, on one host or many)
 * sending a campaign, as `mailq status` and the dashboard show it. Pure: the
 * store gives each run's heartbeat age, this decides what it means.
 */

/** How often a run writes its heartbeat and figures (store.reportRun). */
export const HEARTBEAT_MS = 5_000;
/**
 * A run not heard from for this long is shown as `silent`: six missed
 * heartbeats is more than a busy event loop or a slow commit explains, but it
 * may still come back, so its messages are not taken yet.
 */
export const SILENT_AFTER_MS = 30_000;
/**
 * The lease of a message being sent: longer than the longest SMTP attempt
 * (2-minute socket timeout per stage), so a live attempt never loses its row.
 * A run whose heartbeat is older than this is `lost`, and the others take its
 * messages over (runner reclaimDeadRuns).
 */
export const LEASE_MS = 10 * 60_000;
/** `mailq status` and the dashboard list runs that finished this recently, besides the open ones. */
export const FINISHED_WITHIN_MS = 60 * 60_000;

export type HostState =
  /** Heartbeat within SILENT_AFTER_MS (and, on this host, its process exists). */
  | 'alive'
  /** No heartbeat for SILENT_AFTER_MS, not yet the lease: maybe stuck, maybe cut off. */
  | 'silent'
  /** Its process is gone (this host) or silent past the lease: its messages are (or will be) taken over. */
  | 'lost'
  | 'finished';

export interface HostHealth {
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAgeMs: number;
  readonly state: HostState;
  /** How a finished run ended (`finished`, `stopped:signal`, `fatal`, `lost`…); undefined while open. */
  readonly outcome: string | undefined;
  readonly sent: number;
  /** Sent in the minute before its last heartbeat; 0 for a run that is not alive. */
  readonly sentLastMinute: number;
  /** The run asking (the dashboard's own process). */
  readonly self: boolean;
}

export interface ClassifyContext {
  /** This machine's hostname: pids are only meaningful here. */
  readonly host: string;
  /** The asking run's owner, if any. */
  readonly self: string | undefined;
  readonly alive: (pid: number) => boolean;
  /** The asking process's pid: another run with it on this host died and the pid was reused. */
  readonly pid?: number;
  readonly leaseMs?: number;
}

export function hostState(run: RunHealth, ctx: ClassifyContext): HostState {
  if (run.finishedAt !== undefined) return run.outcome === 'lost' ? 'lost' : 'finished';
  if (run.owner === ctx.self) return 'alive';
  if (run.host === ctx.host && (run.pid === ctx.pid || !ctx.alive(run.pid))) return 'lost';
  if (run.heartbeatAgeMs > (ctx.leaseMs ?? LEASE_MS)) return 'lost';
  if (run.heartbeatAgeMs > SILENT_AFTER_MS) return 'silent';
  return 'alive';
}

export function classifyRuns(runs: readonly RunHealth[], ctx: ClassifyContext): HostHealth[] {
  return runs.map((r) => {
    const state = hostState(r, ctx);
    return {
      owner: r.owner,
      host: r.host,
      pid: r.pid,
      startedAt: r.startedAt,
      heartbeatAgeMs: r.heartbeatAgeMs,
      state,
      outcome: r.outcome,
      sent: r.sent,
      sentLastMinute: state === 'alive' ? r.sentLastMinute : 0,
      self: r.owner === ctx.self,
    };
  });
}

/** kill(pid, 0): EPERM means the process exists but belongs to someone else. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
