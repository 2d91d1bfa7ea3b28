import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../src/engine/events.js';
import { DomainLabels, SendMetrics } from '../../src/metrics/metrics.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { InputError } from '../../src/errors.js';
import { emptyCounts } from '../../src/store/types.js';

/** The metrics registry fed by engine events, and the endpoint serving it on loopback. */

const AT = 1_700_000_000_000;

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = (m[2] ?? '').split(',').filter((s) => s !== '');
    if (wanted.length === have.length && wanted.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

describe('domain labels', () => {
  it('labels the top domains by volume and counts the rest as "other", never relabelling a domain', () => {
    const d = new DomainLabels(['gmail.com', 'outlook.com', 'yahoo.com'], 2);
    expect(d.label('gmail.com')).toBe('gmail.com');
    expect(d.label('outlook.com')).toBe('outlook.com');
    expect(d.label('yahoo.com')).toBe('other');
    expect(d.label('tiny.example')).toBe('other');
  });

  it('gives free slots to domains first seen later', () => {
    const d = new DomainLabels(['gmail.com'], 2);
    expect(d.label('late.example')).toBe('late.example');
    expect(d.label('later.example')).toBe('other');
    expect(d.label('late.example')).toBe('late.example');
  });
});

describe('send metrics', () => {
  it('counts outcomes by outcome/category/domain, observes latency, and mirrors progress and alerts in gauges', async () => {
    const m = new SendMetrics({ campaign: 'spring', domainsByVolume: ['a.test', 'b.test'], maxDomainLabels: 2 });
    const events: EngineEvent[] = [
      { type: 'run-started', at: AT, campaign: 'spring', owner: 'o', transport: 'smtp://x', counts: { ...emptyCounts(), queued: 6 }, reclaimed: 0 },
      { type: 'message-sent', at: AT, line: 2, domain: 'a.test', latencyMs: 30, possibleDuplicate: false },
      { type: 'message-sent', at: AT, line: 3, domain: 'a.test', latencyMs: 1500, possibleDuplicate: false },
      { type: 'message-deferred', at: AT, line: 4, domain: 'b.test', category: 'retry', code: 451, reply: '451', retryAt: AT },
      { type: 'message-failed', at: AT, line: 5, domain: 'c.test', category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: '550' },
      { type: 'message-failed', at: AT, line: 6, domain: 'd.test', category: 'render', reason: 'undefined-variable', code: undefined, reply: undefined },
      { type: 'progress', at: AT, counts: { ...emptyCounts(), queued: 1, sending: 2, deferred: 1, sent: 2, failed: 2 }, inFlight: 2, openConnections: 3, stalled: 1, nextRetryAt: undefined, paused: false },
      { type: 'alert', at: AT, alert: { rule: 'bounce-rate', state: 'firing', severity: 'critical', message: 'x' } },
    ];
    for (const e of events) m.onEvent(e);
    const text = await m.registry.metrics();
    expect(sample(text, 'mailq_run_info', { campaign: 'spring' })).toBe(1);
    expect(sample(text, 'mailq_messages_total', { outcome: 'sent', category: 'sent', domain: 'a.test' })).toBe(2);
    expect(sample(text, 'mailq_messages_total', { outcome: 'deferred', category: 'retry', domain: 'b.test' })).toBe(1);
    expect(sample(text, 'mailq_messages_total', { outcome: 'failed', category: 'bad-recipient', domain: 'other' })).toBe(1);
    expect(sample(text, 'mailq_messages_total', { outcome: 'failed', category: 'render', domain: 'other' })).toBe(1);
    expect(text).not.toContain('c.test');
    expect(sample(text, 'mailq_send_latency_seconds_count')).toBe(2);
    expect(sample(text, 'mailq_send_latency_seconds_bucket', { le: '0.05' })).toBe(1);
    expect(sample(text, 'mailq_send_latency_seconds_bucket', { le: '2' })).toBe(2);
    expect(sample(text, 'mailq_queue_messages', { state: 'queued' })).toBe(1);
    expect(sample(text, 'mailq_queue_messages', { state: 'sending' })).toBe(2);
    expect(sample(text, 'mailq_queue_messages', { state: 'sent' })).toBe(2);
    expect(sample(text, 'mailq_in_flight')).toBe(2);
    expect(sample(text, 'mailq_open_connections')).toBe(3);
    expect(sample(text, 'mailq_stalled_transactions')).toBe(1);
    expect(sample(text, 'mailq_alerts_firing', { rule: 'bounce-rate' })).toBe(1);
    expect(sample(text, 'mailq_alerts_firing', { rule: 'error-rate' })).toBe(0);
    m.onEvent({ type: 'alert', at: AT, alert: { rule: 'bounce-rate', state: 'resolved', severity: 'critical', message: 'y' } });
    expect(sample(await m.registry.metrics(), 'mailq_alerts_firing', { rule: 'bounce-rate' })).toBe(0);
  });

  it('keeps each send in its own registry (not prom-client\'s global one)', async () => {
    const a = new SendMetrics({ campaign: 'a', domainsByVolume: [] });
    const b = new SendMetrics({ campaign: 'b', domainsByVolume: [] });
    a.onEvent({ type: 'message-sent', at: AT, line: 2, domain: 'x.test', latencyMs: 1, possibleDuplicate: false });
    expect(sample(await a.registry.metrics(), 'mailq_messages_total', { outcome: 'sent', category: 'sent', domain: 'x.test' })).toBe(1);
    expect(sample(await b.registry.metrics(), 'mailq_messages_total', { outcome: 'sent', category: 'sent', domain: 'x.test' })).toBeUndefined();
  });
});

describe('metrics endpoint', () => {
  it('serves /metrics on 127.0.0.1 with a free port, 404 elsewhere, and stops on close', async () => {
    const m = new SendMetrics({ campaign: 'spring', domainsByVolume: [] });
    const server = await startMetricsServer(m.registry, 0);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(server.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toContain('mailq_run_info{campaign="spring"} 1');
    const other = await fetch(server.url.replace('/metrics', '/'));
    expect(other.status).toBe(404);
    await other.text();
    await server.close();
    await expect(fetch(server.url)).rejects.toThrow();
  });

  it('refuses a port in use with an input error naming the flag', async () => {
    const busy = http.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      const m = new SendMetrics({ campaign: 'c', domainsByVolume: [] });
      const err = await startMetricsServer(m.registry, port).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).message).toBe(`--metrics-port ${port}: cannot listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });
});
