import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, templateDir } from '../helpers/cli.js';

/**
 * Files of 8 MiB and more are read in 2 MiB parts by the main thread and a
 * worker at once (src/campaign/import-pump.ts). These tests use files just
 * over that size and check that the outcome is what one reader going line by
 * line would give: the same recipients, lines, variables, rejects and errors.
 */

const HEADER = 'email,first_name,note,plan\n';
const ROWS = 170_000;

interface Expected {
  text: string;
  /** Line of each imported address's first occurrence, and its first_name there. */
  first: Map<string, { line: number; name: string }>;
  rejects: { line: number; reason: string }[];
  records: number;
}

/**
 * ~9.1 MB: every 37th note is quoted and spans three lines (so parts start
 * on lines a row count cannot predict), every 9,973rd address is invalid,
 * every 12,007th row is ragged, and every 10,009th row repeats an address
 * from far earlier in the file with another first_name.
 */
function generate(): Expected {
  const first = new Map<string, { line: number; name: string }>();
  const rejects: { line: number; reason: string }[] = [];
  const chunks: string[] = [HEADER];
  let line = 2;
  for (let i = 0; i < ROWS; i++) {
    let address = `user${i}@domain${i % 97}.example`;
    let name = `First${i}`;
    if (i > 0 && i % 10_009 === 0) {
      address = `user${i - 10_000}@domain${(i - 10_000) % 97}.example`;
      name = `Late${i}`;
    }
    const note = i % 37 === 0 ? `"multi\nline ""note""\n${i}"` : `note ${i}`;
    if (i % 12_007 === 5) {
      chunks.push(`${address},${name}\n`);
      rejects.push({ line, reason: 'ragged-row' });
    } else if (i % 9973 === 3) {
      chunks.push(`not-an-address-${i},${name},${note},pro\n`);
      rejects.push({ line, reason: 'missing-at' });
    } else {
      chunks.push(`${address},${name},${note},pro\n`);
      if (!first.has(address)) first.set(address, { line, name });
    }
    line += i % 37 === 0 && i % 12_007 !== 5 ? 3 : 1;
  }
  return { text: chunks.join(''), first, rejects, records: ROWS };
}

function query<T>(db: string, sql: string): T[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all() as T[];
  } finally {
    conn.close();
  }
}

function importFile(db: string, file: string) {
  return runCli(['--db', db, 'import', file, '-c', 'c1', '-t', templateDir('newsletter'), '--json']);
}

