// bench/dashboard: what the live dashboard costs the send.
//   npm run build && node --expose-gc bench/dashboard/run.mjs [--events 1000000] [--frames 200]
// 1. model.apply per event, over a realistic mix (1,000,000 by default): the
//    only dashboard work on the send's path.
// 2. model.snapshot() and one Ink frame of a snapshot with 50 domains, on a
//    mounted Ink app (as mount.ts does, 4 times a second), at 80x24 and 120x60;
//    and the share of one core that 4 Hz of frames takes.
// Runs against dist/ (plain JS, no TypeScript loader in the measurement).
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { numberArg } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => pathToFileURL(path.join(root, 'dist', p)).href;
const { createDashboardModel } = await import(dist('ui/dashboard/model.js'));
const { Dashboard } = await import(dist('ui/dashboard/Dashboard.js'));
const { render } = await import('ink');
const { createElement } = await import('react');

const EVENTS = numberArg('--events', 1_000_000);
const FRAMES = numberArg('--frames', 200);
const gc = globalThis.gc ?? (() => undefined);

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const states = { queued: 0, sending: 0, deferred: 0, sent: 0, failed: 0, suppressed: 0, cancelled: 0 };
const counts = (o) => ({ ...states, ...o });

// 50 domains with a skewed share, as real lists have (gmail.com first).
const DOMAINS = Array.from({ length: 50 }, (_, i) => (i === 0 ? 'gmail.com' : i === 1 ? 'yahoo.com' : i === 2 ? 'outlook.com' : `d${i}.example.com`));
const WEIGHTS = DOMAINS.map((_, i) => 1 / (i + 1));
let weightSum = 0;
const CUMULATIVE = WEIGHTS.map((w) => (weightSum += w));
const TOTAL_WEIGHT = CUMULATIVE.at(-1);
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pickDomain = () => {
  const r = random() * TOTAL_WEIGHT;
  let i = 0;
  while (CUMULATIVE[i] < r) i++;
  return DOMAINS[i];
};

/**
 * The mix a large send emits: 90% sent, 6% deferred (greylisting and
 * throttle replies), 3.9% failed (bounces naming the address, so every text
 * differs before masking), a progress event every 1,000 and a throttle or
 * alert transition every 20,000. 4,000 events a second of event time.
 */
function makeEvents(n, from, startAt) {
  const out = new Array(n);
  for (let k = 0; k < n; k++) {
    const i = from + k;
    const at = startAt + i / 4;
    const domain = pickDomain();
    const r = random();
    if (i % 1000 === 999) {
      out[k] = { type: 'progress', at, counts: counts({ queued: EVENTS * 2 - i, sending: 10, deferred: 300, sent: Math.floor(i * 0.9), failed: Math.floor(i * 0.04) }), inFlight: 10, openConnections: 10, stalled: 0, nextRetryAt: at + 30_000, paused: false };
    } else if (i % 20_000 === 10_000) {
      out[k] = { type: 'domain-throttled', at, key: 'google', until: at + 600_000, paused: i % 40_000 === 10_000, reason: '421-4.7.28 Our system has detected an unusual rate of unsolicited mail. d2e1a72fcca58-6f1c3b2a1sm123456pgd.12 - gsmtp' };
    } else if (i % 20_000 === 0) {
      out[k] = { type: 'alert', at, alert: { rule: 'error-rate', state: i % 40_000 === 0 ? 'firing' : 'resolved', severity: 'warning', message: 'error rate 6% over 5 min' } };
    } else if (r < 0.9) {
      out[k] = { type: 'message-sent', at, line: i + 2, domain, latencyMs: 80 + random() * 400, possibleDuplicate: false };
    } else if (r < 0.96) {
      const reply = r < 0.93 ? '451 4.7.1 Greylisted, please try again in 300 seconds' : '421 4.7.0 Try again later, closing connection.';
      out[k] = { type: 'message-deferred', at, line: i + 2, domain, category: r < 0.93 ? 'retry' : 'throttle', code: r < 0.93 ? 451 : 421, reply, retryAt: at + 300_000 };
    } else {
      out[k] = { type: 'message-failed', at, line: i + 2, domain, category: 'bad-recipient', reason: 'bad-recipient', code: 550, reply: `550 5.1.1 <user${i}@${domain}>: Recipient address rejected: User unknown in virtual mailbox table` };
    }
  }
  return out;
}

