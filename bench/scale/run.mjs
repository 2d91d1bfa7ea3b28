// bench/scale: N recipients (default 1,000,000) imported, then sent to Postfix
// smtp-sink on loopback: peak RSS of the import and of the send, and msg/s
// over time from the send's NDJSON progress events (every 5 s), to show the
// rate does not fall as the table fills or drains.
//   node bench/scale/run.mjs [--rows 1000000]
// Needs /usr/sbin/smtp-sink (apt-get install postfix; the daemon is not needed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, numberArg, startSmtpSink, writeRecipientsCsv } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 1_000_000);
const HOST = '127.0.0.1';

const bin = path.join(root, 'bin', 'mailq.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-scale-'));
const csv = path.join(tmp, 'scale.csv');
// 500 domains: the default 100 msg/s per unknown domain is far above what one host achieves.
writeRecipientsCsv(csv, rows, 500);

const { port, stop: stopSink } = await startSmtpSink();

try {
  const db = path.join(tmp, 'scale.db');
  const imp = measure(process.execPath, [bin, '--db', db, 'import', csv, '--campaign', 'scale', '--template', path.join(root, 'templates', 'newsletter'), '--json'], { tmp });
  const send = measure(process.execPath, [bin, '--db', db, 'send', '--campaign', 'scale', '--transport', `smtp://${HOST}:${port}`, '--yes', '--json', '--no-tui'], { tmp });
  const events = send.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const finished = events.find((e) => e.type === 'run-finished');
  if (finished?.counts.sent !== rows) throw new Error(`sent ${finished?.counts.sent}, expected ${rows}`);
  const points = events.filter((e) => e.type === 'progress' || e.type === 'run-started' || e.type === 'run-finished').map((e) => ({ at: Date.parse(e.at), sent: e.counts.sent }));
  // The rate while the first and the last 10% of the recipients went out.
  const timeAt = (count) => {
    for (let i = 1; i < points.length; i++) {
      const [a, b] = [points[i - 1], points[i]];
      if (b.sent >= count) return a.at + ((count - a.sent) / Math.max(1, b.sent - a.sent)) * (b.at - a.at);
    }
    return points[points.length - 1].at;
  };
  const tenth = rows / 10;
  const first = tenth / ((timeAt(tenth) - timeAt(0)) / 1000);
  const last = tenth / ((timeAt(rows) - timeAt(rows - tenth)) / 1000);
  console.log(`bench/scale: ${rows} recipients, ${os.cpus().length} cores, node ${process.version}`);
  console.log('| phase | wall s | rate | peak RSS MB |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| import | ${(imp.wallMs / 1000).toFixed(1)} | ${Math.round(rows / (imp.wallMs / 1000))} rows/s | ${Math.round(imp.peakRssMb)} |`);
  console.log(`| send | ${(send.wallMs / 1000).toFixed(1)} | ${Math.round(rows / (send.wallMs / 1000))} msg/s | ${Math.round(send.peakRssMb)} |`);
  console.log(`send rate, first 10% of recipients: ${first.toFixed(0)} msg/s; last 10%: ${last.toFixed(0)} msg/s (last/first ${(last / first).toFixed(2)}; target >= 1.00)`);
  console.log(`send CPU: ${(send.cpuMs / rows).toFixed(3)} ms per message`);
  // msg/s per decile, to see the shape.
  const deciles = [];
  for (let d = 0; d < 10; d++) deciles.push(Math.round(tenth / ((timeAt((d + 1) * tenth) - timeAt(d * tenth)) / 1000)));
  console.log(`msg/s by decile: ${deciles.join(', ')}`);
} finally {
  stopSink();
  fs.rmSync(tmp, { recursive: true, force: true });
}
