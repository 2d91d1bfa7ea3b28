import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup } from 'ink-testing-library';
import type { EngineEvent } from '../../src/engine/events.js';
import { emptyCounts, type MessageState } from '../../src/store/types.js';
import { Dashboard, type DashboardProps } from '../../src/ui/dashboard/Dashboard.js';
import { createDashboardModel, type DashboardModel } from '../../src/ui/dashboard/model.js';
import { colorEnabled } from '../../src/ui/dashboard/theme.js';

// Times on screen are local; pin the zone so the expected texts hold anywhere.
process.env['TZ'] = 'UTC';

/** 2026-01-05 12:00:00 UTC. */
const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const HOUR = 3_600_000;
const ESC = '\u001b';

afterEach(() => {
  cleanup();
});

const counts = (c: Partial<Record<MessageState, number>>): Record<MessageState, number> => ({ ...emptyCounts(), ...c });
const keyFor = (d: string): string => (d === 'gmail.com' || d === 'googlemail.com' ? 'google' : d);

/** A send in progress fed through the real model: four domains, retries, bounces. */
function scenario(): { model: DashboardModel; clock: { t: number }; feed: (e: EngineEvent) => void } {
  const clock = { t: T0 };
  const model = createDashboardModel(() => clock.t, { keyFor });
  const feed = (e: EngineEvent): void => model.apply(e);
  feed({ type: 'run-started', at: T0, campaign: 'spring-news', owner: 'o', transport: 'smtp://127.0.0.1:2525', counts: counts({ queued: 10_000 }), reclaimed: 0 });
  const domains = ['gmail.com', 'yahoo.com', 'outlook.com', 'example.org', 'a-very-long-subdomain.mail.example-company.co.uk'];
  for (let i = 0; i < 4_000; i++) {
    clock.t = T0 + i * 2;
    feed({ type: 'message-sent', at: clock.t, line: i + 2, domain: domains[i % domains.length] ?? 'x', latencyMs: 100 + (i % 100), possibleDuplicate: false });
  }
  for (let i = 0; i < 40; i++) {
    feed({ type: 'message-failed', at: clock.t, line: i, domain: 'example.org', category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: `550 5.1.1 <user${i}@example.org>: Recipient address rejected: User unknown` });
  }
  for (let i = 0; i < 300; i++) {
    feed({ type: 'message-deferred', at: clock.t, line: i, domain: 'yahoo.com', category: 'retry', code: 451, reply: '451 4.3.0 Temporary failure, try again later', retryAt: clock.t + 60_000 });
  }
  clock.t = T0 + 10_000;
  feed({ type: 'progress', at: clock.t, counts: counts({ queued: 5_600, sending: 10, deferred: 300, sent: 4_000, failed: 40, suppressed: 50 }), inFlight: 10, openConnections: 10, stalled: 0, nextRetryAt: clock.t + 35_000, paused: false });
  return { model, clock, feed };
}

const noop = (): void => undefined;

function props(model: DashboardModel, over: Partial<DashboardProps> = {}): DashboardProps {
  return { snapshot: model.snapshot(), columns: 80, rows: 40, color: false, keys: false, onTogglePause: noop, onQuit: noop, onInterrupt: noop, ...over };
}

