/**
 * Where a report goes: stdout, or a file replaced atomically. Writes are
 * awaited (stdout's 'drain', the file handle's write), so a producer paging
 * through a million recipients never runs ahead of a slow reader: memory stays
 * at one page plus one 64 KiB chunk.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';

export interface ReportOutput {
  write(text: string): Promise<void>;
}

/**
 * Collects small writes into chunks: one syscall per ~64 KiB instead of one
 * per CSV line (a million lines cost ~1 s more written one by one).
 */
const CHUNK_CHARS = 64 * 1024;

export class ChunkedOutput implements ReportOutput {
  private parts: string[] = [];
  private size = 0;

  constructor(private readonly sink: (text: string) => Promise<void>) {}

  async write(text: string): Promise<void> {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= CHUNK_CHARS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.size === 0) return;
    const text = this.parts.join('');
    this.parts = [];
    this.size = 0;
    await this.sink(text);
  }
}

/** Writes to a stream, waiting for 'drain' whenever its buffer is full. */
export function streamSink(stream: NodeJS.WritableStream): (text: string) => Promise<void> {
  return (text) =>
    new Promise<void>((resolve, reject) => {
      if (stream.write(text)) {
        resolve();
        return;
      }
      const done = (err?: Error): void => {
        stream.off('drain', onDrain);
        stream.off('error', done);
        stream.off('close', onClose);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onDrain = (): void => done();
      const onClose = (): void => done(new Error('output closed before the report was written'));
      stream.once('drain', onDrain);
      stream.once('error', done);
      stream.once('close', onClose);
    });
}

export async function writeToStream(stream: NodeJS.WritableStream, produce: (out: ReportOutput) => Promise<void>): Promise<void> {
  const out = new ChunkedOutput(streamSink(stream));
  await produce(out);
  await out.flush();
}

/**
 * Writes `file` all or nothing: into a temporary file in the same directory
 * (so the rename cannot cross file systems), flushed to disk, then renamed over
 * the target. A report that fails halfway (database error, full disk, a bug)
 * leaves the previous file, or none, never a truncated one. Mode 0600: the
 * report lists every recipient's address.
 */
export async function writeFileAtomically(file: string, produce: (out: ReportOutput) => Promise<void>): Promise<number> {
  const target = path.resolve(file);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(temp, 'wx', 0o600);
  } catch (err) {
    throw new InputError(`--out ${file}: cannot create a file in ${path.dirname(target)}: ${(err as Error).message}`);
  }
  let bytes = 0;
  try {
    const out = new ChunkedOutput(async (text) => {
      const { bytesWritten } = await handle.write(text, null, 'utf8');
      bytes += bytesWritten;
    });
    await produce(out);
    await out.flush();
    await handle.sync();
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(temp, { force: true });
    throw err;
  }
  try {
    await fs.rename(temp, target);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw new InputError(`--out ${file}: cannot replace it: ${(err as Error).message}`);
  }
  return bytes;
}
