import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { InputError } from '../../errors.js';
import { APPLICATION_ID, SCHEMA_VERSION, migrations } from './migrations.js';

/** Waits this long for another process's write lock before failing (a send commits every ~0.2 ms). */
const BUSY_TIMEOUT_MS = 10_000;

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Creates the file with mode 0600 before SQLite sees it: the database holds
 * every recipient's address and variables. SQLite gives the -wal and -shm files
 * the main file's mode, so they are 0600 too, whatever the umask.
 */
function ensurePrivateFile(file: string): void {
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) {
    throw new InputError(`database folder ${dir} does not exist`, 'create it, or point --db / MAILQ_DB elsewhere');
  }
  try {
    const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
    fs.fchmodSync(fd, 0o600);
    fs.closeSync(fd);
  } catch (err) {
    if (errorCode(err) === 'EEXIST') return;
    throw new InputError(`cannot create database ${file}: ${(err as Error).message}`);
  }
}

/**
 * 16 MiB of page cache (default 2 MiB): sending touches the leasing index and
 * the rows it leases; the whole address index of a 1,000,000-recipient
 * campaign (~40 MB) would not fit in any cache we can afford anyway.
 */
export const CACHE_KIB = 16_384;

export function openSqlite(file: string): Database.Database {
  ensurePrivateFile(file);
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true });
  } catch (err) {
    throw new InputError(`cannot open database ${file}: ${(err as Error).message}`);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    // better-sqlite3 leaves WAL at synchronous=NORMAL, which can lose the last
    // commits on power loss: a `sent` row must never roll back, so FULL.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`cache_size = -${CACHE_KIB}`);
    migrate(db, file);
  } catch (err) {
    db.close();
    if (errorCode(err) === 'SQLITE_NOTADB') {
      throw new InputError(`${file} is not a SQLite database`, 'point --db / MAILQ_DB at a mailq database or a new file');
    }
    throw err;
  }
  return db;
}

function migrate(db: Database.Database, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  const appId = db.pragma('application_id', { simple: true }) as number;
  const hasTables =
    (db.prepare(`SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'`).get() as { n: number }).n > 0;
  if (appId !== APPLICATION_ID && (appId !== 0 || hasTables)) {
    throw new InputError(`${file} is not a mailq database`, 'point --db / MAILQ_DB at a mailq database or a new file');
  }
  if (version > SCHEMA_VERSION) {
    throw new InputError(
      `${file} was written by a newer mailq (schema version ${version}; this mailq knows up to ${SCHEMA_VERSION})`,
      'upgrade mailq to open this database',
    );
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    const sql = migrations[v];
    if (sql === undefined) break;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