/** The frame split into the notices (<Static>, printed once) and the live region, which starts at the "mailq" header. */
function split(frame: string | undefined): { notices: string[]; live: string[] } {
  const lines = (frame ?? '').split('\n');
  const at = lines.findIndex((l) => l.startsWith('mailq'));
  return { notices: lines.slice(0, at), live: lines.slice(at) };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('dashboard frames', () => {
  it('shows a paused provider on its domain row with the time it resumes, and a notice above', () => {
    const { model, clock, feed } = scenario();
    const r = render(<Dashboard {...props(model)} />);
    expect(split(r.lastFrame()).live.join('\n')).not.toContain('paused');

    feed({ type: 'domain-throttled', at: clock.t, key: 'google', until: clock.t + 2 * HOUR, paused: true, reason: '421-4.7.28 Our system has detected an unusual rate of unsolicited mail - gsmtp' });
    clock.t += 60_000; // a minute later: 1h59m to go
    r.rerender(<Dashboard {...props(model)} />);
    let { notices, live } = split(r.lastFrame());
    // Wrapped under the text, not cut: a notice is printed once and stays in the terminal's history.
    expect(notices).toEqual(['12:00:10 google paused until 14:00:10 (2h00m): 421-4.7.28 Our system has', '         detected an unusual rate of unsolicited mail - gsmtp']);
    const gmail = live.find((l) => l.startsWith('gmail.com'));
    // Throttled rows come first, right under the table's header.
    expect(live[live.findIndex((l) => l.startsWith('domain')) + 1]).toBe(gmail);
    // Nothing sent for a minute: 0/s now.
    expect(gmail).toBe('gmail.com                 800   0    0  0/s paused until 14:00:10 (1h59m)');

    feed({ type: 'domain-resumed', at: clock.t, key: 'google' });
    r.rerender(<Dashboard {...props(model)} />);
    ({ notices, live } = split(r.lastFrame()));
    expect(notices.at(-1)).toBe('12:01:10 google resumed');
    expect(live.find((l) => l.startsWith('gmail.com'))).toMatch(/ ok$/);
  });

  it('shows an alert while it fires and drops it once resolved', () => {
    const { model, clock, feed } = scenario();
    const alert = (state: 'firing' | 'resolved'): void =>
      feed({ type: 'alert', at: clock.t, alert: { rule: 'error-rate', state, severity: 'critical', message: 'error rate 12% over the last 5 min (threshold 5%)' } });
    alert('firing');
    const r = render(<Dashboard {...props(model)} />);
    let { notices, live } = split(r.lastFrame());
    expect(live).toContain('ALERT critical error-rate: error rate 12% over the last 5 min (threshold 5%)');
    expect(notices).toEqual(['12:00:10 ALERT critical error-rate: error rate 12% over the last 5 min', '         (threshold 5%)']);

    clock.t += 30_000;
    alert('resolved');
    r.rerender(<Dashboard {...props(model)} />);
    ({ notices, live } = split(r.lastFrame()));
    expect(live.join('\n')).not.toContain('ALERT');
    expect(notices.at(-1)).toBe('12:00:40 resolved error-rate: error rate 12% over the last 5 min (threshold 5%)');
  });

  it('shows leasing paused by the operator until it resumes', () => {
    const { model, clock, feed } = scenario();
    feed({ type: 'leasing-paused', at: clock.t });
    const r = render(<Dashboard {...props(model, { keys: true })} />);
    let { notices, live } = split(r.lastFrame());
    expect(live[0]).toMatch(/^mailq spring-news → smtp:\/\/127\.0\.0\.1:2525 +PAUSED {2}\? help$/);
    expect(live).toContain('leasing paused: messages in flight finish, nothing new starts; p continues');
    expect(notices.join(' ').replace(/ +/g, ' ')).toContain('12:00:10 leasing paused: messages in flight finish, nothing new starts (p to continue)');

    feed({ type: 'leasing-resumed', at: clock.t + 5_000 });
    r.rerender(<Dashboard {...props(model, { keys: true })} />);
    ({ notices, live } = split(r.lastFrame()));
    expect(live[0]).toMatch(/ sending {2}\? help$/);
    expect(live.join('\n')).not.toContain('PAUSED');
    expect(notices.at(-1)).toBe('12:00:15 leasing resumed');
  });

  it('shows the progress, rates, queue, health and errors by category with the reply text, without addresses', () => {
    const { model } = scenario();
    const frame = render(<Dashboard {...props(model)} />).lastFrame() ?? '';
    const { live } = split(frame);
    expect(live[1]).toMatch(/^█+░+ 40\.9%$/);
    expect(live).toContain('sent 4,000  failed 40  suppressed 50  left 5,910 of 10,000');
    // 4,000 sent in 8 s; latencies 100..199 ms evenly.
    expect(live[3]).toMatch(/^rate \d{3}\/s {2}avg 400\/s {2}ETA \d+s {2}p50 149ms {2}p95 194ms$/);
    expect(live).toContain('queue  queued 5,600  sending 10  deferred 300  next retry 12:00:45 (in 35s)');
    expect(live).toContain('health  connections 10  in flight 10  stalled 0');
    expect(live).toContain('retry         300 deferred  451 4.3.0 Temporary failure, try again later');
    expect(live).toContain('bad-recipient 40 failed     550 5.1.1 <address>: Recipient address rejected: Us…');
    expect(frame).not.toContain('@');
  });

  it.each([
    [80, 'rate', 'Temporary failure'],
    [50, 'fail', 'Temporary f…'],
    [30, 'sent', undefined],
  ] as const)('fits %i columns: no line longer, columns and panels dropped as it narrows', (columns, lastNumberColumn, replyText) => {
    const { model, clock, feed } = scenario();
    feed({ type: 'domain-throttled', at: clock.t, key: 'google', until: clock.t + 2 * HOUR, paused: true, reason: '421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address - gsmtp' });
    feed({ type: 'alert', at: clock.t, alert: { rule: 'queue-stalled', state: 'firing', severity: 'warning', message: 'no message finished for 120 s while 10 are in flight' } });
    feed({ type: 'leasing-paused', at: clock.t });
    const frame = render(<Dashboard {...props(model, { columns })} />).lastFrame() ?? '';
    const { notices, live } = split(frame);
    for (const line of frame.split('\n')) expect(line.length, line).toBeLessThanOrEqual(columns);
    // Notices wrap (they stay in the history); nothing of them is lost.
    expect(notices.join(' ').replace(/ +/g, ' ')).toContain('originating from your IP address - gsmtp');
    const head = live.find((l) => l.startsWith('domain')) ?? '';
    const titles = head.split(/ +/);
    expect(titles.at(titles.includes('state') ? -2 : -1)).toBe(lastNumberColumn);
    if (replyText === undefined) expect(live.join('\n')).not.toContain('451 4.3.0');
    else expect(live.join('\n')).toContain(replyText);
    expect(live.find((l) => l.startsWith('gmail.com'))).toContain('paused');
  });

  it('stays shorter than the terminal, keeping the header, progress and alerts', () => {
    const { model, clock, feed } = scenario();
    feed({ type: 'alert', at: clock.t, alert: { rule: 'rate-floor', state: 'firing', severity: 'warning', message: 'rate 0.4/s below the floor of 5/s' } });
    for (const rows of [24, 12, 8]) {
      const { live } = split(render(<Dashboard {...props(model, { rows })} />).lastFrame());
      expect(live.length, `rows ${rows}`).toBeLessThan(rows);
      expect(live[0]).toMatch(/^mailq spring-news/);
      expect(live[1]).toMatch(/40\.9%$/);
      expect(live.some((l) => l.startsWith('ALERT warning rate-floor'))).toBe(rows >= 8);
    }
  });

  it('writes no escape sequence at all with colour off, and colours with it on', () => {
    const { model, clock, feed } = scenario();
    feed({ type: 'domain-throttled', at: clock.t, key: 'google', until: clock.t + HOUR, paused: true, reason: '421 4.7.28' });
    feed({ type: 'alert', at: clock.t, alert: { rule: 'error-rate', state: 'firing', severity: 'critical', message: 'error rate 12%' } });
    const plain = render(<Dashboard {...props(model, { color: false })} />).lastFrame() ?? '';
    expect(plain).not.toContain(ESC);
    const coloured = render(<Dashboard {...props(model, { color: true })} />).lastFrame() ?? '';
    expect(coloured).toContain(`${ESC}[31mALERT${ESC}[39m`);
    // Same text once the SGR sequences are removed: colour never changes the layout.
    expect(coloured.replace(new RegExp(`${ESC}\\[\\d+m`, 'g'), '')).toBe(plain);
  });
});

describe('colour decision', () => {
  const tty = { isTTY: true };
  it.each([
    [{}, tty, true],
    [{}, { isTTY: false }, false],
    [{ NO_COLOR: '1' }, tty, false],
    [{ NO_COLOR: '1', FORCE_COLOR: '3' }, tty, false],
    [{ NO_COLOR: '' }, tty, true],
    [{ FORCE_COLOR: '0' }, tty, false],
    [{ FORCE_COLOR: '1' }, { isTTY: false }, true],
    [{ TERM: 'dumb' }, tty, false],
  ] as const)('%o on %o → %s', (env, stream, expected) => {
    expect(colorEnabled(env, stream)).toBe(expected);
  });
});

describe('dashboard keys', () => {
  async function mounted(over: Partial<DashboardProps> = {}) {
    const { model } = scenario();
    const calls = { pause: 0, quit: 0, interrupt: 0 };
    const r = render(
      <Dashboard
        {...props(model, {
          keys: true,
          onTogglePause: () => void calls.pause++,
          onQuit: () => void calls.quit++,
          onInterrupt: () => void calls.interrupt++,
          ...over,
        })}
      />,
    );
    await until(() => r.stdin.listenerCount('readable') > 0, 'Ink to read keys');
    return { r, calls };
  }

  it('p toggles the pause and q asks to stop, each press', async () => {
    const { r, calls } = await mounted();
    r.stdin.write('p');
    r.stdin.write('P');
    r.stdin.write('q');
    await until(() => calls.quit === 1, 'q');
    expect(calls).toEqual({ pause: 2, quit: 1, interrupt: 0 });
  });

  it('passes Ctrl-C on as an interrupt, not as a quit', async () => {
    const { r, calls } = await mounted();
    r.stdin.write('\u0003');
    await until(() => calls.interrupt === 1, 'Ctrl-C');
    expect(calls).toEqual({ pause: 0, quit: 0, interrupt: 1 });
  });

  it('? shows the keys in place of the errors and domains, ? or Esc hides them', async () => {
    const { r } = await mounted();
    const live = (): string => split(r.lastFrame()).live.join('\n');
    expect(live()).toContain('gmail.com');
    r.stdin.write('?');
    await until(() => live().includes('keys'), 'help');
    expect(live()).toContain(' p       pause or resume leasing; messages in flight finish');
    expect(live()).toContain(' Ctrl-C  stop gracefully; press again to abort messages in flight');
    expect(live()).not.toContain('gmail.com');
    r.stdin.write('?');
    await until(() => !live().includes('keys'), 'help to close');
    r.stdin.write('?');
    await until(() => live().includes('keys'), 'help again');
    r.stdin.write(ESC);
    await until(() => !live().includes('keys'), 'Esc to close help');
  });

  it('leaves no help and no key hint in the final frame', async () => {
    const { model } = scenario();
    const r = render(<Dashboard {...props(model, { keys: true })} />);
    await until(() => r.stdin.listenerCount('readable') > 0, 'Ink to read keys');
    r.stdin.write('?');
    await until(() => split(r.lastFrame()).live.includes('keys'), 'help');
    expect(split(r.lastFrame()).live[0]).toMatch(/ sending {2}\? help$/);
    r.rerender(<Dashboard {...props(model, { keys: true, final: true })} />);
    const { live } = split(r.lastFrame());
    expect(live).not.toContain('keys');
    expect(live[0]).toMatch(/ sending$/);
    expect(live.join('\n')).toContain('gmail.com');
  });

  it('reads no keys when stdin is not a terminal', () => {
    const { model } = scenario();
    const onQuit = vi.fn();
    const r = render(<Dashboard {...props(model, { keys: false, onQuit })} />);
    expect(r.stdin.listenerCount('readable')).toBe(0);
    r.stdin.write('q');
    expect(onQuit).not.toHaveBeenCalled();
  });
});
