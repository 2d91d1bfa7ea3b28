// bench/import: 1,000,000-row, 5-column CSV; `mailq import` beside csv-parse
// alone on the same file, in the same run, alternating, median of N runs.
//   node bench/import/run.mjs [--rows 1000000] [--runs 3]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, median, numberArg } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = numberArg('--rows', 1_000_000);
const runs = numberArg('--runs', 3);
const outDir = path.join(root, 'bench', 'out');
fs.mkdirSync(outDir, { recursive: true });
const csv = path.join(outDir, `import-${rows}.csv`);

if (!fs.existsSync(csv)) {
  // Deterministic content: 500 domains, realistic-looking names, ~67 bytes a row.
  const fd = fs.openSync(csv, 'w');
  const plans = ['free', 'pro', 'team'];
  let buf = 'email,first_name,last_name,plan,city\n';
  for (let i = 0; i < rows; i++) {
    buf += `user${i}@domain${i % 500}.example.com,First${i},Last${i},${plans[i % 3]},City ${i % 1000}\n`;
    if (buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  }
  fs.writeSync(fd, buf);
  fs.closeSync(fd);
}

const size = fs.statSync(csv).size;
const bin = path.join(root, 'bin', 'mailq.js');
const results = { csvParse: [], mailq: [] };
for (let r = 0; r < runs; r++) {
  results.csvParse.push(measure(process.execPath, [path.join(root, 'bench', 'import', 'csv-parse-alone.mjs'), csv]));
  const db = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-bench-')), 'bench.db');
  const m = measure(process.execPath, [bin, '--db', db, 'import', csv, '--campaign', 'bench', '--template', path.join(root, 'templates', 'newsletter'), '--json']);
  const summary = JSON.parse(m.stdout);
  if (summary.imported !== rows) throw new Error(`imported ${summary.imported}, expected ${rows}`);
  results.mailq.push(m);
  fs.rmSync(path.dirname(db), { recursive: true, force: true });
}

const row = (name, list) => {
  const wall = median(list.map((x) => x.wallMs));
  return {
    name,
    wallS: (wall / 1000).toFixed(2),
    rowsPerS: Math.round(rows / (wall / 1000)),
    cpuS: (median(list.map((x) => x.cpuMs)) / 1000).toFixed(2),
    peakRssMb: Math.round(Math.max(...list.map((x) => x.peakRssMb))),
  };
};
const a = row('csv-parse alone', results.csvParse);
const b = row('mailq import', results.mailq);
console.log(`bench/import: ${rows} rows, ${(size / 1e6).toFixed(1)} MB, median of ${runs} runs, ${os.cpus().length} cores, node ${process.version}`);
console.log('| what | wall s | rows/s | CPU s | peak RSS MB |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const x of [a, b]) console.log(`| ${x.name} | ${x.wallS} | ${x.rowsPerS} | ${x.cpuS} | ${x.peakRssMb} |`);
console.log(`ratio mailq/csv-parse (wall): ${(Number(b.wallS) / Number(a.wallS)).toFixed(2)} (target <= 1.5); peak RSS target <= 200 MB`);
