/**
 * GroupCommit on a real SQLite file: writes of one turn share a transaction
 * and one fsync of the WAL; no write settles before that fsync has returned;
 * writes submitted meanwhile wait for the next group; one that throws fails
 * alone; the connection stays at synchronous=FULL; flush() makes everything
 * durable synchronously before a close.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GroupCommit } from '../../src/store/sqlite/group-commit.js';

function openDb(): { db: Database.Database; file: string } {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-group-')), 'g.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  return { db, file };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('GroupCommit', () => {
  it('commits the writes of one turn together, with one fsync of the WAL, and settles them after it', async () => {
    const { db } = openDb();
    const group = new GroupCommit(db);
    const insert = db.prepare<[string]>('INSERT INTO t (v) VALUES (?)');
    // Hold each fsync's completion until the test lets it go.
    const held: (() => void)[] = [];
    const fsyncs: number[] = [];
    vi.spyOn(fs, 'fsync').mockImplementation(((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      fsyncs.push(fd);
      held.push(() => {
        fs.fsyncSync(fd);
        cb(null);
      });
    }));

    const settled: number[] = [];
    const first = [1, 2, 3].map((n) => group.submit(() => Number(insert.run(`a${n}`).lastInsertRowid)).then((id) => settled.push(id)));
    await tick();
    expect(fsyncs).toHaveLength(1);
    // Committed (another connection sees the rows) but not yet on disk: nobody is told.
    const other = new Database(db.name, { readonly: true });
    expect(other.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
    expect(settled).toEqual([]);

    // Submitted while the fsync runs: queued for the next group, not committed.
    const second = group.submit(() => insert.run('b').changes);
    await tick();
    expect(other.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
    expect(fsyncs).toHaveLength(1);

    held.shift()?.();
    await Promise.all(first);
    expect(settled).toEqual([1, 2, 3]);
    await tick();
    expect(fsyncs).toHaveLength(2);
    expect(other.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 4 });
    held.shift()?.();
    expect(await second).toBe(1);
    // The group ran at NORMAL (its own fsync replaces SQLite's); the connection is FULL again.
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    other.close();
    group.close();
    db.close();
  });

  it('fails a throwing write alone; the others commit', async () => {
    const { db } = openDb();
    const group = new GroupCommit(db);
    const insert = db.prepare<[string]>('INSERT INTO t (v) VALUES (?)');
    const ok1 = group.submit(() => insert.run('x').changes);
    const bad = group.submit(() => {
      insert.run('half-done');
      throw new Error('boom');
    });
    const ok2 = group.submit(() => insert.run('y').changes);
    await expect(bad).rejects.toThrow('boom');
    expect(await ok1).toBe(1);
    expect(await ok2).toBe(1);
    expect(db.prepare('SELECT v FROM t ORDER BY id').all()).toEqual([{ v: 'x' }, { v: 'y' }]);
    group.close();
    db.close();
  });

  it('rejects the group when the fsync fails: nothing is reported durable that may not be', async () => {
    const { db } = openDb();
    const group = new GroupCommit(db);
    vi.spyOn(fs, 'fsync').mockImplementation(((_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })));
    }));
    await expect(group.submit(() => db.prepare("INSERT INTO t (v) VALUES ('z')").run().changes)).rejects.toThrow('EIO');
    group.close();
    db.close();
  });

  it('flush() commits what waits and settles the group in flight before a close; the rows survive a reopen', async () => {
    const { db, file } = openDb();
    const group = new GroupCommit(db);
    const insert = db.prepare<[string]>('INSERT INTO t (v) VALUES (?)');
    vi.spyOn(fs, 'fsync').mockImplementation(() => undefined); // never returns
    const inFlight = group.submit(() => insert.run('in-flight').changes);
    await tick();
    const waiting = group.submit(() => insert.run('waiting').changes);
    group.flush();
    group.close();
    db.close();
    expect(await inFlight).toBe(1);
    expect(await waiting).toBe(1);
    const again = new Database(file, { readonly: true });
    expect(again.prepare('SELECT v FROM t ORDER BY id').all()).toEqual([{ v: 'in-flight' }, { v: 'waiting' }]);
    again.close();
  });
});
