// bench/postgres: `mailq import` of the 1,000,000-row CSV into PostgreSQL, and
// a comparison of the store's three ways of writing an import batch.
//   npm run build && node bench/import/run.mjs --runs 1    # creates bench/out/import-1000000.csv once
//   node bench/postgres/import.mjs [--runs 3]              # the CLI import: wall, CPU, peak RSS
//   node bench/postgres/import.mjs --compare [--rows 100000] [--runs 3]
// The database is MAILQ_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test);
// each run uses a schema of its own, dropped afterwards.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { measure, median, numberArg } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const base = process.env.MAILQ_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const runs = numberArg('--runs', 3);

async function dropSchema(schema) {
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

const newSchema = () => `mailq_bench_${randomBytes(5).toString('hex')}`;

async function serverVersion() {
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    return (await c.query('SHOW server_version')).rows[0].server_version;
  } finally {
    await c.end();
  }
}

/** The CLI, as an operator runs it, on the same CSV as bench/import. */
async function cliImport() {
  const rows = 1_000_000;
  const csv = path.join(root, 'bench', 'out', `import-${rows}.csv`);
  if (!fs.existsSync(csv)) throw new Error(`${csv} is missing: run node bench/import/run.mjs --runs 1 first`);
  const results = [];
  for (let r = 0; r < runs; r++) {
    const schema = newSchema();
    try {
      const m = measure(process.execPath, [
        path.join(root, 'bin', 'mailq.js'), '--db', `${base}?schema=${schema}`,
        'import', csv, '--campaign', 'bench', '--template', path.join(root, 'templates', 'newsletter'), '--json',
      ]);
      const summary = JSON.parse(m.stdout);
      if (summary.imported !== rows) throw new Error(`imported ${summary.imported}, expected ${rows}`);
      results.push(m);
    } finally {
      await dropSchema(schema);
    }
  }
  const wall = median(results.map((x) => x.wallMs));
  console.log(`bench/postgres import: ${rows} rows, ${(fs.statSync(csv).size / 1e6).toFixed(1)} MB, median of ${runs} runs, ${os.cpus().length} cores, node ${process.version}, PostgreSQL ${await serverVersion()} on loopback`);
  console.log('| what | wall s | rows/s | CPU s (mailq) | peak RSS MB |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  console.log(`| mailq import → PostgreSQL | ${(wall / 1000).toFixed(2)} | ${Math.round(rows / (wall / 1000))} | ${(median(results.map((x) => x.cpuMs)) / 1000).toFixed(2)} | ${Math.round(Math.max(...results.map((x) => x.peakRssMb)))} |`);
}

/** The store alone: the same rows through each import method, batches of 10,000 as src/campaign/import.ts sends them. */
async function compare() {
  const rows = numberArg('--rows', 100_000);
  const { PgStore } = await import(path.join(root, 'dist', 'store', 'postgres', 'pg-store.js'));
  const { importMethods } = await import(path.join(root, 'dist', 'store', 'postgres', 'import-batch.js'));
  const plans = ['free', 'pro', 'team'];
  const batches = [];
  for (let i = 0; i < rows; i += 10_000) {
    const batch = [];
    for (let j = i; j < Math.min(rows, i + 10_000); j++) {
      const address = `user${j}@domain${j % 500}.example.com`;
      batch.push({
        line: j + 2, address, addressKey: address, domain: `domain${j % 500}.example.com`,
        varsJson: JSON.stringify([null, `First${j}`, `Last${j}`, plans[j % 3], `City ${j % 1000}`]),
      });
    }
    batches.push(batch);
  }
  const times = Object.fromEntries(importMethods.map((m) => [m, []]));
  for (let r = 0; r < runs; r++) {
    for (const method of importMethods) {
      const schema = newSchema();
      const store = new PgStore(`${base}?schema=${schema}`, {}, { importMethod: method });
      try {
        const c = await store.createCampaign({ name: 'bench', templateJson: '{}', templateHash: 'h', templateSource: '/t', vars: {} });
        const run = await store.beginImport(c.id, '/bench.csv', ['email', 'first_name', 'last_name', 'plan', 'city']);
        const started = process.hrtime.bigint();
        for (const b of batches) await store.insertBatch(run, b, []);
        times[method].push(Number(process.hrtime.bigint() - started) / 1e6);
        // A second pass adds nothing: the ON CONFLICT path, as a re-import.
        await store.insertBatch(run, batches[0], []);
        const tally = await store.finishImport(run.id, { rejected: 0, total: rows });
        if (tally.imported !== rows) throw new Error(`${method}: imported ${tally.imported}, expected ${rows}`);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    }
  }
  console.log(`bench/postgres --compare: ${rows} rows in batches of 10,000 through PgStore.insertBatch, median of ${runs} runs, PostgreSQL ${await serverVersion()} on loopback`);
  console.log('| method | wall s | rows/s |');
  console.log('| --- | ---: | ---: |');
  for (const method of importMethods) {
    const ms = median(times[method]);
    console.log(`| ${method} | ${(ms / 1000).toFixed(2)} | ${Math.round(rows / (ms / 1000))} |`);
  }
}

if (process.argv.includes('--compare')) await compare();
else await cliImport();
