import fs from 'node:fs';
import type Database from 'better-sqlite3';

/**
 * Commits the send's per-message writes (a lease, an outcome) in groups, and
 * waits for the disk off the main thread.
 *
 * A group is every write submitted while the previous group's fsync was in
 * flight, or, when none was, in one turn of the event loop. It commits in one
 * transaction at synchronous=NORMAL, which in WAL mode is only write() calls
 * (~50 µs here); then the WAL file is fsynced on libuv's thread pool, and only
 * after that fsync do the writes' promises settle. fsync is per file, not per
 * descriptor, so it makes durable what SQLite wrote through its own: a lease
 * is on disk before its message goes on the wire, an outcome before the
 * runner acts on it, exactly as with synchronous=FULL. With FULL the same
 * COMMIT blocked the main thread ~0.8 ms in fsync, a quarter of a send's wall
 * time on bench/send; now the main thread speaks SMTP meanwhile, and a write
 * waits at most two fsyncs (its group's and the one before).
 *
 * Each write runs in its own savepoint, so one that throws fails alone.
 *
 * What a crash can lose is a `sent` outcome whose message the server has
 * taken: the row is still `sending` under a dead run, so the next run takes
 * it over and resends it flagged possible_duplicate, as after a crash between
 * the server's 250 and a single commit (test/integration/send-crash.test.ts
 * reconciles that). A lost lease leaves the row as it was, and its message
 * was never sent: the lease had not settled. A committed but not yet synced
 * write is visible to other connections; on power loss it is lost with the
 * rest of the WAL's unsynced tail, and no message was sent on its strength.
 */
/** A group is committed at once when it reaches this many writes (bounds a transaction's length). */
const MAX_WRITES = 64;

interface Pending {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

type Result = { ok: true; value: unknown } | { ok: false; error: Error };

/** The transaction's statements, prepared once (better-sqlite3's db.transaction() builds four wrappers per call). */
function prepareControl(db: Database.Database) {
  return {
    normal: db.prepare('PRAGMA synchronous = NORMAL'),
    full: db.prepare('PRAGMA synchronous = FULL'),
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    savepoint: db.prepare('SAVEPOINT mailq_write'),
    release: db.prepare('RELEASE mailq_write'),
    rollbackTo: db.prepare('ROLLBACK TO mailq_write'),
  };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class GroupCommit {
  private queue: Pending[] = [];
  private timer: NodeJS.Immediate | undefined;
  /** The group whose fsync is in flight. */
  private syncing: { writes: Pending[]; results: Result[] } | undefined;
  private walFd: number | undefined;
  /** An fsync is running on the pool (it may outlive its group, settled by flush()). */
  private fsyncPending = false;
  private closed = false;
  private readonly sql: ReturnType<typeof prepareControl>;

  constructor(private readonly db: Database.Database) {
    this.sql = prepareControl(db);
  }

  /** Runs `write` in the next group's transaction; settles once that transaction is on disk. */
  submit<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: write, resolve: resolve as (value: unknown) => void, reject });
      if (this.syncing !== undefined) return; // the fsync's completion commits it
      if (this.queue.length >= MAX_WRITES) this.commitQueued();
      else this.timer ??= setImmediate(() => this.commitQueued());
    });
  }

  /**
   * Commits and syncs everything waiting, synchronously (before the database
   * closes). Groups whose fsync is still in flight are covered by this fsync.
   */
  flush(): void {
    if (this.timer !== undefined) clearImmediate(this.timer);
    this.timer = undefined;
    const inFlight = this.syncing;
    this.syncing = undefined;
    const writes = this.queue;
    this.queue = [];
    const results = writes.length > 0 ? this.commit(writes) : undefined;
    const groups: { writes: Pending[]; results: Result[] }[] = [];
    if (inFlight !== undefined) groups.push(inFlight);
    if (results !== undefined) groups.push({ writes, results });
    if (groups.length === 0) return;
    let error: Error | undefined;
    try {
      const fd = this.wal();
      if (fd !== undefined) fs.fsyncSync(fd);
    } catch (err) {
      error = asError(err);
    }
    for (const g of groups) settle(g.writes, g.results, error);
  }

  /** Stops for good: the database is closing. Call after flush(). */
  close(): void {
    this.closed = true;
    // An fsync still running on the pool closes the descriptor when it returns.
    if (this.walFd !== undefined && this.syncing === undefined && !this.fsyncPending) {
      fs.closeSync(this.walFd);
      this.walFd = undefined;
    }
  }

  private commitQueued(): void {
    this.timer = undefined;
    if (this.syncing !== undefined || this.closed) return;
    const writes = this.queue;
    this.queue = [];
    if (writes.length === 0) return;
    const results = this.commit(writes);
    if (results === undefined) return;
    let fd: number | undefined;
    try {
      fd = this.wal();
    } catch (err) {
      settle(writes, results, asError(err));
      return;
    }
    if (fd === undefined) {
      settle(writes, results, undefined);
      return;
    }
    const group = { writes, results };
    this.syncing = group;
    this.fsyncPending = true;
    fs.fsync(fd, (err) => {
      this.fsyncPending = false;
      if (this.closed) {
        // flush() already synced and settled this group.
        if (this.walFd !== undefined) fs.closeSync(this.walFd);
        this.walFd = undefined;
        return;
      }
      if (this.syncing !== group) return; // settled by flush()
      this.syncing = undefined;
      settle(writes, results, err === null ? undefined : asError(err));
      // The runner's continuations (next leases) run as microtasks of the
      // settlements above; one turn later they all join the next group.
      if (this.queue.length > 0) this.timer ??= setImmediate(() => this.commitQueued());
    });
  }

  /** One transaction at synchronous=NORMAL; undefined when BEGIN or COMMIT failed (the writes are rejected). */
  private commit(writes: Pending[]): Result[] | undefined {
    const s = this.sql;
    const results: Result[] = [];
    s.normal.run();
    try {
      try {
        // IMMEDIATE: the writes read before they write; see SqliteSendStore.lease.
        s.begin.run();
      } catch (err) {
        for (const w of writes) w.reject(asError(err));
        return undefined;
      }
      for (const w of writes) {
        s.savepoint.run();
        try {
          results.push({ ok: true, value: w.run() });
          s.release.run();
        } catch (err) {
          s.rollbackTo.run();
          s.release.run();
          results.push({ ok: false, error: asError(err) });
        }
      }
      try {
        s.commit.run();
      } catch (err) {
        if (this.db.inTransaction) s.rollback.run();
        for (const w of writes) w.reject(asError(err));
        return undefined;
      }
      return results;
    } finally {
      s.full.run();
    }
  }

  /** The WAL file, opened once it exists (the first commit creates it); fsync on it syncs SQLite's writes. */
  private wal(): number | undefined {
    if (this.walFd === undefined) {
      if (this.db.memory) return undefined;
      this.walFd = fs.openSync(`${this.db.name}-wal`, 'r+');
    }
    return this.walFd;
  }
}

function settle(writes: Pending[], results: Result[], error: Error | undefined): void {
  writes.forEach((w, i) => {
    const r = results[i];
    if (error !== undefined) w.reject(error);
    else if (r?.ok === true) w.resolve(r.value);
    else w.reject(r?.error ?? new Error('group commit lost a result'));
  });
}
