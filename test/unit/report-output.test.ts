import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { writeFileAtomically } from '../../src/report/report-output.js';
import { tempDir } from '../helpers/cli.js';

describe('writeFileAtomically', () => {
  it('replaces the file only when the whole report was written, mode 0600', async () => {
    const dir = tempDir('mailq-out-');
    const file = path.join(dir, 'report.csv');
    fs.writeFileSync(file, 'old report\n', { mode: 0o644 });
    const big = 'x'.repeat(100_000);
    const bytes = await writeFileAtomically(file, async (out) => {
      await out.write('header\n');
      for (let i = 0; i < 10; i++) await out.write(`${big}\n`);
    });
    expect(bytes).toBe(7 + 10 * 100_001);
    const text = fs.readFileSync(file, 'utf8');
    expect(text.startsWith('header\nxxx')).toBe(true);
    expect(text).toHaveLength(bytes);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['report.csv']);
  });

  it('a report that fails halfway leaves the previous file untouched and no temporary file', async () => {
    const dir = tempDir('mailq-out-');
    const file = path.join(dir, 'report.json');
    fs.writeFileSync(file, '[]\n');
    const failing = writeFileAtomically(file, async (out) => {
      // More than one chunk reaches the disk before the failure.
      for (let i = 0; i < 5; i++) await out.write(`${'y'.repeat(70_000)}\n`);
      throw new Error('database went away');
    });
    await expect(failing).rejects.toThrow('database went away');
    expect(fs.readFileSync(file, 'utf8')).toBe('[]\n');
    expect(fs.readdirSync(dir)).toEqual(['report.json']);

    // And with no previous file, none appears.
    const fresh = path.join(dir, 'new.html');
    await expect(writeFileAtomically(fresh, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(fs.existsSync(fresh)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual(['report.json']);
  });

  it('names the path when the directory does not exist or the target is a directory', async () => {
    const dir = tempDir('mailq-out-');
    const missing = path.join(dir, 'nope', 'r.csv');
    const err = await writeFileAtomically(missing, async (out) => out.write('a')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`--out ${missing}: cannot create a file in ${path.join(dir, 'nope')}`);

    fs.mkdirSync(path.join(dir, 'sub'));
    const isDir = await writeFileAtomically(path.join(dir, 'sub'), async (out) => out.write('a')).catch((e: unknown) => e);
    expect(isDir).toBeInstanceOf(InputError);
    expect((isDir as Error).message).toContain('cannot replace it');
    expect(fs.readdirSync(dir).sort()).toEqual(['sub']);
  });
});
