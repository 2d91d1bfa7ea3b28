import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { SCHEMA_VERSION } from '../../src/store/sqlite/migrations.js';
import { storeContract } from './contract.js';
import { sendStoreContract } from './send-contract.js';

function tempDb(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-store-')), 'm.db');
}

storeContract('sqlite', () => Promise.resolve(new SqliteStore(tempDb())));
sendStoreContract('sqlite', () => Promise.resolve(new SqliteStore(tempDb())));

describe('SQLite specifics', () => {
  it('runs in WAL with synchronous=FULL and records the schema version', async () => {
    const file = tempDb();
    const store = new SqliteStore(file);
    await store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('reopening an up-to-date database keeps its data (migrations are not re-run)', async () => {
    const file = tempDb();
    const a = new SqliteStore(file);
    await a.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
    await a.close();
    const b = new SqliteStore(file);
    expect(await b.getCampaign('c')).toBeDefined();
    await b.close();
  });

  it('moves the write-ahead log into the database file when the import end is in sight', async () => {
    const file = tempDb();
    const store = new SqliteStore(file);
    const c = await store.createCampaign({ name: 'c', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
    const run = await store.beginImport(c.id, '/data/a.csv', ['email', 'n']);
    // ~1,600 pages a batch: past the 1,000 of the default checkpoint, short of the import's 16,384.
    const batch = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({ line: i + 2, address: `${prefix}${i}@example.com`, varsJson: `[null,"${'x'.repeat(200)}"]` }));
    await store.insertBatch(run, batch('a', 20_000), []);
    // Committed to the log only.
    const start = fs.statSync(file).size;
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(4 * 1024 * 1024);
    await store.importEndInSight(run.id);
    const copied = fs.statSync(file).size;
    expect(copied).toBeGreaterThan(start + 4 * 1024 * 1024);
    // The next batch starts the log over, and cuts its file to 4 MiB.
    await store.insertBatch(run, batch('b', 100), []);
    expect(fs.statSync(`${file}-wal`).size).toBeLessThanOrEqual(4 * 1024 * 1024);
    // Later batches are checkpointed as they commit.
    await store.insertBatch(run, batch('c', 20_000), []);
    expect(fs.statSync(file).size).toBeGreaterThan(copied + 4 * 1024 * 1024);
    expect((await store.finishImport(run.id, { rejected: 0, total: 40_100 })).imported).toBe(40_100);
    await store.close();
  });

  it('applies synchronous=FULL on its own connection', () => {
    const file = tempDb();
    const store = new SqliteStore(file);
    // The pragma is per connection, so ask through the store's own handle.
    const inner = (store as unknown as { db: Database.Database }).db;
    expect(inner.pragma('synchronous', { simple: true })).toBe(2);
    return store.close();
  });
});
