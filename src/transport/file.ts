import fs from 'node:fs';
import path from 'node:path';
import type { OutgoingMessage, Transport, TransportResult } from './types.js';

/** file://<dir>: writes each message as an .eml file, a dry run of everything but the network. */
export class FileTransport implements Transport {
  readonly description: string;
  readonly maxConnections = Number.POSITIVE_INFINITY;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    this.description = `file://${dir}`;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async send(message: OutgoingMessage): Promise<TransportResult> {
    // Named after the deterministic Message-ID, so a resend overwrites rather than duplicates.
    const name = message.messageId.replace(/^<|>$/g, '').replace(/[^A-Za-z0-9._-]/g, '_');
    try {
      await fs.promises.writeFile(path.join(this.dir, `${name}.eml`), message.raw, { mode: 0o600 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, stage: 'body', code: undefined, reply: undefined, errorCode: e.code ?? 'EIO', bodyWritten: false, message: e.message };
    }
    return { ok: true, code: 250, reply: `250 written to ${name}.eml` };
  }

  openConnections(): number {
    return 0;
  }

  abortAll(): void {
    // Nothing in flight can be cut: a file write either happened or not.
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
