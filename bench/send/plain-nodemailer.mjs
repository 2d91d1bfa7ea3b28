// bench/send baseline: the plain loop a careful engineer would write without
// mailq. Reads the CSV, renders templates/newsletter with liquidjs (parsed
// once, partials/layouts cached), sends through a pooled nodemailer transport
// with 10 connections and up to 10 messages in flight, one RCPT per message.
// No database, no retries, no throttling, no bookkeeping.
//   node bench/send/plain-nodemailer.mjs <csv> <template-dir> <host> <port> [--size] [--nodelay]
// --size: print the byte size of the first rendered message and exit.
// --nodelay: hand nodemailer sockets with TCP_NODELAY set (Nagle off), as
//   mailq's own pool does; nodemailer leaves Nagle on by default.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { Liquid } from 'liquidjs';
import nodemailer from 'nodemailer';

const [csvPath, dir, host, port] = process.argv.slice(2);
const sizeOnly = process.argv.includes('--size');
const noDelay = process.argv.includes('--nodelay');
const rows = parse(fs.readFileSync(csvPath), { columns: true, skip_empty_lines: true });
const meta = JSON.parse(fs.readFileSync(path.join(dir, 'template.json'), 'utf8'));
const opts = () => ({
  root: [dir],
  partials: [path.join(dir, 'partials')],
  layouts: [path.join(dir, 'layouts')],
  extname: '.liquid',
  cache: true,
});
const plain = new Liquid(opts());
const html = new Liquid({ ...opts(), outputEscape: 'escape' });
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
const tSubject = plain.parse(read('subject.liquid'));
const tText = plain.parse(read('text.liquid'));
const tHtml = html.parse(read('html.liquid'));
const tHeaders = Object.entries(meta.headers ?? {}).map(([k, v]) => [k, plain.parse(v)]);

async function build(row) {
  const headers = {};
  for (const [k, t] of tHeaders) headers[k] = await plain.render(t, row);
  return {
    from: meta.from,
    replyTo: meta.replyTo,
    to: row.email,
    subject: (await plain.render(tSubject, row)).trim(),
    text: await plain.render(tText, row),
    html: await html.render(tHtml, row),
    headers,
  };
}

if (sizeOnly) {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await t.sendMail(await build(rows[0]));
  console.log(info.message.length);
  process.exit(0);
}

const transport = nodemailer.createTransport({
  pool: true,
  host,
  port: Number(port),
  secure: false,
  ignoreTLS: true,
  maxConnections: 10,
  maxMessages: Infinity,
  ...(noDelay && {
    getSocket(options, callback) {
      const socket = net.connect({ host: options.host, port: options.port, noDelay: true }, () => callback(null, { connection: socket }));
      socket.once('error', callback);
    },
  }),
});
let next = 0;
let sent = 0;
let failed = 0;
async function worker() {
  while (next < rows.length) {
    const row = rows[next++];
    try {
      await transport.sendMail(await build(row));
      sent++;
    } catch (err) {
      failed++;
      if (failed <= 3) console.error(String(err));
    }
  }
}
await Promise.all(Array.from({ length: 10 }, worker));
transport.close();
console.log(JSON.stringify({ sent, failed }));
if (failed > 0) process.exitCode = 1;
