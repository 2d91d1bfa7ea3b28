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

  it('applies synchronous=FULL on its own connection', () => {
    const file = tempDb();
    const store = new SqliteStore(file);
    // The pragma is per connection, so ask through the store's own handle.
    const inner = (store as unknown as { db: Database.Database }).db;
    expect(inner.pragma('synchronous', { simple: true })).toBe(2);
    return store.close();
  });
});
