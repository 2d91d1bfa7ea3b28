import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveSendSettings } from '../../src/cli/send-settings.js';

/** How alert settings and the metrics port are layered into send settings. */

function dir(files: Record<string, string> = {}): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-alert-settings-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

describe('alert settings in the config file and the rules file', () => {
  it('uses the defaults without any file', () => {
    const s = resolveSendSettings({}, {}, dir());
    expect(s.metricsPort).toBeUndefined();
    expect(s.alerts['bounce-rate']).toMatchObject({ enabled: true, threshold: 0.05, minSamples: 50 });
    expect(s.alerts['rate-floor'].enabled).toBe(false);
    expect(s.alerts.actions).toMatchObject({ command: undefined, webhook: undefined });
  });

  it('reads an alerts section from the config file, then the rules file field by field over it', () => {
    const cwd = dir({
      'mailq.config.yaml': [
        'rules: limits.yaml',
        'alerts:',
        '  bounce-rate: { threshold: 2%, minSamples: 10 }',
        '  error-rate: false',
        '  actions:',
        '    command: [./page.sh, --team, mail]',
        '    webhook: https://hooks.example.com/services/T0K3N',
        '',
      ].join('\n'),
      'limits.yaml': 'domains:\n  example.org: "2/s:1"\nalerts:\n  bounce-rate:\n    window: 1m\n  rate-floor:\n    floor: 30/m\n',
    });
    const s = resolveSendSettings({}, {}, cwd);
    expect(s.domainLimits.get('example.org')).toEqual({ rate: { perSecond: 2 }, connections: 1 });
    expect(s.alerts['bounce-rate']).toMatchObject({ threshold: 0.02, minSamples: 10, windowMs: 60_000 });
    expect(s.alerts['error-rate'].enabled).toBe(false);
    expect(s.alerts['rate-floor']).toMatchObject({ enabled: true, floor: { perSecond: 0.5 } });
    expect(s.alerts.actions.command).toEqual([path.join(cwd, 'page.sh'), '--team', 'mail']);
    expect(s.alerts.actions.webhook).toBe('https://hooks.example.com/services/T0K3N');
  });

  it('reads alerts from a --rules file given on the command line', () => {
    const d = dir({ 'r.json': JSON.stringify({ alerts: { 'queue-stalled': { after: '90s' } } }) });
    expect(resolveSendSettings({ rules: path.join(d, 'r.json') }, {}, dir()).alerts['queue-stalled'].afterMs).toBe(90_000);
  });

  it('names the file and key of a bad alert setting, without echoing a webhook', () => {
    expect(() => resolveSendSettings({}, {}, dir({ 'mailq.config.json': '{"alerts":{"bounce-rate":{"threshold":"lots"}}}' }))).toThrow(
      /^config file: alerts\.bounce-rate\.threshold must be a percentage/,
    );
    const d = dir({ 'r.json': '{"alerts":{"actions":{"webhook":"not a url T0K3N"}}}' });
    expect(() => resolveSendSettings({ rules: path.join(d, 'r.json') }, {}, dir())).toThrow(`${path.join(d, 'r.json')}: alerts.actions.webhook is not a URL`);
    try {
      resolveSendSettings({ rules: path.join(d, 'r.json') }, {}, dir());
    } catch (err) {
      expect((err as Error).message).not.toContain('T0K3N');
    }
  });
});

describe('metrics port', () => {
  it('comes from --metrics-port, else MAILQ_METRICS_PORT, else metricsPort in the config file', () => {
    const cwd = dir({ 'mailq.config.json': '{"metricsPort": 9464}' });
    expect(resolveSendSettings({}, {}, cwd).metricsPort).toBe(9464);
    expect(resolveSendSettings({}, { MAILQ_METRICS_PORT: '9100' }, cwd).metricsPort).toBe(9100);
    expect(resolveSendSettings({ metricsPort: '0' }, { MAILQ_METRICS_PORT: '9100' }, cwd).metricsPort).toBe(0);
  });

  it('refuses what is not a port', () => {
    expect(() => resolveSendSettings({ metricsPort: '70000' }, {}, dir())).toThrow(/--metrics-port must be a port number from 0 to 65535 \(got "70000"\)/);
    expect(() => resolveSendSettings({ metricsPort: 'http' }, {}, dir())).toThrow(/--metrics-port/);
  });
});
