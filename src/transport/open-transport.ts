import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { InputError } from '../errors.js';
import { FileTransport } from './file.js';
import { SmtpTransport } from './smtp.js';
import type { Transport } from './types.js';

export interface TransportOptions {
  readonly url: string;
  readonly maxConnections: number;
  /** From MAILQ_SMTP_PASSWORD or --password-file; never from argv. */
  readonly password: string | undefined;
  readonly insecureTls: boolean;
  readonly socketTimeoutMs: number;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return net.isIPv4(h) && h.startsWith('127.');
}

/** The URL as it may be stored and shown: no password, ever. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*):[^@/]*@/, '//$1@');
}

export function readPasswordFile(file: string): string {
  try {
    // One trailing newline is how editors and `echo` leave such files.
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new InputError(`--password-file ${file}: ${(err as Error).message}`);
  }
}

/** TLS with a verified certificate is required except to this machine itself or with --insecure-tls. */
export function tlsPolicy(host: string, secure: boolean, insecureTls: boolean): { requireTLS: boolean; verifyCertificate: boolean } {
  const loopback = isLoopback(host);
  return { requireTLS: !secure && !loopback && !insecureTls, verifyCertificate: !loopback && !insecureTls };
}

export function openTransport(o: TransportOptions): Transport {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new InputError(`--transport ${JSON.stringify(redactUrl(o.url))} is not a URL`, 'use smtp://[user@]host[:port], smtps://… or file://<dir>');
  }
  if (url.protocol === 'file:') {
    const dir = decodeURIComponent(url.pathname) || '.';
    return new FileTransport(path.resolve(url.host === '' ? dir : `${url.host}${dir}`));
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new InputError(`--transport: unsupported scheme ${url.protocol}`, 'use smtp://, smtps:// or file://');
  }
  if (url.password !== '') {
    throw new InputError(
      '--transport must not contain a password: it would be visible in the process list and shell history',
      'set MAILQ_SMTP_PASSWORD or use --password-file <file>',
    );
  }
  const secure = url.protocol === 'smtps:';
  const host = url.hostname;
  const user = url.username === '' ? undefined : decodeURIComponent(url.username);
  if (user !== undefined && o.password === undefined) {
    throw new InputError(`--transport names user ${user} but no password was given`, 'set MAILQ_SMTP_PASSWORD or use --password-file <file>');
  }
  return new SmtpTransport({
    host,
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    secure,
    ...tlsPolicy(host, secure, o.insecureTls),
    user,
    password: o.password,
    maxConnections: o.maxConnections,
    maxMessagesPerConnection: 100,
    connectionTimeoutMs: 30_000,
    socketTimeoutMs: o.socketTimeoutMs,
    name: undefined,
  });
}
