// bench/postgres/send.mjs: `mailq send` of N recipients (the campaign of
// bench/send/run.mjs: templates/newsletter, 50 domains) to Postfix smtp-sink on
// loopback, with the job database
//   a. in SQLite, 1 process;
//   b. in PostgreSQL, 1 process;
//   c. in PostgreSQL, 3 processes on the same campaign at once;
// then micro-benchmarks of the store calls that several processes contend on:
// leases per second (lease alone, and lease + outcome: one message's commits),
// with 1 and 8 callers in flight, and shared-bucket grants per second on one key.
//
//   npm run build && node bench/postgres/send.mjs [--rows 20000] [--micro-rows 5000] [--skip-send]
//
// Needs /usr/sbin/smtp-sink (apt-get install postfix; the daemon is not needed)
// and PostgreSQL at MAILQ_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test,
// a superuser, to read the server's CPU time); each case uses a schema of its
// own, dropped afterwards. Loopback only.
//
// Reported per send case: wall time, msg/s, the client processes' CPU per
// message (user+sys of every `mailq send`, from /usr/bin/time) and the
// PostgreSQL server's CPU per message (the postmaster and its children, from
// /proc: backends that exited are in the postmaster's cutime/cstime).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { numberArg, startSmtpSink } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 20_000);
const microRows = numberArg('--micro-rows', 5_000);
const skipSend = process.argv.includes('--skip-send');
const base = process.env.MAILQ_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const HOST = '127.0.0.1';
const bin = path.join(root, 'bin', 'mailq.js');
const template = path.join(root, 'templates', 'newsletter');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-pg-send-'));
const schemas = [];
const TICKS = 100; // USER_HZ on Linux

async function sql(text, values = []) {
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

function newSchema() {
  const s = `mailq_bench_${randomBytes(5).toString('hex')}`;
  schemas.push(s);
  return s;
}
const pgUrl = (schema) => `${base}?schema=${schema}`;

/** CPU ticks of the PostgreSQL server: the postmaster (itself and its reaped children) plus its live children. */
let postmasterPid;
function serverTicks() {
  if (postmasterPid === undefined) return 0;
  const stat = (pid) => {
    try {
      const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // fields after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17) → indices 11..14 here
      return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
    } catch {
      return undefined;
    }
  };
  const pm = stat(postmasterPid);
  if (pm === undefined) return 0;
  let ticks = pm.own + pm.children;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(d);
    if (s !== undefined && s.ppid === postmasterPid) ticks += s.own;
  }
  return ticks;
}

function writeCsv(n) {
  const csv = path.join(tmp, `send-${n}.csv`);
  // As bench/send: 50 domains, so the default 100 msg/s per unknown domain caps at 5,000/s.
  const plans = ['free', 'pro', 'team'];
  let buf = 'email,first_name,last_name,plan,city\n';
  for (let i = 0; i < n; i++) buf += `user${i}@d${i % 50}.example.com,First${i},Last${i},${plans[i % 3]},City ${i % 1000}\n`;
  fs.writeFileSync(csv, buf);
  return csv;
}

/** Runs a command under /usr/bin/time without blocking: resolves with its user+sys CPU ms. */
function timed(cmd, args) {
  const timeFile = path.join(tmp, `time-${randomBytes(4).toString('hex')}.txt`);
  const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%e %U %S %M', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${stderr}`));
      const [, user, sys, maxKb] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      resolve({ cpuMs: (user + sys) * 1000, peakRssMb: maxKb / 1024 });
    });
  });
}

