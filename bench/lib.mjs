// Shared helpers for the benchmarks: run a command under /usr/bin/time to get
// wall time, CPU time and peak RSS of the whole process (all threads).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export function measure(cmd, args, options = {}) {
  const timeFile = `${options.tmp ?? '/tmp'}/mailq-bench-time-${process.pid}.txt`;
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%e %U %S %M', cmd, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(options.env ?? {}) },
    cwd: options.cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
  }
  const [, user, sys, maxKb] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  fs.rmSync(timeFile, { force: true });
  return { wallMs, cpuMs: (user + sys) * 1000, peakRssMb: maxKb / 1024, stdout: r.stdout };
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
