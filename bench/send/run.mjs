// bench/send: `mailq send` of N recipients (templates/newsletter, personalized
// HTML+text) to Postfix smtp-sink on loopback, beside a plain pooled
// nodemailer loop (same rendering, same sink) and smtp-source (the SMTP
// ceiling), in the same run. Reports msg/s, CPU ms per message, peak RSS.
//   node bench/send/run.mjs [--rows 20000]
// Needs /usr/sbin/smtp-sink and /usr/sbin/smtp-source (apt-get install postfix;
// the postfix daemon is not needed). Loopback only.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, numberArg, startSmtpSink } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 20_000);
const HOST = '127.0.0.1';
const SOURCE = '/usr/sbin/smtp-source';
for (const f of [SOURCE]) if (!fs.existsSync(f)) throw new Error(`${f} missing: apt-get install postfix`);

const bin = path.join(root, 'bin', 'mailq.js');
const template = path.join(root, 'templates', 'newsletter');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-send-'));
const csv = path.join(tmp, `send-${rows}.csv`);
{
  // 50 domains: mailq's default of 100 msg/s per unknown domain caps at 5,000/s.
  const plans = ['free', 'pro', 'team'];
  let buf = 'email,first_name,last_name,plan,city\n';
  for (let i = 0; i < rows; i++) {
    buf += `user${i}@d${i % 50}.example.com,First${i},Last${i},${plans[i % 3]},City ${i % 1000}\n`;
  }
  fs.writeFileSync(csv, buf);
}

const { port, stop: stopSink } = await startSmtpSink();

const results = [];
try {
  const plainScript = path.join(root, 'bench', 'send', 'plain-nodemailer.mjs');
  // Size of one rendered message (headers + multipart text/html), for smtp-source -l.
  const msgBytes = Number(spawnSync(process.execPath, [plainScript, csv, template, HOST, String(port), '--size'], { encoding: 'utf8' }).stdout.trim());
  if (!(msgBytes > 0)) throw new Error('could not size the rendered message');

  // a. ceiling: smtp-source, 10 sessions, same message size (one connection per message).
  const src = measure(SOURCE, ['-l', String(msgBytes), '-m', String(rows), '-s', '10', '-f', 'from@acme.test', '-t', 'to@example.com', `${HOST}:${port}`], { tmp });
  results.push({ name: 'smtp-source (ceiling)', ...src });

  // b. plain pooled nodemailer loop.
  const plain = measure(process.execPath, [plainScript, csv, template, HOST, String(port)], { tmp });
  const p = JSON.parse(plain.stdout.trim().split('\n').pop());
  if (p.sent !== rows) throw new Error(`plain loop sent ${p.sent}, expected ${rows}`);
  results.push({ name: 'plain nodemailer pool', ...plain });

  // b2. the same loop with TCP_NODELAY on its sockets (mailq sets it; nodemailer does not).
  const plainNd = measure(process.execPath, [plainScript, csv, template, HOST, String(port), '--nodelay'], { tmp });
  const pn = JSON.parse(plainNd.stdout.trim().split('\n').pop());
  if (pn.sent !== rows) throw new Error(`plain --nodelay loop sent ${pn.sent}, expected ${rows}`);
  results.push({ name: 'plain nodemailer pool + TCP_NODELAY', ...plainNd });

  // c. mailq: import (not timed), then send on a fresh durable DB; with the
  // default compose threads (one per core), then all on the main thread.
  let statusJson = '';
  for (const [name, extra] of [['mailq send', []], ['mailq send --threads 0', ['--threads', '0']]]) {
    const db = path.join(tmp, `bench-${results.length}.db`);
    const imp = spawnSync(process.execPath, [bin, '--db', db, 'import', csv, '--campaign', 'bench', '--template', template, '--json'], { encoding: 'utf8' });
    if (imp.status !== 0) throw new Error(`mailq import exited ${imp.status}\n${imp.stderr}`);
    const m = measure(process.execPath, [bin, '--db', db, 'send', '--campaign', 'bench', '--transport', `smtp://${HOST}:${port}`, '--yes', '--concurrency', '10', '--no-tui', ...extra], { tmp });
    const st = spawnSync(process.execPath, [bin, '--db', db, 'status', '--campaign', 'bench', '--json'], { encoding: 'utf8' });
    statusJson = st.stdout.trim();
    if (JSON.parse(statusJson).sent !== rows) throw new Error(`${name}: ${statusJson}`);
    results.push({ name, ...m, status: statusJson });
  }

  const load = os.loadavg().map((x) => x.toFixed(2)).join(', ');
  console.log(`bench/send: ${rows} recipients, ${msgBytes} B/message (templates/newsletter), smtp-sink on loopback, 10 connections, ${os.cpus().length} cores, node ${process.version}, load avg after run ${load}`);
  console.log('| what | wall s | msg/s | CPU ms/msg | peak RSS MB |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    r.rate = rows / (r.wallMs / 1000);
    console.log(`| ${r.name} | ${(r.wallMs / 1000).toFixed(2)} | ${Math.round(r.rate)} | ${(r.cpuMs / rows).toFixed(3)} | ${Math.round(r.peakRssMb)} |`);
  }
  const [ceil, pl, pn2, mq, mq0] = results;
  const r2 = (a, b) => (a / b).toFixed(2);
  console.log(`ratios msg/s: mailq/plain ${r2(mq.rate, pl.rate)}, mailq/plain+nodelay ${r2(mq.rate, pn2.rate)}, mailq/ceiling ${r2(mq.rate, ceil.rate)}, plain+nodelay/ceiling ${r2(pn2.rate, ceil.rate)}`);
  console.log(`ratios CPU/msg: mailq/plain ${r2(mq.cpuMs, pl.cpuMs)}, mailq/plain+nodelay ${r2(mq.cpuMs, pn2.cpuMs)}`);
  console.log(`compose threads: msg/s with/without ${r2(mq.rate, mq0.rate)}`);
  console.log(`mailq status: ${statusJson}`);
} finally {
  stopSink();
  fs.rmSync(tmp, { recursive: true, force: true });
}