describe('mailq import of a large file in parts (built CLI, real SQLite)', () => {
  it('gives exactly what a line-by-line reading gives: recipients, lines, first occurrences and rejects', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const expected = generate();
    const file = path.join(dir, 'big.csv');
    fs.writeFileSync(file, expected.text);
    expect(fs.statSync(file).size).toBeGreaterThan(8 * 1024 * 1024);

    const r = importFile(db, file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rejected = expected.rejects.length;
    expect(JSON.parse(r.stdout)).toEqual({
      campaign: 'c1',
      imported: expected.first.size,
      duplicates: expected.records - rejected - expected.first.size,
      rejected,
      total: expected.records,
    });

    const rows = query<{ id: number; address: string; line: number; vars_json: string }>(db, 'SELECT id, address, line, vars_json FROM messages ORDER BY id');
    const got = new Map(rows.map((m) => [m.address, { line: m.line, name: (JSON.parse(m.vars_json) as string[])[1] }]));
    expect(got).toEqual(expected.first);
    expect(query<{ line: number; reason: string }>(db, 'SELECT line, reason FROM import_rejects ORDER BY line')).toEqual(expected.rejects);
    // The parts really were read by two threads: row ids (insertion order) leave file order somewhere.
    expect(rows.some((m, i) => i > 0 && m.line < (rows[i - 1]?.line ?? 0))).toBe(true);

    // Idempotent in parts too.
    const again = importFile(db, file);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: 0, total: expected.records });
  });

  it('reads a large file whose later rows end in CRLF (mixed line ends) without keeping a CR', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const expected = generate();
    // The last ~10% of the rows end in CRLF, as if appended by another tool.
    const at = expected.text.indexOf('\n', Math.floor(expected.text.length * 0.9)) + 1;
    const file = path.join(dir, 'mixed.csv');
    fs.writeFileSync(file, expected.text.slice(0, at) + expected.text.slice(at).replace(/\n(?=user|not-an|$)/g, '\r\n'));
    const r = importFile(db, file);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ imported: expected.first.size, total: expected.records });
    expect(query<{ n: number }>(db, `SELECT count(*) AS n FROM messages WHERE vars_json LIKE '%\\r%'`)[0]?.n).toBe(0);
    expect(query<{ n: number }>(db, `SELECT count(*) AS n FROM messages WHERE vars_json LIKE '%"pro"]'`)[0]?.n).toBe(expected.first.size);
  });

  it('exits with the error when a large import fails before reading: its early worker does not hold the process', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const file = path.join(dir, 'big.csv');
    fs.writeFileSync(file, generate().text);
    // The worker is started, and reading parts, before the template is checked.
    const r = runCli(['--db', db, 'import', file, '-c', 'c1', '-t', path.join(dir, 'no-such-template'), '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no-such-template');
    expect(r.stdout).toBe('');
  });

  it('reports an error in a late part with its line in the whole file, and keeps nothing', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const { text } = generate();
    const lines = text.split('\n').length;
    const file = path.join(dir, 'late-error.csv');
    fs.writeFileSync(file, `${text}late@example.com,${'x'.repeat(70_000)},n,pro\n`);
    expect(fs.statSync(file).size).toBeGreaterThan(8 * 1024 * 1024);
    const r = importFile(db, file);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`late-error\\.csv:${lines}: .*first_name.* over the 65,536-byte cap`));
    expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM messages')[0]?.n).toBe(0);
  });

  it('reports the earliest of two errors in different parts, as one reader would', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const { text } = generate();
    const at = text.indexOf('\n', 1_000_000) + 1;
    const line = text.slice(0, at).split('\n').length;
    // Invalid UTF-8 in the first megabyte, and an oversized field at the very end.
    const bad = Buffer.concat([
      Buffer.from(text.slice(0, at)),
      Buffer.from('early@example.com,Bad\xff', 'latin1'),
      Buffer.from(`,n,pro\n${text.slice(at)}late@example.com,${'x'.repeat(70_000)},n,pro\n`),
    ]);
    const file = path.join(dir, 'two-errors.csv');
    fs.writeFileSync(file, bad);
    expect(bad.length).toBeGreaterThan(8 * 1024 * 1024);
    const r = importFile(db, file);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`two-errors\\.csv:${line}: invalid UTF-8 \\(byte 0xFF at column 22\\)`));
    expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM messages')[0]?.n).toBe(0);
  });

  it('gives the same result into PostgreSQL, where only the worker parses (the main thread waits on the server)', async () => {
    const base = process.env['MAILQ_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `mailq_parts_${randomBytes(6).toString('hex')}`;
    pgSchemas.push(schema);
    const dir = tempDir();
    const expected = generate();
    const file = path.join(dir, 'big.csv');
    fs.writeFileSync(file, expected.text);
    const r = importFile(`${base}?schema=${schema}`, file);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ imported: expected.first.size, rejected: expected.rejects.length, total: expected.records });
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    try {
      const rows = (await c.query<{ address: string; line: number; vars_json: string }>(`SELECT address, line, vars_json FROM ${schema}.messages`)).rows;
      const got = new Map(rows.map((m) => [m.address, { line: m.line, name: (JSON.parse(m.vars_json) as string[])[1] }]));
      expect(got).toEqual(expected.first);
      const rejects = (await c.query<{ line: number; reason: string }>(`SELECT line, reason FROM ${schema}.import_rejects ORDER BY line`)).rows;
      expect(rejects).toEqual(expected.rejects);
    } finally {
      await c.end();
    }
  });
});

const pgSchemas: string[] = [];
afterAll(async () => {
  if (pgSchemas.length === 0) return;
  const c = new pg.Client({ connectionString: process.env['MAILQ_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test' });
  await c.connect();
  for (const s of pgSchemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await c.end();
});
