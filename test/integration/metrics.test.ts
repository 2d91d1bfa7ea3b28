import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, spawnCli, tempDir, templateDir } from '../helpers/cli.js';
import { query } from '../helpers/db.js';

/**
 * `mailq send --metrics-port 0`: the built CLI against a real SMTP sink,
 * scraped over HTTP while it runs. One message is held 15 s by the sink
 * (`slow15000`), so the endpoint can be read once everything else is final.
 */

let sink: SinkHandle;
beforeAll(async () => {
  sink = await startSink({ port: 0 });
});
afterAll(async () => {
  await sink.close();
});

const HEADER = 'email,first_name,last_name,plan,city\n';

/** `name{labels} value` lines of a Prometheus text exposition, comments skipped. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] === undefined || m[3] === undefined) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sum(text: string, name: string, where: Record<string, string> = {}): number {
  return samples(text)
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

function value(text: string, name: string, where: Record<string, string> = {}): number | undefined {
  return samples(text).find((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))?.value;
}

async function until<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('mailq send --metrics-port (Prometheus endpoint)', () => {
  it('serves the run\'s metrics mid-run on 127.0.0.1, with counts matching the final status, and closes at the end', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const csv = path.join(dir, 'r.csv');
    const rows = [
      ...['a1@a.test', 'a2@a.test', 'a3@a.test', 'b1@b.test', 'b2@b.test', 'c1@c.test'],
      'transient1-x@a.test', // deferred once, then sent
      'transient1-y@b.test',
      'bounce-p@c.test', // 550 5.1.1: failed, bad-recipient
      'bounce-q@a.test',
      'slow15000-z@d.test', // holds the run open while we scrape
    ];
    fs.writeFileSync(csv, HEADER + rows.map((r) => `${r},A,B,pro,X\n`).join(''));
    expect(runCli(['--db', db, 'import', csv, '-c', 'c', '-t', templateDir('newsletter')]).code).toBe(0);

    const child = spawnCli(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--backoff', '100ms:200ms', '--metrics-port', '0', '--json']);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));

    const url = await until('the metrics URL on stderr', 15_000, () => /^mailq: metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(stderr)?.[1]);
    // Everything but the slow message is final, and a progress event has seen it.
    const text = await until('all fast outcomes and a progress event in the metrics', 20_000, async () => {
      const body = await (await fetch(url)).text();
      const done = sum(body, 'mailq_messages_total', { outcome: 'sent' }) === 8 && sum(body, 'mailq_messages_total', { outcome: 'failed' }) === 2;
      return done && value(body, 'mailq_queue_messages', { state: 'sending' }) === 1 && value(body, 'mailq_queue_messages', { state: 'queued' }) === 0 ? body : undefined;
    });

    for (const name of [
      'mailq_run_info',
      'mailq_queue_messages',
      'mailq_messages_total',
      'mailq_send_latency_seconds_bucket',
      'mailq_send_latency_seconds_count',
      'mailq_in_flight',
      'mailq_open_connections',
      'mailq_stalled_transactions',
      'mailq_alerts_firing',
    ]) {
      expect(samples(text).some((s) => s.name === name), name).toBe(true);
    }
    expect(value(text, 'mailq_run_info', { campaign: 'c' })).toBe(1);
    expect(value(text, 'mailq_messages_total', { outcome: 'sent', category: 'sent', domain: 'a.test' })).toBe(4);
    expect(value(text, 'mailq_messages_total', { outcome: 'sent', category: 'sent', domain: 'b.test' })).toBe(3);
    expect(value(text, 'mailq_messages_total', { outcome: 'deferred', category: 'retry', domain: 'a.test' })).toBe(1);
    expect(value(text, 'mailq_messages_total', { outcome: 'failed', category: 'bad-recipient', domain: 'c.test' })).toBe(1);
    expect(sum(text, 'mailq_messages_total', { outcome: 'deferred' })).toBe(2);
    expect(value(text, 'mailq_send_latency_seconds_count')).toBe(8);
    expect(value(text, 'mailq_in_flight')).toBe(1);
    expect(value(text, 'mailq_open_connections')).toBeGreaterThanOrEqual(1);
    expect(sum(text, 'mailq_alerts_firing')).toBe(0);
    // Recipient addresses never reach the metrics.
    expect(text).not.toContain('@');

    expect(await exited).toBe(3);
    const status = JSON.parse(runCli(['--db', db, 'status', '-c', 'c', '--json']).stdout) as Record<string, number>;
    // The scrape saw every outcome but the slow message's, which was sent after it.
    expect(status).toMatchObject({ sent: sum(text, 'mailq_messages_total', { outcome: 'sent' }) + 1, failed: sum(text, 'mailq_messages_total', { outcome: 'failed' }), queued: 0, deferred: 0 });
    // The run-started NDJSON event names the endpoint; the endpoint is gone once the send has ended.
    const started = JSON.parse(stdout.split('\n')[0] ?? '{}') as { type?: string; metricsUrl?: string };
    expect(started).toMatchObject({ type: 'run-started', metricsUrl: url });
    await expect(fetch(url)).rejects.toThrow();
  }, 60_000);

  it('refuses a --metrics-port that is not a port, or is in use, before sending anything', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const csv = path.join(dir, 'r.csv');
    fs.writeFileSync(csv, `${HEADER}a@a.test,A,B,pro,X\n`);
    expect(runCli(['--db', db, 'import', csv, '-c', 'c', '-t', templateDir('newsletter')]).code).toBe(0);
    const r = runCli(['--db', db, 'send', '-c', 'c', '--transport', `file://${path.join(dir, 'out')}`, '--metrics-port', '99999']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--metrics-port must be a port number from 0 to 65535 (got "99999")');
    const busy = http.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      const inUse = runCli(['--db', db, 'send', '-c', 'c', '--transport', `file://${path.join(dir, 'out')}`, '--metrics-port', String(port)]);
      expect(inUse.code).toBe(2);
      expect(inUse.stderr).toContain(`--metrics-port ${port}: cannot listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    expect(JSON.parse(runCli(['--db', db, 'status', '-c', 'c', '--json']).stdout)).toMatchObject({ queued: 1, sent: 0 });
    // Nothing was recorded: no run was started for the campaign.
    expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM runs')[0]?.n).toBe(0);
  });
});
