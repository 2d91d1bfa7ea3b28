// bench/fairness: 60% of the recipients on one domain throttled to 10/s, 40%
// spread over 40 other domains. The other domains' throughput next to the
// throttled one, as a ratio of their throughput in a run without it.
//   node bench/fairness/run.mjs [--rows 20000]
// Needs /usr/sbin/smtp-sink (apt-get install postfix; the daemon is not needed).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { numberArg, startSmtpSink } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 20_000);
const HOST = '127.0.0.1';
const bin = path.join(root, 'bin', 'mailq.js');
const template = path.join(root, 'templates', 'newsletter');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-fair-'));

const header = 'email,first_name,last_name,plan,city\n';
const line = (addr, i) => `${addr},First${i},Last${i},pro,City ${i % 100}\n`;
let others = '';
let all = '';
for (let i = 0; i < rows; i++) {
  // 3 rows in 5 on the big domain, interleaved as in a real list.
  if (i % 5 < 3) all += line(`big${i}@big.example.com`, i);
  else {
    const l = line(`user${i}@d${i % 40}.example.org`, i);
    all += l;
    others += l;
  }
}
const othersCount = others.split('\n').length - 1;
fs.writeFileSync(path.join(tmp, 'others.csv'), header + others);
fs.writeFileSync(path.join(tmp, 'all.csv'), header + all);

const { port, stop: stopSink } = await startSmtpSink();

const common = ['--transport', `smtp://${HOST}:${port}`, '--yes', '--no-tui', '--domain-rate', 'big.example.com=10/s'];

/** Seconds from the first attempt to the last other-domain message sent, and how many were sent. */
function othersTiming(db) {
  const conn = new Database(db, { readonly: true });
  try {
    const start = conn.prepare('SELECT min(started_at) AS t FROM attempts').get().t;
    const r = conn.prepare(`SELECT max(sent_at) AS t, count(*) AS n FROM messages WHERE state = 'sent' AND domain <> 'big.example.com'`).get();
    return { seconds: (r.t - start) / 1000, sent: r.n };
  } finally {
    conn.close();
  }
}

async function run(name, csvName, stopWhenOthersDone) {
  const db = path.join(tmp, `${name}.db`);
  const imp = spawnSync(process.execPath, [bin, '--db', db, 'import', path.join(tmp, csvName), '--campaign', 'f', '--template', template], { encoding: 'utf8' });
  if (imp.status !== 0) throw new Error(imp.stderr);
  const child = spawn(process.execPath, [bin, '--db', db, 'send', '--campaign', 'f', ...common], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  if (stopWhenOthersDone) {
    // The throttled domain would take minutes more; stop once the others are through.
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      if (fs.existsSync(db) && othersTiming(db).sent >= othersCount) break;
      if (child.exitCode !== null) throw new Error(`send exited early: ${stderr}`);
    }
    child.kill('SIGINT');
  }
  const code = await exited;
  if (!stopWhenOthersDone && code !== 0) throw new Error(`send exited ${code}: ${stderr}`);
  const t = othersTiming(db);
  if (t.sent !== othersCount) throw new Error(`${name}: ${t.sent} of ${othersCount} other-domain messages sent`);
  return t.seconds;
}

try {
  const alone = await run('alone', 'others.csv', false);
  const mixed = await run('mixed', 'all.csv', true);
  const ratio = alone / mixed;
  console.log(`bench/fairness: ${rows} recipients, ${rows - othersCount} on big.example.com limited to 10/s, ${othersCount} over 40 other domains; ${os.cpus().length} cores, node ${process.version}`);
  console.log('| run | other domains done in s | their msg/s |');
  console.log('| --- | ---: | ---: |');
  console.log(`| other domains alone | ${alone.toFixed(2)} | ${Math.round(othersCount / alone)} |`);
  console.log(`| next to the throttled domain | ${mixed.toFixed(2)} | ${Math.round(othersCount / mixed)} |`);
  console.log(`fairness: other domains' throughput ratio ${(ratio * 100).toFixed(1)}% (target >= 90%)`);
} finally {
  stopSink();
  fs.rmSync(tmp, { recursive: true, force: true });
}
