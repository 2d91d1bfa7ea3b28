import type { Pool, PoolClient, PoolConfig } from 'pg';
import { InputError, MailqError } from '../../errors.js';
import { APPLICATION, LOCK_CLASS, META_TABLE, SCHEMA_VERSION, migrations } from './migrations.js';
import { sslOption, type PgTarget } from './url.js';

/**
 * Connections per store. The engine keeps up to --concurrency attempts in
 * flight, but each store call is one short statement (a lease, an outcome),
 * so a few connections keep up; more would only cost server memory per host.
 */
const POOL_SIZE = 4;
/** A server that accepts TCP but never answers must not hang a command forever. */
const CONNECT_TIMEOUT_MS = 10_000;

const INT8_OID = 20;

/** Error codes of a connection that failed or broke (Node's, and PostgreSQL's class 08 and 57P). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Turns a failure to reach or log in to the server into one line naming
 * host:port/db with a hint (exit 2); anything else is returned unchanged.
 */
export function connectionError(err: unknown, target: PgTarget): Error {
  if (err instanceof MailqError) return err;
  const code = errorCode(err);
  const message = errorMessage(err);
  const where = `PostgreSQL at ${target.label}`;
  const user = target.user ?? process.env['PGUSER'] ?? 'the current OS user';
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new InputError(`cannot connect to ${where} (${code})`, 'check that the server is running and the host and port in --db / MAILQ_DB');
  }
  if (/timeout/i.test(message) && /connect/i.test(message)) {
    return new InputError(`cannot connect to ${where}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s`, 'check the host and port in --db / MAILQ_DB, and any firewall');
  }
  if (code === '28P01' || code === '28000') {
    return new InputError(
      `${where} refused user "${user}": ${message}`,
      'give the password in PGPASSWORD or in a file named by MAILQ_DB_PASSWORD_FILE, and check the user in --db',
    );
  }
  if (/SASL|client password must be a string|password authentication/i.test(message)) {
    return new InputError(`${where} asks user "${user}" for a password and none was given`, 'set PGPASSWORD or MAILQ_DB_PASSWORD_FILE');
  }
  if (code === '3D000') {
    return new InputError(`${where}: database "${target.database}" does not exist`, `create it (createdb ${target.database}) or fix the database in --db`);
  }
  if (code === '42501') {
    return new InputError(`${where}: permission denied: ${message}`, 'mailq needs to create tables in its schema (and the schema itself, with ?schema=)');
  }
  if (code?.startsWith('08') === true || code?.startsWith('57P') === true || /Connection terminated/i.test(message)) {
    return new InputError(`lost the connection to ${where}: ${message}`, 'check the server; `mailq resume` continues where this stopped');
  }
  return err instanceof Error ? err : new Error(message);
}

/** A pool whose clients read int8 (ids, counts, epoch ms) as JS numbers: all of them stay below 2^53. */
export async function createPool(target: PgTarget): Promise<Pool> {
  const pg = (await import('pg')).default;
  const parseInt8 = (value: string): number => Number(value);
  const config: PoolConfig = {
    host: target.host,
    port: target.port,
    database: target.database,
    max: POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: target.applicationName,
    types: {
      // pg-types declares its parsers as returning `any`; int8 is ours, every other type keeps pg's parser.
      getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((value: string) => unknown) =>
        oid === INT8_OID ? parseInt8 : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as typeof pg.types.getTypeParser,
    },
  };
  if (target.user !== undefined) config.user = target.user;
  if (target.password !== undefined) config.password = target.password;
  const ssl = sslOption(target.sslMode);
  if (ssl !== undefined) config.ssl = ssl;
  // Only this schema on search_path: `public` (or another team's schema) is never read or written by accident.
  if (target.schema !== undefined) config.options = `-c search_path=${target.schema}`;
  const pool = new pg.Pool(config);
  // An idle client whose server went away emits here; without a listener that kills the process.
  // The next query fails on its own and is reported then.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Brings the schema to the current version, once per store, in one
 * transaction under an advisory lock: two hosts starting at once run the
 * migrations once, the second sees the result of the first.
 */
export async function migrate(client: PoolClient, target: PgTarget): Promise<void> {
  const where = `${target.label}${target.schema === undefined ? '' : ` schema ${target.schema}`}`;
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock($1, hashtext(coalesce($2::text, current_schema(), '')))`, [LOCK_CLASS, target.schema ?? null]);
    if (target.schema !== undefined) {
      const exists = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [target.schema]);
      // The name is checked against [a-z_][a-z0-9_]* (url.ts), so it needs no quoting.
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${target.schema}`);
    }
    const current = await client.query<{ schema: string | null }>(`SELECT current_schema() AS schema`);
    const schema = current.rows[0]?.schema ?? null;
    if (schema === null) {
      throw new InputError(`PostgreSQL at ${where}: no schema on search_path to create tables in`, 'add ?schema=<name> to --db');
    }
    const hasMeta = await client.query<{ t: string | null }>(`SELECT to_regclass(format('%I.mailq_meta', current_schema())) AS t`);
    let version = 0;
    if (hasMeta.rows[0]?.t !== null && hasMeta.rows[0]?.t !== undefined) {
      const meta = await client.query<{ key: string; value: string }>(`SELECT key, value FROM mailq_meta`);
      const get = (k: string): string | undefined => meta.rows.find((r) => r.key === k)?.value;
      if (get('application') !== APPLICATION) {
        throw new InputError(`PostgreSQL at ${where} (schema ${schema}) is not a mailq schema`, 'point --db / MAILQ_DB at a mailq schema, or add ?schema=<new name>');
      }
      version = Number(get('schema_version') ?? '0');
    } else {
      const tables = await client.query<{ n: number }>(
        `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r','p','v','m','f')`,
      );
      if ((tables.rows[0]?.n ?? 0) > 0) {
        throw new InputError(
          `PostgreSQL at ${where}: schema ${schema} already holds other tables and is not a mailq schema`,
          'give mailq its own schema with ?schema=<name> in --db',
        );
      }
      await client.query(META_TABLE);
      await client.query(`INSERT INTO mailq_meta (key, value) VALUES ('application', $1), ('schema_version', '0')`, [APPLICATION]);
    }
    if (version > SCHEMA_VERSION) {
      throw new InputError(
        `PostgreSQL at ${where} was written by a newer mailq (schema version ${version}; this mailq knows up to ${SCHEMA_VERSION})`,
        'upgrade mailq to open this database',
      );
    }
    for (let v = version; v < SCHEMA_VERSION; v++) {
      const sql = migrations[v];
      if (sql !== undefined) await client.query(sql);
    }
    if (version < SCHEMA_VERSION) {
      await client.query(`UPDATE mailq_meta SET value = $1 WHERE key = 'schema_version'`, [String(SCHEMA_VERSION)]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
