import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { connectionError, createPool, migrate } from './connect.js';
import type { PgTarget } from './url.js';

/**
 * A statement reused across calls: pg prepares it once per connection under
 * its name and then only sends the values.
 */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

export function statement(name: string, text: string): Statement {
  return { name: `mailq_${name}`, text };
}

/** What both the pool and a checked-out client offer: run a named statement. */
export interface Queryable {
  rows<R extends QueryResultRow>(s: Statement, values?: readonly unknown[]): Promise<R[]>;
  /** Rows changed (or returned) by the statement. */
  count(s: Statement, values?: readonly unknown[]): Promise<number>;
}

type Runner = Pool | PoolClient;

function queryable(runner: Runner, fail: (err: unknown) => Error): Queryable {
  const exec = async <R extends QueryResultRow>(s: Statement, values: readonly unknown[]) => {
    try {
      return await runner.query<R>({ name: s.name, text: s.text, values: [...values] });
    } catch (err) {
      throw fail(err);
    }
  };
  return {
    rows: async <R extends QueryResultRow>(s: Statement, values: readonly unknown[] = []) => (await exec<R>(s, values)).rows,
    count: async (s: Statement, values: readonly unknown[] = []) => (await exec(s, values)).rowCount ?? 0,
  };
}

/**
 * The connection pool of one store. Connecting and migrating happen on first
 * use (openStore stays synchronous), once; a failure there is reported to
 * every call as the same one-line error.
 */
export class PgDb {
  private ready: Promise<Pool> | undefined;
  private closed = false;

  constructor(readonly target: PgTarget) {}

  private pool(): Promise<Pool> {
    if (this.closed) return Promise.reject(new Error(`store ${this.target.location} is closed`));
    this.ready ??= this.connect();
    return this.ready;
  }

  private async connect(): Promise<Pool> {
    const pool = await createPool(this.target);
    try {
      const client = await pool.connect();
      try {
        await migrate(client, this.target);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw connectionError(err, this.target);
    }
    return pool;
  }

  private readonly fail = (err: unknown): Error => connectionError(err, this.target);

  /** A plain pg query through the pool, for code written against pg's own shape (coordination.ts). */
  async query<R extends QueryResultRow = QueryResultRow>(config: { name?: string; text: string; values?: unknown[] }): Promise<QueryResult<R>> {
    const pool = await this.pool();
    try {
      return await pool.query<R>(config);
    } catch (err) {
      throw this.fail(err);
    }
  }

  async rows<R extends QueryResultRow>(s: Statement, values: readonly unknown[] = []): Promise<R[]> {
    return queryable(await this.pool(), this.fail).rows<R>(s, values);
  }

  async one<R extends QueryResultRow>(s: Statement, values: readonly unknown[] = []): Promise<R | undefined> {
    return (await this.rows<R>(s, values))[0];
  }

  async count(s: Statement, values: readonly unknown[] = []): Promise<number> {
    return queryable(await this.pool(), this.fail).count(s, values);
  }

  /**
   * Runs `fn` in one transaction on one checked-out client; rolls back if it
   * throws. `snapshot`: a read-only transaction whose reads all see one moment.
   */
  async tx<T>(fn: (q: Queryable, client: PoolClient) => Promise<T>, mode: 'write' | 'snapshot' = 'write'): Promise<T> {
    const pool = await this.pool();
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw this.fail(err);
    }
    let broken = false;
    try {
      await client.query(mode === 'snapshot' ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
      const result = await fn(queryable(client, this.fail), client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw this.fail(err);
    } finally {
      // A client whose ROLLBACK failed is in an unknown state: destroy it rather than reuse it.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ready = this.ready;
    if (ready === undefined) return;
    try {
      await (await ready).end();
    } catch {
      // Never connected: nothing to end.
    }
  }
}