function importInto(db, csv) {
  const r = spawnSync(process.execPath, [bin, '--db', db, 'import', csv, '--campaign', 'bench', '--template', template, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mailq import exited ${r.status}\n${r.stderr}`);
}

function sentOf(db) {
  const st = spawnSync(process.execPath, [bin, '--db', db, 'status', '--campaign', 'bench', '--json'], { encoding: 'utf8' });
  return JSON.parse(st.stdout);
}

async function sendCase(name, db, processes, port) {
  const before = serverTicks();
  const started = process.hrtime.bigint();
  const args = [bin, '--db', db, 'send', '--campaign', 'bench', '--transport', `smtp://${HOST}:${port}`, '--yes', '--concurrency', '10', '--no-tui'];
  const runs = await Promise.all(Array.from({ length: processes }, () => timed(process.execPath, args)));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const serverMs = ((serverTicks() - before) * 1000) / TICKS;
  const status = sentOf(db);
  if (status.sent !== rows || status.possible_duplicates !== 0) throw new Error(`${name}: ${JSON.stringify(status)}`);
  const perRun = status.hosts.filter((h) => h.state === 'finished').map((h) => h.sent);
  return {
    name,
    wallMs,
    cpuMs: runs.reduce((a, r) => a + r.cpuMs, 0),
    serverMs: db.startsWith('postgres') ? serverMs : undefined,
    peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
    split: perRun.join(' + '),
  };
}

// ---- micro-benchmarks through the built store (dist/), as the engine calls it

async function seededStore(location, n) {
  const { openStore } = await import(path.join(root, 'dist', 'store', 'open-store.js'));
  const store = openStore(location);
  const c = await store.createCampaign({ name: 'micro', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
  const run = await store.beginImport(c.id, '/micro.csv', ['email']);
  for (let i = 0; i < n; i += 5000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 5000); j++) {
      const a = `u${j}@d${j % 50}.example.com`;
      batch.push({ line: j + 2, address: a, addressKey: a, domain: `d${j % 50}.example.com`, varsJson: '[]' });
    }
    await store.insertBatch(run, batch, []);
  }
  await store.finishImport(run.id, { rejected: 0, total: n });
  await store.prepareForSending();
  return { store, campaignId: c.id };
}

/** `callers` loops in flight, each leasing (and, with outcomes, committing) due messages of its own domains. */
async function leaseBench(location, callers, withOutcome) {
  const { store, campaignId } = await seededStore(location, microRows);
  const owner = `bench:${process.pid}`;
  let done = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async (_, w) => {
      for (let d = w; d < 50; d += callers) {
        for (;;) {
          const ids = await store.dueIds(campaignId, `d${d}.example.com`, Date.now(), 100);
          if (ids.length === 0) break;
          for (const id of ids) {
            const attemptId = randomUUID();
            const m = await store.lease(id, owner, attemptId, Date.now(), 600_000);
            if (m === undefined) continue;
            done++;
            if (withOutcome) {
              const now = Date.now();
              await store.recordOutcome({
                messageId: id, attemptId, runOwner: owner, startedAt: now, finishedAt: now, stage: 'body', code: 250, enhanced: '2.0.0',
                category: 'sent', rule: 'bench', reply: '250 2.0.0 Ok', bodyWritten: true, flagPossibleDuplicate: false,
                next: { state: 'sent', smtpMessageId: `<${id}@bench>` },
              });
            }
          }
        }
      }
    }),
  );
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  await store.close();
  if (done !== microRows) throw new Error(`leased ${done} of ${microRows}`);
  return done / s;
}

/** Grants of one token at a time on ONE key (the hottest row a send has), `callers` in flight, for 3 s. */
async function grantBench(location, callers) {
  const { store, campaignId } = await seededStore(location, 1);
  const limit = { perSecond: 1e9, burst: 1e9 };
  let n = 0;
  const until = Date.now() + 3000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (Date.now() < until) {
        await store.takeTokens(campaignId, 'gmail', 1, limit, Date.now());
        n++;
      }
    }),
  );
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  await store.close();
  return n / s;
}

let sink;
try {
  const version = (await sql('SHOW server_version'))[0].server_version;
  const dataDir = (await sql('SHOW data_directory'))[0].data_directory;
  try {
    postmasterPid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    console.log('(postmaster.pid not readable: server CPU not measured)');
  }
  const results = [];
  if (!skipSend) {
    const csv = writeCsv(rows);
    sink = await startSmtpSink();
    const port = sink.port;

    const sqliteDb = path.join(tmp, 'bench.db');
    importInto(sqliteDb, csv);
    results.push(await sendCase('SQLite, 1 process', sqliteDb, 1, port));

    const pg1 = pgUrl(newSchema());
    importInto(pg1, csv);
    results.push(await sendCase('PostgreSQL, 1 process', pg1, 1, port));

    const pg3 = pgUrl(newSchema());
    importInto(pg3, csv);
    results.push(await sendCase('PostgreSQL, 3 processes', pg3, 3, port));

    const load = os.loadavg().map((x) => x.toFixed(2)).join(', ');
    console.log(`bench/postgres/send: ${rows} recipients (templates/newsletter, 50 domains), smtp-sink on loopback, --concurrency 10 per process, PostgreSQL ${version}, ${os.cpus().length} cores, node ${process.version}, load avg after ${load}`);
    console.log('| what | wall s | msg/s | client CPU ms/msg | server CPU ms/msg | peak RSS MB | sent per process |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const r of results) {
      const server = r.serverMs === undefined ? '—' : (r.serverMs / rows).toFixed(3);
      console.log(`| ${r.name} | ${(r.wallMs / 1000).toFixed(2)} | ${Math.round(rows / (r.wallMs / 1000))} | ${(r.cpuMs / rows).toFixed(3)} | ${server} | ${Math.round(r.peakRssMb)} | ${r.split} |`);
    }
  }

  const sqliteLoc = () => path.join(tmp, `micro-${randomBytes(4).toString('hex')}.db`);
  const pgLoc = () => pgUrl(newSchema());
  console.log(`\nstore micro-benchmarks (${microRows} messages, through dist/store as the engine calls it; one process):`);
  console.log('| call | SQLite, 1 in flight | PostgreSQL, 1 in flight | PostgreSQL, 8 in flight |');
  console.log('| --- | ---: | ---: | ---: |');
  const row = async (label, f) => {
    const a = await f(sqliteLoc(), 1);
    const b = await f(pgLoc(), 1);
    const c = await f(pgLoc(), 8);
    console.log(`| ${label} | ${Math.round(a)} | ${Math.round(b)} | ${Math.round(c)} |`);
  };
  await row('lease (per s)', (loc, n) => leaseBench(loc, n, false));
  await row('lease + outcome `sent` (messages per s)', (loc, n) => leaseBench(loc, n, true));
  await row('takeTokens on one key (grants per s)', (loc, n) => grantBench(loc, n));
} finally {
  sink?.stop();
  for (const s of schemas) await sql(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
}
