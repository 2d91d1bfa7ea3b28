import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { fixture, runCli, spawnCli, tempDir, templateDir } from '../helpers/cli.js';

const HEADER = 'email,first_name,last_name,plan,city\n';

function rows(n: number, start = 0): string {
  let out = '';
  for (let i = start; i < start + n; i++) out += `user${i}@example.com,First${i},Last${i},pro,City${i}\n`;
  return out;
}

function count(db: string, sql: string): number {
  if (!fs.existsSync(db)) return 0;
  const conn = new Database(db, { readonly: true });
  try {
    return (conn.prepare(sql).get() as { n: number }).n;
  } catch (err) {
    // The child may not have created its tables yet when a poll lands.
    if (err instanceof Error && err.message.startsWith('no such table')) return 0;
    throw err;
  } finally {
    conn.close();
  }
}

function importFile(db: string, file: string, extra: string[] = []) {
  return runCli(['--db', db, 'import', file, '-c', 'c1', '-t', templateDir('newsletter'), ...extra]);
}

/** The error contract: exit 2, the first stderr line names the problem, no stack trace. */
function expectInputError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  const first = r.stderr.split('\n')[0] ?? '';
  expect(first).toMatch(/^mailq: /);
  expect(first).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('mailq import: bad input is one clear line, exit 2, nothing half-imported', () => {
  const cases: [string, string | Buffer | null, RegExp][] = [
    ['missing file', null, /missing\.csv.*no such file/i],
    ['empty file', '', /is empty/],
    ['header only', HEADER, /has a header but no data rows/],
    ['no email column', 'mail,name\na@example.com,A\n', /no "email" column; columns found: "mail", "name"/],
    ['duplicate header', 'email,Name,name\na@example.com,A,B\n', /duplicate/i],
    ['unclosed quote', `${HEADER}a@example.com,A,B,pro,X\nb@example.com,"B,B,pro,X\nc@example.com,C,C,pro,X\n`, /:3:.*quote/i],
    ['field over the cap', `${HEADER}a@example.com,${'x'.repeat(70_000)},B,pro,X\n`, /:2:.*65,?536/],
  ];

  it.each(cases)('%s', (name, content, pattern) => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const file = path.join(dir, name === 'missing file' ? 'missing.csv' : 'in.csv');
    if (content !== null) fs.writeFileSync(file, content);
    expectInputError(importFile(db, file), pattern);
    expect(count(db, 'SELECT count(*) AS n FROM campaigns')).toBe(0);
    expect(count(db, 'SELECT count(*) AS n FROM messages')).toBe(0);
  });

  it('rejects ragged rows with their line and imports the rest', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const file = path.join(dir, 'ragged.csv');
    fs.writeFileSync(file, `${HEADER}a@example.com,A,B,pro,X\nb@example.com,B,pro\nc@example.com,C,C,pro,X,extra\nd@example.com,D,D,pro,X\n`);
    const r = importFile(db, file, ['--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ campaign: 'c1', imported: 2, duplicates: 0, rejected: 2, total: 4 });
    const rej = JSON.parse(runCli(['--db', db, 'rejects', '-c', 'c1', '--format', 'json']).stdout) as { line: number; reason: string }[];
    expect(rej.map((x) => [x.line, x.reason])).toEqual([[3, 'ragged-row'], [4, 'ragged-row']]);
  });

  it('a failure deep in a large file removes every batch already committed, keeping earlier imports', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    expect(importFile(db, fixture('demo-recipients.csv')).code).toBe(0);
    const before = count(db, 'SELECT count(*) AS n FROM messages');
    const file = path.join(dir, 'big-broken.csv');
    // 12,000 good rows span more than two 5,000-row batches before the unclosed quote.
    fs.writeFileSync(file, `${HEADER}${rows(12_000)}late@example.com,"unclosed,B,pro,X\n`);
    expectInputError(importFile(db, file), /big-broken\.csv:12002:.*quote/i);
    expect(count(db, 'SELECT count(*) AS n FROM messages')).toBe(before);
    expect(count(db, `SELECT count(*) AS n FROM import_runs WHERE status = 'failed'`)).toBe(1);
    expect(count(db, `SELECT count(*) AS n FROM import_runs WHERE status = 'running'`)).toBe(0);
  });

  it('an import killed with SIGKILL leaves a campaign that refuses to go out until the import is re-run', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const file = path.join(dir, 'big.csv');
    const N = 100_000;
    fs.writeFileSync(file, `${HEADER}${rows(N)}`);
    const child = spawnCli(['--db', db, 'import', file, '-c', 'c1', '-t', templateDir('newsletter')]);
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill once some batches are committed but long before the end.
    const deadline = Date.now() + 20_000;
    while (count(db, 'SELECT count(*) AS n FROM messages') === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    const partial = count(db, 'SELECT count(*) AS n FROM messages');
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(N);
    expect(count(db, `SELECT count(*) AS n FROM import_runs WHERE status = 'running'`)).toBe(1);

    const check = runCli(['--db', db, 'check', '-c', 'c1', '--sample', '1']);
    expectInputError(check, /campaign "c1" has an unfinished import of .*big\.csv/);
    expect(check.stderr).toContain('re-run `mailq import');

    const again = importFile(db, file, ['--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ campaign: 'c1', imported: N, duplicates: 0, rejected: 0, total: N });
    expect(count(db, 'SELECT count(*) AS n FROM messages')).toBe(N);
    expect(count(db, `SELECT count(*) AS n FROM import_runs WHERE status = 'running'`)).toBe(0);
    expect(runCli(['--db', db, 'check', '-c', 'c1', '--sample', '5']).code).toBe(0);
  }, 60_000);

  it('an unreadable file is refused with its path, as exit 2', () => {
    const dir = tempDir();
    // Root reads any file, so as root (CI) the CLI runs as nobody (uid 65534).
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    fs.chmodSync(dir, 0o777);
    const file = path.join(dir, 'secret.csv');
    fs.writeFileSync(file, `${HEADER}a@example.com,A,B,pro,X\n`);
    fs.chmodSync(file, 0o000);
    const r = runCli(['--db', path.join(dir, 'm.db'), 'import', file, '-c', 'c1', '-t', templateDir('newsletter')], uid === undefined ? {} : { uid });
    expectInputError(r, /secret\.csv: permission denied \(EACCES\)/);
  });

  it('usage errors exit 2', () => {
    expect(runCli(['import']).code).toBe(2);
    expect(runCli(['no-such-command']).code).toBe(2);
    const dir = tempDir();
    const r = runCli(['--db', path.join(dir, 'm.db'), 'import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('newsletter'), '--encoding', 'ebcdic']);
    expectInputError(r, /--encoding must be one of/);
    const d = runCli(['--db', path.join(dir, 'm.db'), 'import', fixture('demo-recipients.csv'), '-c', 'c1', '-t', templateDir('newsletter'), '--delimiter', 'x']);
    expect(d.code).toBe(2);
    const db = runCli(['--db', path.join(dir, 'no', 'such', 'dir', 'm.db'), 'rejects', '-c', 'c1']);
    expectInputError(db, /database folder .* does not exist/);
  });

  it('--help and --version work', () => {
    const h = runCli(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('import');
    expect(h.stdout).toContain('preview');
    expect(runCli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
