import net from 'node:net';
import path from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { FAULTS_HELP, startSink, type SinkHandle, type SinkRecord } from '../transport/sink.js';
import { say } from './context.js';

interface SinkFlags {
  host: string;
  port: string;
  out?: string;
  allowRemote?: boolean;
}

export interface RunSinkOptions {
  readonly host: string;
  readonly port: number;
  readonly outDir?: string;
  /** The sink is a test tool that accepts anything: listening beyond loopback must be asked for. */
  readonly allowRemote?: boolean;
  /** Aborting it closes the sink; runSink resolves once the port is free. */
  readonly signal: AbortSignal;
  /** Where the status lines go (stderr by default). */
  readonly log?: (line: string) => void;
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  if (net.isIPv4(bare)) return bare.startsWith('127.');
  return /^::ffff:127\./.test(bare);
}

export function parseSinkPort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new InputError(`--port must be a whole number from 0 to 65535 (got "${value}")`, 'use --port 0 to pick a free port');
  }
  return Number(value);
}

/** One line per stored message. Never the recipient: addresses stay out of default logs. */
export function describeRecord(record: SinkRecord): string {
  const id = record.messageId ?? '(no Message-ID)';
  const outcome = record.dropped ? ', connection cut before the reply (drop fault: possible duplicate)' : '';
  return `received #${record.seq} ${id} ${record.size} bytes${outcome}`;
}

/**
 * Runs the sink until options.signal aborts. onListening gets the live handle (the
 * tests read its port; the command only prints). Resolves after the sink is closed.
 */
export async function runSink(options: RunSinkOptions, onListening?: (handle: SinkHandle) => void): Promise<void> {
  const log = options.log ?? say;
  if (!isLoopbackHost(options.host) && options.allowRemote !== true) {
    throw new InputError(
      `--host ${options.host} is not a loopback address; the sink accepts mail from anyone who can reach it`,
      'use --host 127.0.0.1, or add --allow-remote if you really mean to expose it',
    );
  }
  if (options.signal.aborted) return;
  const outDir = options.outDir === undefined ? undefined : path.resolve(options.outDir);
  let handle: SinkHandle;
  try {
    handle = await startSink({
      host: options.host.replace(/^\[(.*)\]$/, '$1'),
      port: options.port,
      ...(outDir === undefined ? {} : { outDir }),
      onMessage: (record) => log(describeRecord(record)),
    });
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    if (error.syscall === 'listen') {
      if (error.code === 'EADDRINUSE') throw new InputError(`port ${options.port} is already in use`, 'use --port 0 to pick a free port');
      if (error.code === 'EADDRNOTAVAIL') throw new InputError(`cannot listen on ${options.host}: not a local address`);
      if (error.code === 'EACCES') throw new InputError(`not allowed to listen on port ${options.port}`, 'ports below 1024 need privileges; the default is 2525');
    }
    if (error.syscall === 'getaddrinfo') throw new InputError(`--host ${options.host}: cannot resolve it (${error.code ?? 'unknown error'})`);
    if (outDir !== undefined && error.path !== undefined) throw new InputError(`cannot use --out ${outDir}: ${error.message}`);
    throw err;
  }
  const where = outDir === undefined ? 'not writing files (add --out <dir> to keep .eml copies)' : `writing to ${outDir}`;
  log(`mailq sink listening on ${handle.url}, ${where}`);
  onListening?.(handle);
  await new Promise<void>((resolve) => {
    if (options.signal.aborted) resolve();
    else options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await handle.close();
  const dropped = handle.received.filter((r) => r.dropped).length;
  log(`mailq sink stopped: ${handle.received.length} message(s) received${dropped > 0 ? `, ${dropped} dropped before the reply` : ''}`);
}

export function registerSink(program: Command): void {
  program
    .command('sink')
    .description('run a local SMTP server that captures mail (for demos and tests; nothing is delivered)')
    .option('--host <host>', 'address to listen on (loopback only unless --allow-remote)', '127.0.0.1')
    .option('--port <port>', 'port to listen on; 0 picks a free one and prints it', '2525')
    .option('--out <dir>', 'write each received message to <dir>/<n>-<queueid>.eml')
    .option('--allow-remote', 'allow a non-loopback --host (the sink accepts mail from anyone)')
    .addHelpText('after', `\n${FAULTS_HELP}\n`)
    .action(async (flags: SinkFlags) => {
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await runSink({
          host: flags.host,
          port: parseSinkPort(flags.port),
          ...(flags.out === undefined ? {} : { outDir: flags.out }),
          allowRemote: flags.allowRemote === true,
          signal: controller.signal,
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
