// bench/import/ab.mjs: `mailq import` of the bench file from two or more built
// checkouts, alternated round by round with csv-parse alone, so that the VM's
// drift (±15% between rounds) falls on all of them alike.
//   node bench/import/ab.mjs [--runs 8] <checkout> <checkout>...
// A checkout is a directory with bin/ and a built dist/ (a `git worktree` after
// `npm ci`, or a copy of bin/, dist/ and package.json beside a node_modules link).
// Run bench/import/run.mjs once first: it writes bench/out/import-1000000.csv.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, median } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const at = args.indexOf('--runs');
const runs = at >= 0 ? Number(args.splice(at, 2)[1]) : 8;
const trees = args.map((t) => path.resolve(t));
if (trees.length < 2) throw new Error('usage: node bench/import/ab.mjs [--runs N] <checkout> <checkout>...');
const csv = path.join(root, 'bench', 'out', 'import-1000000.csv');
if (!fs.existsSync(csv)) throw new Error(`${csv} missing: run node bench/import/run.mjs first`);
const rows = 1_000_000;

const csvParse = [];
const byTree = new Map(trees.map((t) => [t, []]));
const s = (ms) => (ms / 1000).toFixed(2);
for (let r = 0; r < runs; r++) {
  csvParse.push(measure(process.execPath, [path.join(root, 'bench', 'import', 'csv-parse-alone.mjs'), csv]));
  // Alternate the order too: the second of two runs back to back is not the first's equal.
  const order = r % 2 === 0 ? trees : [...trees].reverse();
  for (const tree of order) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-ab-'));
    const m = measure(process.execPath, [path.join(tree, 'bin', 'mailq.js'), '--db', path.join(dir, 'ab.db'), 'import', csv, '--campaign', 'ab', '--template', path.join(root, 'templates', 'newsletter'), '--json']);
    fs.rmSync(dir, { recursive: true, force: true });
    if (JSON.parse(m.stdout).imported !== rows) throw new Error(`${tree}: did not import ${rows} rows`);
    byTree.get(tree).push(m);
  }
  const base = csvParse[r].wallMs;
  console.log(`round ${r + 1}: csv-parse ${s(base)} s | ` + trees.map((t) => {
    const m = byTree.get(t)[r];
    return `${path.basename(t)} ${s(m.wallMs)} s (${(m.wallMs / base).toFixed(2)}x, CPU ${s(m.cpuMs)} s, ${Math.round(m.peakRssMb)} MB)`;
  }).join(' | '));
}
const first = byTree.get(trees[0]);
console.log(`median of ${runs}: csv-parse ${s(median(csvParse.map((x) => x.wallMs)))} s`);
for (const t of trees) {
  const list = byTree.get(t);
  const wins = t === trees[0] ? '' : `, faster than ${path.basename(trees[0])} in ${list.filter((m, i) => m.wallMs < first[i].wallMs).length} of ${runs} rounds`;
  console.log(`  ${path.basename(t)}: ${s(median(list.map((x) => x.wallMs)))} s, CPU ${s(median(list.map((x) => x.cpuMs)))} s${wins}`);
}
