import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, runCliAsync, tempDir, templateDir } from '../helpers/cli.js';

/**
 * Alerts end to end: the built CLI sends a campaign of mostly bad-recipient
 * addresses to a real SMTP sink; thresholds come from the config file. The
 * bounce-rate alert must reach every surface: the NDJSON stream, the plain
 * summary, a command action and a webhook on a local HTTP server.
 */

let sink: SinkHandle;
let hooks: http.Server;
let hookBase: string;
const posts: { path: string; body: string }[] = [];

beforeAll(async () => {
  sink = await startSink({ port: 0 });
  hooks = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  hookBase = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await sink.close();
  await new Promise((resolve) => hooks.close(resolve));
});

const HEADER = 'email,first_name,last_name,plan,city\n';

interface AlertLine {
  type: string;
  at: string;
  alert?: { rule: string; state: string; severity: string; message: string };
}

describe('alerts (built CLI, real SMTP sink)', () => {
  it('fires bounce-rate on a list of mostly bad addresses: NDJSON event, plain summary, command action and webhook', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const csv = path.join(dir, 'r.csv');
    const rows = [...Array.from({ length: 8 }, (_, i) => `bounce-${i}@a.test`), 'ok-1@b.test', 'ok-2@c.test'];
    fs.writeFileSync(csv, HEADER + rows.map((r) => `${r},A,B,pro,X\n`).join(''));
    expect(runCli(['--db', db, 'import', csv, '-c', 'c', '-t', templateDir('newsletter')]).code).toBe(0);

    // The command action: records its stdin and MAILQ_ALERT_* variables, one JSON line per run.
    const record = path.join(dir, 'record.mjs');
    const actionOut = path.join(dir, 'action.ndjson');
    fs.writeFileSync(
      record,
      `import fs from 'node:fs';
let input = '';
process.stdin.setEncoding('utf8').on('data', (d) => (input += d)).on('end', () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MAILQ_ALERT_')));
  fs.appendFileSync(process.argv[2], JSON.stringify({ stdin: JSON.parse(input), env }) + '\\n');
});
`,
    );
    const config = path.join(dir, 'alerts.config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        alerts: {
          // The default (5 % of >= 50 in 10 min) suits real lists; 10 messages need a smaller sample.
          'bounce-rate': { threshold: '50%', minSamples: 5 },
          actions: { command: [process.execPath, record, actionOut], webhook: `${hookBase}/hooks/T0K3N-secret` },
        },
      }),
    );

    const r = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--config', config, '--json']);
    expect(r.code).toBe(3);

    // NDJSON: the alert event, before run-finished.
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AlertLine);
    const alerts = events.filter((e) => e.type === 'alert');
    expect(alerts).toHaveLength(1);
    // Usually raised by the last evaluation at run-finished (8 of 10); on a slow machine a progress tick may come first.
    expect(alerts[0]?.alert).toEqual({
      rule: 'bounce-rate',
      state: 'firing',
      severity: 'critical',
      message: expect.stringMatching(/^bounce rate \d+%: \d+ of \d+ final outcomes were bad-recipient in the last 10m 00s \(threshold 50%\)$/) as string,
    });
    expect(alerts[0]?.at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(events.findIndex((e) => e.type === 'alert')).toBeLessThan(events.findIndex((e) => e.type === 'run-finished'));

    // Plain lines: the alert as it fires, and the final summary.
    expect(r.stderr).toContain(`mailq: ALERT bounce-rate firing (critical): ${alerts[0]?.alert?.message ?? '?'}`);
    expect(r.stderr).toContain('mailq: alerts during the run: bounce-rate (critical, fired 1×, still firing)');

    // The command action got the alert on stdin and in its environment.
    const runs = fs.readFileSync(actionOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stdin: Record<string, string>; env: Record<string, string> });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.stdin).toMatchObject({ type: 'alert', campaign: 'c', rule: 'bounce-rate', state: 'firing', severity: 'critical', at: alerts[0]?.at });
    expect(runs[0]?.env).toMatchObject({ MAILQ_ALERT_RULE: 'bounce-rate', MAILQ_ALERT_STATE: 'firing', MAILQ_ALERT_CAMPAIGN: 'c' });

    // The webhook got the same JSON.
    const hook = posts.filter((p) => p.path === '/hooks/T0K3N-secret');
    expect(hook).toHaveLength(1);
    expect(JSON.parse(hook[0]?.body ?? '{}')).toEqual(runs[0]?.stdin);

    // No recipient addresses anywhere, and the webhook's token never printed.
    for (const text of [r.stdout, fs.readFileSync(actionOut, 'utf8'), hook[0]?.body ?? '']) expect(text).not.toMatch(/@[abc]\.test/);
    expect(r.stderr).not.toContain('T0K3N');
  }, 60_000);

  it('does not fire below the minimum sample, and a failing action is a warning that never fails the send', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'm.db');
    const csv = path.join(dir, 'r.csv');
    fs.writeFileSync(csv, `${HEADER}bounce-1@a.test,A,B,pro,X\nok@b.test,A,B,pro,X\n`);
    expect(runCli(['--db', db, 'import', csv, '-c', 'c', '-t', templateDir('newsletter')]).code).toBe(0);
    const config = path.join(dir, 'mailq.config.yaml');
    // 1 bounce of 2 is 50 %, over the threshold, but under minSamples: no alert.
    fs.writeFileSync(config, `alerts:\n  bounce-rate: { threshold: 10%, minSamples: 5 }\n  actions:\n    webhook: ${hookBase}/never\n`);
    const quiet = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--json'], { cwd: dir });
    expect(quiet.code).toBe(3);
    expect(quiet.stdout).not.toContain('"type":"alert"');
    expect(quiet.stderr).not.toContain('ALERT');
    expect(posts.some((p) => p.path === '/never')).toBe(false);

    // A webhook that refuses connections: the alert still fires, the send still finishes normally.
    const dir2 = tempDir();
    const db2 = path.join(dir2, 'm.db');
    const csv2 = path.join(dir2, 'r.csv');
    fs.writeFileSync(csv2, HEADER + Array.from({ length: 6 }, (_, i) => `bounce-${i}@a.test,A,B,pro,X\n`).join(''));
    expect(runCli(['--db', db2, 'import', csv2, '-c', 'c', '-t', templateDir('newsletter')]).code).toBe(0);
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    fs.writeFileSync(
      path.join(dir2, 'mailq.config.json'),
      JSON.stringify({ alerts: { 'bounce-rate': { threshold: 10, minSamples: 5 }, actions: { webhook: `http://127.0.0.1:${closedPort}/T0K3N`, command: [path.join(dir2, 'missing-notifier')] } } }),
    );
    const failing = await runCliAsync(['--db', db2, 'send', '-c', 'c', '--transport', sink.url], { cwd: dir2 });
    expect(failing.code).toBe(3);
    expect(failing.stderr).toContain('mailq: ALERT bounce-rate firing (critical)');
    expect(failing.stderr).toMatch(new RegExp(`mailq: warning: alert webhook http://127\\.0\\.0\\.1:${closedPort}/… \\(bounce-rate firing\\): .*ECONNREFUSED`));
    expect(failing.stderr).toMatch(/mailq: warning: alert command missing-notifier \(bounce-rate firing\): .*ENOENT/);
    expect(failing.stderr).not.toContain('T0K3N');
    expect(JSON.parse(runCli(['--db', db2, 'status', '-c', 'c', '--json']).stdout)).toMatchObject({ failed: 6, queued: 0 });
  }, 60_000);
});
