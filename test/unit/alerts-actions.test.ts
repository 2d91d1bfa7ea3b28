import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertActions, redactWebhook } from '../../src/alerts/actions.js';
import { defaultAlertSettings, type ActionSettings } from '../../src/alerts/config.js';
import type { Alert, EngineEvent } from '../../src/engine/events.js';

/** Alert actions against a real child process and a real HTTP server on loopback. */

const AT = Date.UTC(2025, 0, 2, 3, 4, 5);
const firing: Alert = { rule: 'bounce-rate', state: 'firing', severity: 'critical', message: 'bounce rate 60%: 6 of 10 final outcomes were bad-recipient' };
const resolved: Alert = { ...firing, state: 'resolved', message: 'bounce rate 1%' };
const alertEvent = (alert: Alert): EngineEvent => ({ type: 'alert', at: AT, alert });

function settings(o: Partial<ActionSettings>): ActionSettings {
  return { ...defaultAlertSettings().actions, ...o };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-alert-actions-'));

/** A command that appends what it got (stdin and the MAILQ_* environment) as one JSON line. */
const recorder = path.join(dir, 'record.mjs');
fs.writeFileSync(
  recorder,
  `import fs from 'node:fs';
let input = '';
process.stdin.setEncoding('utf8').on('data', (d) => (input += d)).on('end', () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MAILQ_')));
  fs.appendFileSync(process.argv[2], JSON.stringify({ stdin: JSON.parse(input), env }) + '\\n');
  if (process.argv[3] === 'fail') { process.stderr.write('paging service said no\\nsecond line\\n'); process.exit(3); }
  if (process.argv[3] === 'hang') setTimeout(() => undefined, 60_000);
});
`,
);

interface Received {
  readonly path: string;
  readonly body: unknown;
  readonly contentType: string | undefined;
}
let server: http.Server;
let base: string;
const received: Received[] = [];
beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body), contentType: req.headers['content-type'] });
      res.writeHead(req.url?.startsWith('/fail') === true ? 500 : 204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('alert command', () => {
  it('runs argv without a shell, with the alert JSON on stdin and MAILQ_ALERT_* variables, never the SMTP password', async () => {
    const out = path.join(dir, 'ok.ndjson');
    const warnings: string[] = [];
    const a = new AlertActions(settings({ command: [process.execPath, recorder, out] }), {
      campaign: 'spring',
      warn: (l) => warnings.push(l),
      env: { ...process.env, MAILQ_SMTP_PASSWORD: 'hunter2' },
    });
    a.onEvent(alertEvent(firing));
    a.onEvent({ type: 'progress', at: AT, counts: { queued: 0, sending: 0, deferred: 0, sent: 0, failed: 0, suppressed: 0, cancelled: 0 }, inFlight: 0, openConnections: 0, stalled: 0, nextRetryAt: undefined, paused: false });
    a.onEvent(alertEvent(resolved));
    await a.drain();
    expect(warnings).toEqual([]);
    const runs = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stdin: Record<string, unknown>; env: Record<string, string> });
    // One run per alert, in order; other events run nothing.
    expect(runs.map((r) => r.stdin['state'])).toEqual(['firing', 'resolved']);
    expect(runs[0]?.stdin).toEqual({ type: 'alert', at: '2025-01-02T03:04:05.000Z', campaign: 'spring', rule: 'bounce-rate', state: 'firing', severity: 'critical', message: firing.message });
    expect(runs[0]?.env).toMatchObject({
      MAILQ_ALERT_RULE: 'bounce-rate',
      MAILQ_ALERT_STATE: 'firing',
      MAILQ_ALERT_SEVERITY: 'critical',
      MAILQ_ALERT_CAMPAIGN: 'spring',
      MAILQ_ALERT_AT: '2025-01-02T03:04:05.000Z',
      MAILQ_ALERT_MESSAGE: firing.message,
    });
    expect(runs[0]?.env['MAILQ_SMTP_PASSWORD']).toBeUndefined();
  });

  it('reports a failing, missing or hanging command as one warning line and carries on', async () => {
    const warnings: string[] = [];
    const ctx = { campaign: 'c', warn: (l: string) => warnings.push(l), env: process.env };
    const failing = new AlertActions(settings({ command: [process.execPath, recorder, path.join(dir, 'f.ndjson'), 'fail'] }), ctx);
    failing.onEvent(alertEvent(firing));
    await failing.drain();
    expect(warnings).toEqual([`mailq: warning: alert command ${path.basename(process.execPath)} (bounce-rate firing): exited with code 3: paging service said no`]);

    warnings.length = 0;
    const missing = new AlertActions(settings({ command: [path.join(dir, 'no-such-command'), '--token', 's3cret'] }), ctx);
    missing.onEvent(alertEvent(firing));
    await missing.drain();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^mailq: warning: alert command no-such-command \(bounce-rate firing\): .*ENOENT/);
    expect(warnings[0]).not.toContain('s3cret');

    warnings.length = 0;
    const hanging = new AlertActions(settings({ command: [process.execPath, recorder, path.join(dir, 'h.ndjson'), 'hang'], commandTimeoutMs: 300 }), ctx);
    hanging.onEvent(alertEvent(firing));
    await hanging.drain();
    expect(warnings).toEqual([`mailq: warning: alert command ${path.basename(process.execPath)} (bounce-rate firing): timed out after 300 ms and was killed`]);
  });
});

