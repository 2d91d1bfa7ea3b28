import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'mailq.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A fresh temp folder per test; callers put their database and fixtures in it. */
export function tempDir(prefix = 'mailq-it-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function childEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra };
  // The tests choose the database explicitly; an operator's MAILQ_DB must not leak in.
  if (!('MAILQ_DB' in extra)) delete env['MAILQ_DB'];
  return env;
}

/** Runs the built CLI (bin/mailq.js -> dist/) as a child process, like an operator would. */
export function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; umask?: string; uid?: number } = {},
): CliResult {
  // With a umask, go through sh so the child starts under it, as from an operator's shell.
  const [cmd, argv] = options.umask === undefined
    ? [process.execPath, [BIN, ...args]]
    : ['/bin/sh', ['-c', `umask ${options.umask} && exec "$0" "$@"`, process.execPath, BIN, ...args]];
  const r = spawnSync(cmd, argv, {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env ?? {}),
    encoding: 'utf8',
    input: options.input ?? '',
    timeout: 60_000,
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function spawnCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env ?? {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function fixture(name: string): string {
  return path.join(ROOT, 'fixtures', name);
}

export function templateDir(name: string): string {
  return path.join(ROOT, 'templates', name);
}

/**
 * Like runCli, without blocking the event loop: needed whenever the test
 * process itself hosts the SMTP server the CLI talks to.
 */
export function runCliAsync(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
