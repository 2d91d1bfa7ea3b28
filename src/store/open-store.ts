import path from 'node:path';
import { InputError } from '../errors.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './types.js';

export const DEFAULT_DB = 'mailq.db';

/** Resolves --db / MAILQ_DB / ./mailq.db and opens the matching backend. */
export function resolveDbLocation(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const value = flag ?? env['MAILQ_DB'] ?? DEFAULT_DB;
  if (value.trim() === '') throw new InputError('--db / MAILQ_DB is empty', 'give a file path such as ./mailq.db');
  return value;
}

export function openStore(location: string): Store {
  if (/^postgres(ql)?:\/\//i.test(location)) {
    throw new InputError(
      `PostgreSQL databases are not supported yet (${location.replace(/\/\/[^@/]*@/, '//…@')})`,
      'use a SQLite file path for --db',
    );
  }
  return new SqliteStore(path.resolve(location));
}