describe('alert webhook', () => {
  it('POSTs the alert JSON, firing then resolved', async () => {
    const before = received.length;
    const warnings: string[] = [];
    const a = new AlertActions(settings({ webhook: `${base}/hook/T0K3N?key=abc` }), { campaign: 'spring', warn: (l) => warnings.push(l), env: {} });
    a.onEvent(alertEvent(firing));
    a.onEvent(alertEvent(resolved));
    await a.drain();
    expect(warnings).toEqual([]);
    const got = received.slice(before);
    expect(got.map((r) => r.path)).toEqual(['/hook/T0K3N?key=abc', '/hook/T0K3N?key=abc']);
    expect(got[0]?.contentType).toBe('application/json');
    expect(got.map((r) => (r.body as Alert).state)).toEqual(['firing', 'resolved']);
    expect(got[0]?.body).toMatchObject({ type: 'alert', campaign: 'spring', rule: 'bounce-rate', severity: 'critical' });
  });

  it('reports an error status or an unreachable server as a warning that never shows the token', async () => {
    const warnings: string[] = [];
    const ctx = { campaign: 'c', warn: (l: string) => warnings.push(l), env: {} };
    const erroring = new AlertActions(settings({ webhook: `${base}/fail/T0K3N` }), ctx);
    erroring.onEvent(alertEvent(firing));
    await erroring.drain();
    expect(warnings).toEqual([`mailq: warning: alert webhook ${base}/… (bounce-rate firing): HTTP 500`]);

    // A port that was just free: connection refused.
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    warnings.length = 0;
    const down = new AlertActions(settings({ webhook: `http://user:pw@127.0.0.1:${port}/services/T0K3N` }), ctx);
    down.onEvent(alertEvent(firing));
    await down.drain();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^mailq: warning: alert webhook http://127\\.0\\.0\\.1:${port}/… \\(bounce-rate firing\\): .*ECONNREFUSED`));
    expect(warnings[0]).not.toMatch(/T0K3N|pw@/);
  });

  it('redacts everything after the host', () => {
    expect(redactWebhook('https://hooks.slack.com/services/T000/B000/XXXX')).toBe('https://hooks.slack.com/…');
    expect(redactWebhook('https://u:p@example.com:8443/?token=x')).toBe('https://example.com:8443/…');
    expect(redactWebhook('https://example.com/')).toBe('https://example.com');
  });
});
