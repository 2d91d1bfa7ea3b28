import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, runCli, tempDir, templateDir } from '../helpers/cli.js';

function demoDb(): { dir: string; db: string } {
  const dir = tempDir();
  const db = path.join(dir, 'm.db');
  const r = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'demo', '-t', templateDir('newsletter')]);
  expect(r.code).toBe(0);
  return { dir, db };
}

function copyTemplate(name: string, to: string): string {
  fs.cpSync(templateDir(name), to, { recursive: true });
  return to;
}

interface CheckJson {
  missing: string[];
  variables: string[];
  checked: number;
  ok: number;
  failed: number;
  failures: Record<string, { count: number; examples: { line: number; message: string }[] }>;
}

describe('mailq check', () => {
  it('passes the demo campaign: every variable defined, every recipient renders', () => {
    const { db } = demoDb();
    const r = runCli(['--db', db, 'check', '-c', 'demo', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CheckJson;
    expect(report.missing).toEqual([]);
    expect(report.checked).toBe(12);
    expect(report.failed).toBe(0);
    const text = runCli(['--db', db, 'check', '-c', 'demo']);
    expect(text.stdout).toContain('OK: every checked recipient renders');
  });

  it('names variables that are neither a column nor a --var, and exits 3', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const tpl = copyTemplate('newsletter', path.join(dir, 'tpl'));
    fs.appendFileSync(path.join(tpl, 'text.liquid'), '\nYour coupon: {{ coupon_code }}\n');
    expect(runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'x', '-t', tpl]).code).toBe(0);
    const r = runCli(['--db', db, 'check', '-c', 'x', '--json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as CheckJson;
    expect(report.missing).toEqual(['coupon_code']);
    expect(report.failed).toBe(12);
    expect(report.failures['undefined-variable']?.count).toBe(12);
    expect(report.failures['undefined-variable']?.examples[0]?.message).toContain('coupon_code');
    // Failures are reported by CSV line, never by address (addresses stay out of logs).
    expect(r.stdout).not.toContain('@example.com');
  });

  it('reports a header-injection render failure per recipient by line', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const tpl = copyTemplate('newsletter', path.join(dir, 'tpl'));
    fs.writeFileSync(path.join(tpl, 'subject.liquid'), 'News for {{ city }}');
    const csv = path.join(dir, 'r.csv');
    fs.writeFileSync(csv, 'email,first_name,last_name,plan,city\na@example.com,A,B,pro,Paris\nb@example.com,B,C,pro,"Evil\r\nBcc: victim@example.net"\n');
    expect(runCli(['--db', db, 'import', csv, '-c', 'x', '-t', tpl]).code).toBe(0);
    const r = runCli(['--db', db, 'check', '-c', 'x', '--json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as CheckJson;
    expect(report.ok).toBe(1);
    expect(report.failures['header-injection']?.examples).toEqual([expect.objectContaining({ line: 3 })]);
  });

  it('--sample renders only that many recipients', () => {
    const { db } = demoDb();
    const report = JSON.parse(runCli(['--db', db, 'check', '-c', 'demo', '--sample', '3', '--json']).stdout) as CheckJson;
    expect(report.checked).toBe(3);
  });
});

describe('mailq preview', () => {
  it('prints the exact MIME message for one recipient, with a deterministic Message-ID', () => {
    const { db } = demoDb();
    const a = runCli(['--db', db, 'preview', '-c', 'demo', '--to', 'ADA@Example.com']);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^To: ada@example\.com\r?$/m);
    expect(a.stdout).toMatch(/^From: .*news@acme\.test/m);
    expect(a.stdout).toMatch(/^Content-Type: multipart\/alternative/m);
    expect(a.stdout).toContain('List-Unsubscribe');
    const id = /^Message-ID: (.+)$/m.exec(a.stdout)?.[1];
    expect(id).toBeDefined();
    const b = runCli(['--db', db, 'preview', '-c', 'demo', '--row', '1']);
    expect(/^Message-ID: (.+)$/m.exec(b.stdout)?.[1]).toBe(id);
    const other = runCli(['--db', db, 'preview', '-c', 'demo', '--row', '2']);
    expect(/^Message-ID: (.+)$/m.exec(other.stdout)?.[1]).not.toBe(id);
  });

  it('renders html and text parts, and writes to a file with --out', () => {
    const { dir, db } = demoDb();
    const text = runCli(['--db', db, 'preview', '-c', 'demo', '--row', '1', '--format', 'text']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Ada');
    const html = runCli(['--db', db, 'preview', '-c', 'demo', '--row', '1', '--format', 'html']);
    expect(html.stdout).toMatch(/<html/i);
    const file = path.join(dir, 'one.eml');
    const r = runCli(['--db', db, 'preview', '-c', 'demo', '--row', '1', '--out', file]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^To: ada@example\.com/m);
  });

  it('derives the text part from HTML for the release template', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    expect(runCli(['--db', db, 'import', fixture('release-recipients.csv'), '-c', 'rel', '-t', templateDir('release'),
      '--var', 'product=mailq', '--var', 'version=2.4.0', '--var-file', `notes=${fixture('release-notes.md')}`]).code).toBe(0);
    const text = runCli(['--db', db, 'preview', '-c', 'rel', '--format', 'text']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Faster imports');
    expect(text.stdout).not.toMatch(/<br|<p>/);
    const eml = runCli(['--db', db, 'preview', '-c', 'rel']);
    expect(eml.stdout).toMatch(/^Subject: mailq 2\.4\.0 released/m);
  });

  it('fails clearly for an unknown recipient, a bad row and a missing campaign', () => {
    const { db } = demoDb();
    const r = runCli(['--db', db, 'preview', '-c', 'demo', '--to', 'nobody@example.com']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a recipient of campaign demo');
    expect(runCli(['--db', db, 'preview', '-c', 'demo', '--row', '999']).code).toBe(2);
    expect(runCli(['--db', db, 'preview', '-c', 'demo', '--row', '0']).code).toBe(2);
    const missing = runCli(['--db', db, 'preview', '-c', 'nope']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('campaigns here: demo');
  });
});

describe('template snapshots', () => {
  it('later edits to the template folder do not change a campaign until refresh-template', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const tpl = copyTemplate('newsletter', path.join(dir, 'tpl'));
    expect(runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'x', '-t', tpl]).code).toBe(0);
    fs.writeFileSync(path.join(tpl, 'subject.liquid'), 'CHANGED subject for {{ first_name }}');
    expect(runCli(['--db', db, 'preview', '-c', 'x']).stdout).not.toContain('CHANGED');
    const refresh = runCli(['--db', db, 'refresh-template', '-c', 'x']);
    expect(refresh.code).toBe(0);
    expect(refresh.stdout).toMatch(/template \w{12} -> \w{12}/);
    expect(runCli(['--db', db, 'preview', '-c', 'x']).stdout).toMatch(/^Subject: CHANGED subject for Ada/m);
    expect(runCli(['--db', db, 'refresh-template', '-c', 'x']).stdout).toContain('unchanged');
  });

  it('a broken template is refused at import, naming the file, before anything is written', () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const tpl = copyTemplate('newsletter', path.join(dir, 'tpl'));
    fs.writeFileSync(path.join(tpl, 'subject.liquid'), 'Hello {% if first_name %}');
    const r = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'x', '-t', tpl]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toContain('subject.liquid');
    const missing = runCli(['--db', db, 'import', fixture('demo-recipients.csv'), '-c', 'x', '-t', path.join(dir, 'nope')]);
    expect(missing.code).toBe(2);
  });
});