// ---- 1. apply -------------------------------------------------------------
let now = T0;
const model = createDashboardModel(() => now);
model.apply({ type: 'run-started', at: T0, campaign: 'bench', owner: 'o', transport: 'smtp://127.0.0.1:2525', counts: counts({ queued: EVENTS * 2 }), reclaimed: 0 });
// Warm up the JIT on a separate model, then measure in chunks so that the
// event objects (built outside the timed loop) do not all sit in memory.
{
  const warm = createDashboardModel(() => now);
  for (const e of makeEvents(100_000, 0, T0)) warm.apply(e);
}
gc();
const heapBefore = process.memoryUsage().heapUsed;
const CHUNK = 100_000;
let applyNs = 0n;
const byType = new Map();
for (let from = 0; from < EVENTS; from += CHUNK) {
  const events = makeEvents(Math.min(CHUNK, EVENTS - from), from, T0);
  for (const e of events) byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
  const t = process.hrtime.bigint();
  for (let k = 0; k < events.length; k++) model.apply(events[k]);
  applyNs += process.hrtime.bigint() - t;
}
now = T0 + EVENTS / 4;
gc();
const heapAfter = process.memoryUsage().heapUsed;
const usPerEvent = Number(applyNs) / 1000 / EVENTS;

// The same, message-sent only (the 90% case).
const sentOnly = createDashboardModel(() => now);
let usPerSent;
{
  const events = Array.from({ length: CHUNK }, (_, i) => ({ type: 'message-sent', at: T0 + i / 4, line: i, domain: pickDomain(), latencyMs: 120, possibleDuplicate: false }));
  for (const e of events) sentOnly.apply(e);
  const t = process.hrtime.bigint();
  for (let rep = 0; rep < 5; rep++) for (let k = 0; k < events.length; k++) sentOnly.apply(events[k]);
  usPerSent = Number(process.hrtime.bigint() - t) / 1000 / (5 * CHUNK);
}

// ---- 2. snapshot and frames -----------------------------------------------
const time = (n, fn) => {
  for (let i = 0; i < Math.min(20, n); i++) fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e6 / n;
};
const msSnapshot = time(FRAMES, () => model.snapshot());

class Terminal extends EventEmitter {
  constructor(columns, rows) {
    super();
    this.columns = columns;
    this.rows = rows;
    this.isTTY = true;
    this.bytes = 0;
  }
  write(chunk, ...rest) {
    this.bytes += chunk.length;
    rest.find((r) => typeof r === 'function')?.();
    return true;
  }
}
class Keys extends EventEmitter {
  isTTY = false;
  setRawMode() {}
  setEncoding() {}
  ref() {}
  unref() {}
  read() {
    return null;
  }
}

function frameCost(columns, rows, color) {
  const term = new Terminal(columns, rows);
  const el = () => createElement(Dashboard, { snapshot: model.snapshot(), columns, rows, color, keys: false, onTogglePause() {}, onQuit() {}, onInterrupt() {} });
  // debug: every rerender lays out and writes a whole frame at once (Ink's
  // normal mode throttles to 30 fps, which would hide the cost being measured).
  const app = render(el(), { stdout: term, stdin: new Keys(), stderr: term, debug: true, patchConsole: false, exitOnCtrlC: false });
  let i = 0;
  const ms = time(FRAMES, () => {
    now += 250; // a new snapshot each frame, as the 4 Hz timer sees it
    i++;
    app.rerender(el());
  });
  app.unmount();
  return { ms, bytesPerFrame: Math.round(term.bytes / (FRAMES + Math.min(20, FRAMES) + 1)), frames: i };
}

const f80 = frameCost(80, 24, true);
const f120 = frameCost(120, 60, true);
const core = (ms) => `${((ms * 4) / 10).toFixed(2)}%`; // 4 frames/s: ms*4 per 1000 ms

const s = model.snapshot();
console.log(`node ${process.version}, ${EVENTS.toLocaleString('en-US')} events (${[...byType].map(([k, v]) => `${k} ${v}`).join(', ')})`);
console.log('');
console.log('| what | cost |');
console.log('| --- | ---: |');
console.log(`| model.apply, mixed events | ${usPerEvent.toFixed(3)} µs/event (${(1000 / usPerEvent).toFixed(0)}k events/s) |`);
console.log(`| model.apply, message-sent only | ${usPerSent.toFixed(3)} µs/event |`);
console.log(`| model.snapshot(), ${s.domainCount} domains | ${msSnapshot.toFixed(3)} ms |`);
console.log(`| frame 80x24 (snapshot + Ink rerender) | ${f80.ms.toFixed(2)} ms, ${f80.bytesPerFrame} bytes; 4 Hz = ${core(f80.ms)} of a core |`);
console.log(`| frame 120x60 | ${f120.ms.toFixed(2)} ms, ${f120.bytesPerFrame} bytes; 4 Hz = ${core(f120.ms)} of a core |`);
console.log('');
console.log(
  `heap after ${EVENTS.toLocaleString('en-US')} events: ${((heapAfter - heapBefore) / 1048576).toFixed(1)} MB above the start${globalThis.gc ? '' : ' (run with --expose-gc for a meaningful figure)'}; ` +
    `errors tracked: ${s.errors.map((e) => `${e.category} "${e.reply}"`).join('; ')}`,
);
