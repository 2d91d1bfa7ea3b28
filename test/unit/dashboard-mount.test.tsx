import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EngineEvent } from '../../src/engine/events.js';
import { emptyCounts, type MessageState } from '../../src/store/types.js';
import { startDashboard, type DashboardHandle, type DashboardOptions } from '../../src/ui/dashboard/mount.js';

/**
 * startDashboard against stand-ins for a terminal's stderr and stdin (the
 * shape Ink uses: write/columns/rows/isTTY, and setRawMode/read/'readable').
 * The assertions hold whether or not CI is set (Ink then prints only the
 * final frame), except the one about frames between events, skipped there.
 */

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
// eslint-disable-next-line no-control-regex -- SGR sequences start with ESC
const SGR = /\u001b\[[\d;]*m/;
/** What the terminal shows as text: the output without its SGR (colour) sequences. */
const text = (out: string): string => out.replace(new RegExp(SGR.source, 'g'), '');
const inCi = ['CI', 'CONTINUOUS_INTEGRATION'].some((k) => process.env[k] !== undefined && process.env[k] !== '0' && process.env[k] !== 'false');

class FakeTerminal extends EventEmitter {
  isTTY = true;
  columns = 80;
  rows = 30;
  out = '';
  write(chunk: string | Uint8Array, ...rest: unknown[]): boolean {
    this.out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const cb = rest.find((r): r is () => void => typeof r === 'function');
    cb?.();
    return true;
  }
}

class FakeKeyboard extends EventEmitter {
  isTTY = true;
  readonly raw: boolean[] = [];
  private pending: string | null = null;
  setRawMode(on: boolean): this {
    this.raw.push(on);
    return this;
  }
  setEncoding(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  read(): string | null {
    const d = this.pending;
    this.pending = null;
    return d;
  }
  press(key: string): void {
    this.pending = key;
    this.emit('readable');
  }
}

const counts = (c: Partial<Record<MessageState, number>>): Record<MessageState, number> => ({ ...emptyCounts(), ...c });

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const handles: DashboardHandle[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const h of handles.splice(0)) await h.stop().catch(() => undefined);
});

function start(over: Partial<DashboardOptions> & { env?: NodeJS.ProcessEnv } = {}) {
  const term = new FakeTerminal();
  const keys = new FakeKeyboard();
  const calls = { pause: 0, quit: 0 };
  const handle = startDashboard({
    stdout: term as unknown as NodeJS.WriteStream,
    stdin: keys as unknown as NodeJS.ReadStream,
    now: () => T0 + 5_000,
    onTogglePause: () => void calls.pause++,
    onQuit: () => void calls.quit++,
    env: {},
    ...over,
  });
  handles.push(handle);
  return { term, keys, calls, handle };
}

function feedRun(onEvent: (e: EngineEvent) => void): void {
  onEvent({ type: 'run-started', at: T0, campaign: 'release-2.4', owner: 'o', transport: 'smtp://127.0.0.1:2525', counts: counts({ queued: 3 }), reclaimed: 0 });
  for (let i = 0; i < 3; i++) onEvent({ type: 'message-sent', at: T0 + 1_000 * i, line: i + 2, domain: 'example.com', latencyMs: 120, possibleDuplicate: false });
  onEvent({ type: 'run-finished', at: T0 + 4_000, outcome: { kind: 'finished' }, counts: counts({ sent: 3 }), possibleDuplicates: 0 });
}

describe('startDashboard', () => {
  it('renders the final frame on stop and gives the terminal back', async () => {
    const { term, keys, handle } = start();
    feedRun((e) => handle.onEvent(e));
    await handle.stop();
    expect(text(term.out)).toContain('FINISHED');
    expect(text(term.out)).toContain('sent 3  failed 0  left 0 of 3');
    // Raw mode (for the keys) on while mounted, off after.
    expect(keys.raw[0]).toBe(true);
    expect(keys.raw.at(-1)).toBe(false);
    const hidden = term.out.lastIndexOf('\u001b[?25l');
    expect(hidden === -1 || term.out.lastIndexOf('\u001b[?25h') > hidden).toBe(true);
    // stop() is idempotent.
    await handle.stop();
  });

  it('draws no colour under NO_COLOR, even with FORCE_COLOR, and colours otherwise', async () => {
    const plain = start({ env: { NO_COLOR: '1', FORCE_COLOR: '1' } });
    feedRun((e) => plain.handle.onEvent(e));
    await plain.handle.stop();
    expect(plain.term.out).toContain('FINISHED');
    expect(plain.term.out).not.toMatch(SGR);

    const coloured = start({ env: {} });
    feedRun((e) => coloured.handle.onEvent(e));
    await coloured.handle.stop();
    expect(coloured.term.out).toMatch(SGR);
  });

  it('calls back on p and q, and turns Ctrl-C into SIGINT for the process', async () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const { keys, calls, handle } = start();
    await until(() => keys.listenerCount('readable') > 0, 'Ink to read keys');
    keys.press('p');
    keys.press('q');
    keys.press('\u0003');
    await until(() => kill.mock.calls.length > 0, 'Ctrl-C');
    expect(calls).toEqual({ pause: 1, quit: 1 });
    expect(kill.mock.calls).toEqual([[process.pid, 'SIGINT']]);
    await handle.stop();
  });

  it('does not ask for raw mode when stdin is not a terminal', async () => {
    const keys = new FakeKeyboard();
    keys.isTTY = false;
    const { term, handle } = start({ stdin: keys as unknown as NodeJS.ReadStream });
    feedRun((e) => handle.onEvent(e));
    await handle.stop();
    expect(keys.raw).toEqual([]);
    expect(term.out).toContain('FINISHED');
  });

  it('keeps a display failure away from the send and reports it from stop()', async () => {
    const { handle } = start();
    const broken = { type: 'message-failed', at: T0, line: 2, domain: 'x.org', category: 'retry', reason: 'expired', code: 451, reply: 42 } as unknown as EngineEvent;
    expect(() => handle.onEvent(broken)).not.toThrow();
    await expect(handle.stop()).rejects.toThrow(TypeError);
  });

  it.skipIf(inCi)('redraws from the timer between events', async () => {
    const { term, handle } = start({ refreshMs: 20 });
    handle.onEvent({ type: 'run-started', at: T0, campaign: 'release-2.4', owner: 'o', transport: 'smtp://127.0.0.1:2525', counts: counts({ queued: 5 }), reclaimed: 0 });
    await until(() => text(term.out).includes('left 5 of 5'), 'the first frame with the run');
    handle.onEvent({ type: 'message-sent', at: T0 + 1_000, line: 2, domain: 'example.com', latencyMs: 120, possibleDuplicate: false });
    await until(() => text(term.out).includes('left 4 of 5'), 'a frame with the message sent');
  });
});
