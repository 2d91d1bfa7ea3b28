/**
 * The live dashboard end to end, in a real pseudo-terminal: tmux runs the
 * built CLI as an operator's shell would, with no CI variable, so `send`
 * draws the Ink dashboard on its terminal. The test reads the screen, presses
 * `q`, and checks the graceful stop (exit 4) and that `resume` then finishes
 * the campaign with every recipient received exactly once.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSink } from '../../src/transport/sink.js';
import { BIN, runCli, runCliAsync, tempDir, templateDir } from '../helpers/cli.js';

const SOCKET = `mailq-e2e-${process.pid}`;
const SESSION = 'e2e';
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  spawnSync('tmux', ['-L', SOCKET, 'kill-server']);
  for (const close of closers.splice(0)) await close();
});

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}

function screen(): string {
  return tmux('capture-pane', '-p', '-t', SESSION, '-S', '-200');
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${screen()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function importList(dir: string, count: number): string {
  const db = path.join(dir, 'e2e.db');
  const csv = path.join(dir, 'list.csv');
  fs.writeFileSync(csv, `email,first_name,last_name,plan,city\n${Array.from({ length: count }, (_, i) => `user${i}@example.com,F${i},L${i},pro,C`).join('\n')}\n`);
  const imported = runCli(['--db', db, 'import', csv, '--campaign', 'c', '--template', templateDir('newsletter')]);
  expect(imported.code).toBe(0);
  return db;
}

describe('dashboard in a pseudo-terminal', () => {
  it('appears, stops gracefully on q with exit 4, and resume finishes the campaign', async () => {
    const which = spawnSync('tmux', ['-V']);
    expect(which.status, 'tmux is needed for this test: apt-get install tmux').toBe(0);
    const sink = await startSink({ port: 0 });
    closers.push(() => sink.close());
    const dir = tempDir();
    const count = 120;
    const db = importList(dir, count);

    const exitFile = path.join(dir, 'exit');
    // 20/s keeps the run going for ~6 s: time to see the dashboard and press q mid-send.
    const command = [
      'env', '-u', 'CI', 'NO_COLOR=1', shellQuote(process.execPath), shellQuote(BIN), '--db', shellQuote(db),
      'send', '--campaign', 'c', '--transport', sink.url, '--rate', '20/s', '--yes',
    ].join(' ');
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', SESSION, '-x', '100', '-y', '50', `${command}; echo $? > ${shellQuote(exitFile)}; sleep 60`);

    // The dashboard is up when its progress line shows sends counting.
    // Up and counting: the per-domain table shows sends.
    await until('the dashboard', () => (/^example\.com\s+[1-9]/m.test(screen()) && sink.received.length >= 5 ? true : undefined));
    const live = screen();
    expect(live).toMatch(/^domain\s+sent/m); // the dashboard's per-domain table, not plain lines
    expect(live).toMatch(/^example\.com\s+\d+/m);
    expect(live).not.toMatch(/^mailq: sent \d+/m);
    expect(live).not.toMatch(/user\d+@example\.com/); // no recipient addresses on screen
    tmux('send-keys', '-t', SESSION, 'q');

    const code = await until('send to exit', () => (fs.existsSync(exitFile) ? fs.readFileSync(exitFile, 'utf8').trim() : undefined));
    expect(code).toBe('4');
    const after = screen();
    expect(after).toMatch(/stopping/i);
    expect(after).toMatch(/mailq resume/);
    const sentBefore = sink.received.length;
    expect(sentBefore).toBeGreaterThan(0);
    expect(sentBefore).toBeLessThan(count);

    const resumed = await runCliAsync(['--db', db, 'resume', '--campaign', 'c', '--rate', '1000/s']);
    expect(resumed.stderr).toMatch(/finished/);
    expect(resumed.code).toBe(0);
    const recipients = sink.received.map((r) => r.to.join(','));
    expect(recipients).toHaveLength(count);
    expect(new Set(recipients).size).toBe(count);
  });

  it('draws a progress bar instead with --no-tui, and ends with the plain summary', async () => {
    const sink = await startSink({ port: 0 });
    closers.push(() => sink.close());
    const dir = tempDir();
    const db = importList(dir, 30);
    const exitFile = path.join(dir, 'exit');
    const command = ['env', '-u', 'CI', 'NO_COLOR=1', shellQuote(process.execPath), shellQuote(BIN), '--db', shellQuote(db), 'send', '--campaign', 'c', '--transport', sink.url, '--rate', '10/s', '--yes', '--no-tui'].join(' ');
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', SESSION, '-x', '120', '-y', '30', `${command}; echo $? > ${shellQuote(exitFile)}; sleep 60`);
    // NO_COLOR: the bar in plain characters, then the figures.
    await until('the bar', () => (/#+-* \d+% \| sent [1-9]\d* failed 0 deferred 0 left \d+ \| [\d.]+\/s \| ETA \d+s/.test(screen()) ? true : undefined));
    const code = await until('send to exit', () => (fs.existsSync(exitFile) ? fs.readFileSync(exitFile, 'utf8').trim() : undefined));
    expect(code).toBe('0');
    expect(screen()).toMatch(/mailq: finished: sent 30, failed 0/);
    expect(sink.received).toHaveLength(30);
  });
});
