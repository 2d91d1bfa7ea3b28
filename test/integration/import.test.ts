import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { fixture, runCli, tempDir, templateDir } from '../helpers/cli.js';

interface Summary {
  campaign: string;
  imported: number;
  duplicates: number;
  rejected: number;
  total: number;
}

function importJson(db: string, csv: string, extra: string[] = []): Summary {
  const r = runCli(['--db', db, 'import', csv, '--campaign', 'c1', '--template', templateDir('newsletter'), '--json', ...extra]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Summary;
}

function countRows(db: string, sql: string): number {
  const conn = new Database(db, { readonly: true });
  try {
    return (conn.prepare(sql).get() as { n: number }).n;
  } finally {
    conn.close();
  }
}

function writeCsv(dir: string, name: string, text: string | Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('mailq import (built CLI, real SQLite files)', () => {
  it('imports the demo fixture with exact counts and prints exactly the documented JSON keys', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const s = importJson(db, fixture('demo-recipients.csv'));
    expect(Object.keys(s)).toEqual(['campaign', 'imported', 'duplicates', 'rejected', 'total']);
    // 16 records: 3 rejected (display name, no @, non-ASCII local part), ADA@ duplicates ada@.
    expect(s).toEqual({ campaign: 'c1', imported: 12, duplicates: 1, rejected: 3, total: 16 });
    expect(countRows(db, `SELECT count(*) AS n FROM messages WHERE address = 'linus@xn--bcher-kva.example'`)).toBe(1);
    expect(countRows(db, `SELECT count(*) AS n FROM messages WHERE address = 'katherine+news@example.com'`)).toBe(1);
  });

  it('is idempotent, and a second file adds only the new addresses', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    importJson(db, fixture('demo-recipients.csv'));
    const again = importJson(db, fixture('demo-recipients.csv'));
    expect(again).toEqual({ campaign: 'c1', imported: 0, duplicates: 13, rejected: 3, total: 16 });
    const extra = writeCsv(dir, 'more.csv', 'email,first_name,last_name,plan,city\nada@example.com,A,L,pro,X\nnew@example.com,N,E,free,Y\n');
    expect(importJson(db, extra)).toEqual({ campaign: 'c1', imported: 1, duplicates: 1, rejected: 0, total: 2 });
    expect(countRows(db, 'SELECT count(*) AS n FROM messages')).toBe(13);
    expect(countRows(db, 'SELECT count(*) AS n FROM import_rejects')).toBe(3);
  });

  it('prints a human summary with rejected reasons by default', () => {
    const dir = tempDir();
    const r = runCli(['--db', path.join(dir, 'm.db'), 'import', fixture('demo-recipients.csv'), '-c', 'demo', '-t', templateDir('newsletter')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/imported\s+12/);
    expect(r.stdout).toMatch(/display-name\s+1/);
    expect(r.stdout).toMatch(/missing-at\s+1/);
    expect(r.stdout).toContain('mailq rejects --campaign demo');
  });

  it('lists rejects as table, csv and json with line numbers and reasons', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    importJson(db, fixture('demo-recipients.csv'));
    const json = runCli(['--db', db, 'rejects', '--campaign', 'c1', '--format', 'json']);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as { line: number; reason: string; raw: string }[];
    expect(rows.map((r) => [r.line, r.reason])).toEqual([
      [12, 'non-ascii-local-part'],
      [14, 'display-name'],
      [17, 'missing-at'],
    ]);
    expect(rows[1]?.raw).toBe('Tim <tim@example.com>');
    const csv = runCli(['--db', db, 'rejects', '--campaign', 'c1', '--format', 'csv']);
    expect(csv.stdout.split('\r\n')[0]).toBe('source,line,raw,reason,message');
    expect(csv.stdout).toContain(',14,Tim <tim@example.com>,display-name,');
    const table = runCli(['--db', db, 'rejects', '--campaign', 'c1']);
    expect(table.stdout).toMatch(/^line\s+reason\s+value\s+why/);
    expect(runCli(['--db', db, 'rejects', '--campaign', 'nope']).code).toBe(2);
  });

  it('creates the database and its WAL files with mode 0600 under umask 022', () => {
    const dir = tempDir();
    const db = path.join(dir, 'private.db');
    const r = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('newsletter')], {
      umask: '022',
    });
    expect(r.code).toBe(0);
    // Open it again (as another process would) so the -wal and -shm files exist for the check.
    const conn = new Database(db);
    conn.pragma('journal_mode = WAL');
    conn.prepare('SELECT count(*) FROM messages').get();
    for (const f of [db, `${db}-wal`, `${db}-shm`]) {
      expect(fs.existsSync(f), f).toBe(true);
      expect(fs.statSync(f).mode & 0o777, f).toBe(0o600);
    }
    expect(conn.pragma('journal_mode', { simple: true })).toBe('wal');
    conn.close();
  });

  it('uses MAILQ_DB, and ./mailq.db when nothing is given', () => {
    const dir = tempDir();
    const env = path.join(dir, 'env.db');
    expect(runCli(['import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('newsletter')], { env: { MAILQ_DB: env } }).code).toBe(0);
    expect(fs.existsSync(env)).toBe(true);
    expect(runCli(['import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('newsletter')], { cwd: dir }).code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'mailq.db'))).toBe(true);
  });

  it('refuses a database written by a newer mailq, and a SQLite file that is not mailq', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    importJson(db, fixture('demo-recipients.csv'));
    const conn = new Database(db);
    conn.pragma('user_version = 99');
    conn.close();
    const r = runCli(['--db', db, 'rejects', '-c', 'c1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('written by a newer mailq (schema version 99');
    const other = path.join(dir, 'other.db');
    const o = new Database(other);
    o.exec('CREATE TABLE t (x)');
    o.close();
    const r2 = runCli(['--db', other, 'rejects', '-c', 'c1']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('is not a mailq database');
    const junk = writeCsv(dir, 'junk.db', 'this is not sqlite at all, just text that is long enough to be a header');
    const r3 = runCli(['--db', junk, 'rejects', '-c', 'c1']);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/not a (SQLite|mailq) database/);
  });

  it('adds campaign variables from --var and --var-file and refuses a clash with a column', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const r = runCli([
      '--db', db, 'import', fixture('release-recipients.csv'), '-c', 'rel', '-t', templateDir('release'),
      '--var', 'product=mailq', '--var', 'version=2.4.0', '--var-file', `notes=${fixture('release-notes.md')}`, '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const vars = JSON.parse(
      (new Database(db, { readonly: true }).prepare(`SELECT vars_json FROM campaigns WHERE name = 'rel'`).get() as { vars_json: string }).vars_json,
    ) as Record<string, string>;
    expect(vars['product']).toBe('mailq');
    expect(vars['notes']).toContain("What's new in 2.4.0");
    const clash = runCli(['--db', db, 'import', fixture('release-recipients.csv'), '-c', 'rel', '--var', 'first_name=x']);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('campaign variable "first_name" has the same name as a column');
    const bad = runCli(['--db', db, 'import', fixture('release-recipients.csv'), '-c', 'rel', '--var', 'no-equals']);
    expect(bad.code).toBe(2);
  });

  it('needs --template for a new campaign and refuses a different template for an existing one', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const r = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'c1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('campaign "c1" does not exist yet');
    importJson(db, fixture('demo-recipients.csv'));
    const other = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('release')]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('refresh-template');
    // Same template again is fine; no --template on an existing campaign is fine.
    expect(runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'c1']).code).toBe(0);
  });

  it('reads Latin-1 files with --encoding and refuses them as UTF-8 naming the line', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const latin = writeCsv(dir, 'latin.csv', Buffer.from('email;first_name;last_name;plan;city\r\njana@example.de;Jana;M\xfcller;pro;K\xf6ln\r\n', 'latin1'));
    const bad = runCli(['--db', db, 'import', latin, '-c', 'c1', '-t', templateDir('newsletter')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/latin\.csv:2: invalid UTF-8/);
    expect(fs.existsSync(db) ? countRows(db, 'SELECT count(*) AS n FROM campaigns') : 0).toBe(0);
    const ok = runCli(['--db', db, 'import', latin, '-c', 'c1', '-t', templateDir('newsletter'), '--encoding', 'latin1', '--json']);
    expect(ok.code).toBe(0);
    const vars = (new Database(db, { readonly: true }).prepare('SELECT vars_json FROM messages').get() as { vars_json: string }).vars_json;
    // Stored as values aligned with the header's columns; the address column
    // as null, read back from the row's normalized address.
    expect(JSON.parse(vars)).toEqual([null, 'Jana', 'Müller', 'pro', 'Köln']);
    const preview = runCli(['--db', db, 'preview', '-c', 'c1', '--row', '1', '--format', 'html']);
    expect(preview.code).toBe(0);
    expect(preview.stdout).toContain('You receive this email because jana@example.de is subscribed');
  });
});
