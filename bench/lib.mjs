// Shared helpers for the benchmarks: run a command under /usr/bin/time to get
// wall time, CPU time and peak RSS of the whole process (all threads).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

/** The number after `name` on the command line (`--rows 20000`), or `fallback`. */
export function numberArg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

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
  if (r.status !== 0 && !(options.okStatus ?? []).includes(r.status)) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
  }
  const [, user, sys, maxKb] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  fs.rmSync(timeFile, { force: true });
  return { wallMs, userMs: user * 1000, sysMs: sys * 1000, cpuMs: (user + sys) * 1000, peakRssMb: maxKb / 1024, stdout: r.stdout };
}

/**
 * Writes a recipients CSV of `rows` rows over `domains` domains
 * (`user<i>@d<i % domains>.example.com`, 5 columns), in 1 MiB writes.
 */
export function writeRecipientsCsv(file, rows, domains) {
  const fd = fs.openSync(file, 'w');
  const plans = ['free', 'pro', 'team'];
  let buf = 'email,first_name,last_name,plan,city\n';
  for (let i = 0; i < rows; i++) {
    buf += `user${i}@d${i % domains}.example.com,First${i},Last${i},${plans[i % 3]},City ${i % 1000}\n`;
    if (buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  }
  fs.writeSync(fd, buf);
  fs.closeSync(fd);
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Starts Postfix's smtp-sink on a free 127.0.0.1 port and waits until it
 * accepts connections; it is stopped when this process exits.
 */
export async function startSmtpSink() {
  const SINK = '/usr/sbin/smtp-sink';
  if (!fs.existsSync(SINK)) throw new Error(`${SINK} missing: apt-get install postfix`);
  const host = '127.0.0.1';
  const port = await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
  const sink = spawn(SINK, ['-u', 'nobody', '-m', '1000', `${host}:${port}`, '1000'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = () => {
    if (sink.exitCode === null) sink.kill('SIGTERM');
  };
  process.on('exit', stop);
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, host, () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return { host, port, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  stop();
  throw new Error(`smtp-sink not listening on ${host}:${port}`);
}
