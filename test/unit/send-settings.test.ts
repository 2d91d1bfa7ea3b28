import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveSendSettings } from '../../src/cli/send-settings.js';
import { InputError } from '../../src/errors.js';
import { openTransport, redactUrl, tlsPolicy } from '../../src/transport/open-transport.js';

function dir(files: Record<string, string> = {}): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-settings-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

describe('send settings: flags > environment > config file > defaults', () => {
  it('uses the documented defaults', () => {
    const s = resolveSendSettings({}, {}, dir());
    expect(s).toMatchObject({ transport: undefined, concurrency: 10, maxAttempts: 8, maxAgeMs: 3 * 86_400_000, resendAmbiguous: true, insecureTls: false });
    expect(s.backoff).toEqual({ initialMs: 60_000, maxMs: 40 * 60_000 });
  });

  it('composes on one thread per core but the main thread\'s by default; --threads and MAILQ_THREADS override', () => {
    expect(resolveSendSettings({}, {}, dir()).threads).toBe(Math.max(0, os.availableParallelism() - 1));
    expect(resolveSendSettings({ threads: '3' }, {}, dir()).threads).toBe(3);
    expect(resolveSendSettings({}, { MAILQ_THREADS: '0' }, dir()).threads).toBe(0);
    expect(() => resolveSendSettings({ threads: '65' }, {}, dir())).toThrow(/--threads must be a whole number from 0 to 64/);
  });

  it('reads mailq.config.json, then environment over it, then flags over both', () => {
    const cwd = dir({ 'mailq.config.json': JSON.stringify({ transport: 'smtp://file.test:25', concurrency: 3, maxAge: '1h', domainRate: ['a.test=5/s:2'] }) });
    const file = resolveSendSettings({}, {}, cwd);
    expect(file.transport).toBe('smtp://file.test:25');
    expect(file.concurrency).toBe(3);
    expect(file.maxAgeMs).toBe(3_600_000);
    expect(file.domainLimits.get('a.test')).toEqual({ rate: { perSecond: 5 }, connections: 2 });
    const env = resolveSendSettings({}, { MAILQ_TRANSPORT: 'smtp://env.test:25', MAILQ_CONCURRENCY: '4' }, cwd);
    expect(env.transport).toBe('smtp://env.test:25');
    expect(env.concurrency).toBe(4);
    const flag = resolveSendSettings({ transport: 'file:///tmp/x', concurrency: '7' }, { MAILQ_TRANSPORT: 'smtp://env.test:25' }, cwd);
    expect(flag.transport).toBe('file:///tmp/x');
    expect(flag.concurrency).toBe(7);
  });

  it('reads YAML config and a rules file', () => {
    const cwd = dir({
      'mailq.config.yaml': 'rules: rules.yaml\nresendAmbiguous: false\nbackoff: 1s:10s\n',
      'rules.yaml': 'domains:\n  example.org: "2/s:1"\n  example.net:\n    rate: 10/m\n    connections: 3\n',
    });
    // The rules path in the file is relative to the file, not to where mailq runs.
    const s = resolveSendSettings({ config: path.join(cwd, 'mailq.config.yaml') }, {}, os.tmpdir());
    expect(s.resendAmbiguous).toBe(false);
    expect(s.backoff).toEqual({ initialMs: 1000, maxMs: 10_000 });
    expect(s.domainLimits.get('example.org')).toEqual({ rate: { perSecond: 2 }, connections: 1 });
    expect(s.domainLimits.get('example.net')?.connections).toBe(3);
  });

  it('refuses unknown settings and bad values with a clear message', () => {
    expect(() => resolveSendSettings({}, {}, dir({ 'mailq.config.json': '{"transprot":"x"}' }))).toThrow(/unknown setting "transprot"/);
    expect(() => resolveSendSettings({}, {}, dir({ 'mailq.config.json': '{' }))).toThrow(InputError);
    expect(() => resolveSendSettings({ concurrency: '0' }, {}, dir())).toThrow(/--concurrency/);
    expect(() => resolveSendSettings({ maxAge: 'soon' }, {}, dir())).toThrow(/--max-age/);
  });
});

describe('transport URLs', () => {
  const base = { maxConnections: 2, insecureTls: false, socketTimeoutMs: 1000 };
  it('refuses a password in the URL without echoing it', () => {
    try {
      openTransport({ ...base, url: 'smtp://user:hunter2@mail.example.com:587', password: undefined });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      expect(String((err as Error).message)).not.toContain('hunter2');
    }
    expect(redactUrl('smtp://user:hunter2@h:25')).toBe('smtp://user@h:25');
  });

  it('needs a password for a user, and describes transports without secrets', () => {
    expect(() => openTransport({ ...base, url: 'smtp://user@mail.example.com', password: undefined })).toThrow(/names user user but no password/);
    const t = openTransport({ ...base, url: 'smtp://user@mail.example.com', password: 'pw' });
    expect(t.description).toBe('smtp://user@mail.example.com:587');
    expect(openTransport({ ...base, url: 'smtps://mail.example.com', password: undefined }).description).toBe('smtps://mail.example.com:465');
    expect(() => openTransport({ ...base, url: 'http://x', password: undefined })).toThrow(/unsupported scheme/);
  });
});

describe('TLS policy', () => {
  it('requires STARTTLS with a verified certificate except to loopback or with --insecure-tls', () => {
    expect(tlsPolicy('smtp.example.com', false, false)).toEqual({ requireTLS: true, verifyCertificate: true });
    expect(tlsPolicy('smtp.example.com', true, false)).toEqual({ requireTLS: false, verifyCertificate: true });
    expect(tlsPolicy('smtp.example.com', false, true)).toEqual({ requireTLS: false, verifyCertificate: false });
    for (const host of ['127.0.0.1', '127.5.6.7', 'localhost', '::1', '[::1]']) {
      expect(tlsPolicy(host, false, false), host).toEqual({ requireTLS: false, verifyCertificate: false });
    }
    expect(tlsPolicy('128.0.0.1', false, false).requireTLS).toBe(true);
  });
});
