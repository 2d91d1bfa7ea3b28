// bench/scale/early-late.mjs: is the last 10% of a 1,000,000-recipient send
// slower than the first 10%, with the VM's drift taken out?
//
// bench/scale/run.mjs compares the first and last tenth of one 15-20 minute
// send; on this VM the CPU's speed drifts by up to ±30% in that time, more
// than any effect of the table. Here both tenths are sent again and again,
// alternately, minutes apart, from saved databases:
//   early: a fresh import of N rows; send --limit N/10 (the first tenth);
//   late:  the same import after `send --limit 9N/10` (made once, the organic
//          way, by mailq itself); send the last tenth.
// Each round copies the saved database, so every early run starts from the
// same file, and every late run too.
//   node bench/scale/early-late.mjs [--rows 1000000] [--rounds 3]
// Needs /usr/sbin/smtp-sink (apt-get install postfix; the daemon is not needed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, median, numberArg, startSmtpSink, writeRecipientsCsv } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 1_000_000);
const rounds = numberArg('--rounds', 3);
const tenth = Math.floor(rows / 10);
const HOST = '127.0.0.1';
/** `send` exits 4 when it stops at --limit (README, Exit codes). */
const STOPPED = 4;

const bin = path.join(root, 'bin', 'mailq.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-early-late-'));
const csv = path.join(tmp, 'scale.csv');
writeRecipientsCsv(csv, rows, 500);

/** Copies a database with its -wal and -shm, replacing whatever was at `to`. */
function copyDb(from, to) {
  for (const suffix of ['', '-wal', '-shm']) {
    fs.rmSync(to + suffix, { force: true });
    if (fs.existsSync(from + suffix)) fs.copyFileSync(from + suffix, to + suffix);
  }
}

const { port, stop: stopSink } = await startSmtpSink();
const sendArgs = (db, limit) => [bin, '--db', db, 'send', '--campaign', 'scale', '--transport', `smtp://${HOST}:${port}`, '--yes', '--json', '--no-tui', ...(limit === undefined ? [] : ['--limit', String(limit)])];

/** msg/s from the run's first to its last event with counts, and CPU ms a message. */
function sendTenth(db, limit, expectSent) {
  const r = measure(process.execPath, sendArgs(db, limit), { tmp, okStatus: [STOPPED] });
  const points = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.counts !== undefined)
    .map((e) => ({ at: Date.parse(e.at), sent: e.counts.sent }));
  const [a, b] = [points[0], points[points.length - 1]];
  if (b.sent !== expectSent) throw new Error(`sent ${b.sent}, expected ${expectSent}`);
  return { rate: (b.sent - a.sent) / ((b.at - a.at) / 1000), cpuMsPerMsg: (r.userMs + r.sysMs) / (b.sent - a.sent), rssMb: r.peakRssMb };
}

try {
  const early = path.join(tmp, 'early.db');
  const late = path.join(tmp, 'late.db');
  const run = path.join(tmp, 'run.db');
  measure(process.execPath, [bin, '--db', early, 'import', csv, '--campaign', 'scale', '--template', path.join(root, 'templates', 'newsletter'), '--json'], { tmp });
  // The first send builds the leasing index; a send of one message does it for the early copy.
  measure(process.execPath, sendArgs(early, 1), { tmp, okStatus: [STOPPED] });
  copyDb(early, late);
  const made = Date.now();
  measure(process.execPath, sendArgs(late, rows - tenth - 1), { tmp, okStatus: [STOPPED] });
  console.log(`bench/scale/early-late: ${rows} recipients, ${os.cpus().length} cores, node ${process.version}; the late database took ${((Date.now() - made) / 1000).toFixed(0)} s to make`);
  console.log('| round | first tenth msg/s | last tenth msg/s | last/first | CPU ms/msg first | CPU ms/msg last |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const ratios = [];
  for (let i = 1; i <= rounds; i++) {
    copyDb(early, run);
    const e = sendTenth(run, tenth, tenth + 1);
    copyDb(late, run);
    const l = sendTenth(run, undefined, rows);
    ratios.push(l.rate / e.rate);
    console.log(`| ${i} | ${e.rate.toFixed(0)} | ${l.rate.toFixed(0)} | ${(l.rate / e.rate).toFixed(2)} | ${e.cpuMsPerMsg.toFixed(3)} | ${l.cpuMsPerMsg.toFixed(3)} |`);
  }
  console.log(`median last/first: ${median(ratios).toFixed(2)} (target >= 1.00)`);
} finally {
  stopSink();
  fs.rmSync(tmp, { recursive: true, force: true });
}
