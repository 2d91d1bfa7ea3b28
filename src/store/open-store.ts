import path from 'node:path';
import { InputError } from '../errors.js';
import { isPostgresUrl } from './postgres/url.js';
import type { Store } from './types.js';

export const DEFAULT_DB = 'mailq.db';

/** Resolves --db / MAILQ_DB / ./mailq.db and opens the matching backend. */
export function resolveDbLocation(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const value = flag ?? env['MAILQ_DB'] ?? DEFAULT_DB;
  if (value.trim() === '') throw new InputError('--db / MAILQ_DB is empty', 'give a file path such as ./mailq.db');
  return value;
}

/**
 * A postgres:// URL opens the PostgreSQL backend (it connects on first use);
 * anything else is a SQLite file path. Each backend is loaded only when
 * used: the PostgreSQL one (with pg) took ~25 ms to load before every
 * SQLite command's first step.
 */
export async function openStore(location: string, env: NodeJS.ProcessEnv = process.env): Promise<Store> {
  if (isPostgresUrl(location)) {
    const { PgStore } = await import('./postgres/pg-store.js');
    return new PgStore(location, env);
  }
  const { SqliteStore } = await import('./sqlite/sqlite-store.js');
  return new SqliteStore(path.resolve(location));
}
