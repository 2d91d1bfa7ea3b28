import path from 'node:path';
import { InputError } from '../errors.js';
import { PgStore } from './postgres/pg-store.js';
import { isPostgresUrl } from './postgres/url.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './types.js';

export const DEFAULT_DB = 'mailq.db';

/** Resolves --db / MAILQ_DB / ./mailq.db and opens the matching backend. */
export function resolveDbLocation(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const value = flag ?? env['MAILQ_DB'] ?? DEFAULT_DB;
  if (value.trim() === '') throw new InputError('--db / MAILQ_DB is empty', 'give a file path such as ./mailq.db');
  return value;
}

/**
 * A postgres:// URL opens the PostgreSQL backend (it connects on first use,
 * so this stays synchronous); anything else is a SQLite file path.
 */
export function openStore(location: string, env: NodeJS.ProcessEnv = process.env): Store {
  if (isPostgresUrl(location)) return new PgStore(location, env);
  return new SqliteStore(path.resolve(location));
}
