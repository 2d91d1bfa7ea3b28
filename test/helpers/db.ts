import Database from 'better-sqlite3';

/** Reads a test's database the way an operator's tool would: a separate, read-only connection. */
export function query<T>(db: string, sql: string, ...params: unknown[]): T[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all(...params) as T[];
  } finally {
    conn.close();
  }
}
