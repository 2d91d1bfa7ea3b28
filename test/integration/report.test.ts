import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'csv-parse/sync';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type SinkHandle } from '../../src/transport/sink.js';
import { runCli, runCliAsync, tempDir, templateDir } from '../helpers/cli.js';

const HEADER = 'email,first_name,last_name,plan,city\n';
const COLUMNS = ['address', 'state', 'attempts', 'category', 'code', 'reply', 'sent_at', 'message_id', 'possible_duplicate'];
/** A reply from a hostile receiving server: markup, quotes, a comma, over two lines. */
const HOSTILE_TEXT = '5.1.1 <script>alert("owned")</script>, said the server\nsecond line <img src=x onerror=alert(2)>';
/** What the sender records: nodemailer joins the lines of a multi-line reply with a space. */
const HOSTILE_REPLY = `550 ${HOSTILE_TEXT.replace('\n', ' ')}`;

type JsonRow = {
  address: string;
  state: string;
  attempts: number;
  category: string | null;
  code: number | null;
  reply: string | null;
  sent_at: string | null;
  message_id: string | null;
  possible_duplicate: boolean;
};

let sink: SinkHandle;
let hostile: { url: string; close: () => Promise<void> };

/** A real SMTP server on loopback that refuses every recipient with HOSTILE_TEXT. */
async function startHostile(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = new SMTPServer({
    logger: false,
    hideSTARTTLS: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideENHANCEDSTATUSCODES: true,
    disableReverseLookup: true,
    onRcptTo(_address, _session, callback) {
      callback(Object.assign(new Error(HOSTILE_TEXT), { responseCode: 550 }));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as net.AddressInfo).port;
  return { url: `smtp://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

beforeAll(async () => {
  sink = await startSink({ port: 0 });
  hostile = await startHostile();
});
afterAll(async () => {
  await sink.close();
  await hostile.close();
});

function importCsv(db: string, campaign: string, csv: string): void {
  const file = path.join(path.dirname(db), `${campaign}-${Date.now()}-${Math.random().toString(36).slice(2)}.csv`);
  fs.writeFileSync(file, HEADER + csv);
  const r = runCli(['--db', db, 'import', file, '-c', campaign, '-t', templateDir('newsletter')]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

function report(db: string, campaign: string, format: string): string {
  const r = runCli(['--db', db, 'report', '-c', campaign, '--format', format]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/**
 * One campaign with every outcome, sent for real through the sink's fault addresses:
 * sent (including local parts a spreadsheet would run as formulas), a resent possible
 * duplicate, a greylisted retry, bad recipient, content rejection, DMARC block, retries
 * expired, a render failure, a suppressed address, and (after a second send stopped by
 * --limit) one deferred and one queued recipient.
 */
async function everyOutcome(): Promise<{ db: string; dir: string; startedAt: number }> {
  const dir = tempDir('mailq-report-it-');
  const db = path.join(dir, 'm.db');
  const startedAt = Date.now();
  // An earlier campaign's bounce puts bounce-old@s.test on the suppression list.
  importCsv(db, 'earlier', 'bounce-old@s.test,A,B,pro,X\n');
  expect((await runCliAsync(['--db', db, 'send', '-c', 'earlier', '--transport', sink.url])).code).toBe(3);

  importCsv(db, 'c', [
    'ok-1@a.test,Ann,B,pro,X',
    '=1+2@a.test,Eq,B,pro,X',
    '-5@a.test,Minus,B,pro,X',
    '+x@a.test,Plus,B,pro,X',
    'drop1-d@b.test,Dee,B,pro,X',
    'greylist-g@b.test,Gee,B,pro,X',
    'bounce-x@c.test,Bo,B,pro,X',
    'reject-r@c.test,Re,B,pro,X',
    'blocked-k@c.test,Bl,B,pro,X',
    'transient9-t@d.test,Tr,B,pro,X',
    // A line break in first_name breaks the subject header: a render failure.
    'render@e.test,"Ann\nEvil",B,pro,X',
    'bounce-old@s.test,Old,B,pro,X',
  ].join('\n') + '\n');
  const first = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--backoff', '100ms:200ms', '--max-attempts', '2']);
  expect(first.code).toBe(3);

  // Two more recipients of one domain; a send stopped after one attempt (--limit 1)
  // leaves the first deferred for an hour and the second queued.
  importCsv(db, 'c', 'transient1-p@f.test,Pe,B,pro,X\nq@f.test,Qu,B,pro,X\n');
  const second = await runCliAsync(['--db', db, 'send', '-c', 'c', '--transport', sink.url, '--backoff', '1h:2h', '--limit', '1', '--concurrency', '1']);
  expect(second.code).toBe(4);
  return { db, dir, startedAt };
}

function findChromium(): string {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() !== '') return r.stdout.trim();
  }
  throw new Error('chromium not found: the HTML report test needs a headless browser; install it with `apt-get install chromium` (as root, Debian/Ubuntu)');
}

function chromium(args: readonly string[], profile: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(findChromium(), ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`, ...args], {
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('mailq report (built CLI, campaigns sent through a real SMTP server)', () => {
  let db: string;
  let dir: string;
  let startedAt: number;
  beforeAll(async () => {
    ({ db, dir, startedAt } = await everyOutcome());
  }, 120_000);

  it('json: one row per recipient in import order, exactly the documented keys, last outcome of each', () => {
    const rows = JSON.parse(report(db, 'c', 'json')) as JsonRow[];
    for (const r of rows) expect(Object.keys(r)).toEqual(COLUMNS);
    const by = (address: string): JsonRow => rows.find((r) => r.address === address) as JsonRow;
    expect(rows.map((r) => [r.address, r.state, r.attempts, r.category, r.code, r.possible_duplicate])).toEqual([
      ['ok-1@a.test', 'sent', 1, 'sent', 250, false],
      ['=1+2@a.test', 'sent', 1, 'sent', 250, false],
      ['-5@a.test', 'sent', 1, 'sent', 250, false],
      ['+x@a.test', 'sent', 1, 'sent', 250, false],
      ['drop1-d@b.test', 'sent', 2, 'sent', 250, true],
      ['greylist-g@b.test', 'sent', 2, 'sent', 250, false],
      ['bounce-x@c.test', 'failed', 1, 'bad-recipient', 550, false],
      ['reject-r@c.test', 'failed', 1, 'message-rejected', 554, false],
      ['blocked-k@c.test', 'failed', 1, 'sender-blocked', 550, false],
      ['transient9-t@d.test', 'failed', 2, 'retry', 451, false],
      ['render@e.test', 'failed', 1, 'message-rejected', null, false],
      ['bounce-old@s.test', 'suppressed', 0, null, null, false],
      ['transient1-p@f.test', 'deferred', 1, 'retry', 451, false],
      ['q@f.test', 'queued', 0, null, null, false],
    ]);
    // Sent rows: the server's reply, an ISO time from this test run, and the Message-ID the sink received.
    for (const r of rows.filter((x) => x.state === 'sent')) {
      expect(r.reply).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
      expect(r.sent_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(r.sent_at ?? '')).toBeGreaterThanOrEqual(startedAt);
      expect(Date.parse(r.sent_at ?? '')).toBeLessThanOrEqual(Date.now());
      const received = sink.received.filter((m) => m.to[0] === r.address);
      expect(received.length).toBeGreaterThan(0);
      expect(received.every((m) => m.messageId === r.message_id)).toBe(true);
    }
    // The possible duplicate really did reach the server twice (once cut before the reply).
    expect(sink.received.filter((m) => m.to[0] === 'drop1-d@b.test').map((m) => m.dropped)).toEqual([true, false]);
    for (const r of rows.filter((x) => x.state !== 'sent')) {
      expect(r.sent_at).toBeNull();
      expect(r.message_id).toBeNull();
    }
    expect(by('bounce-x@c.test').reply).toBe('550 5.1.1 The email account that you tried to reach does not exist');
    expect(by('reject-r@c.test').reply).toBe('554 5.7.1 Message rejected due to content policy');
    expect(by('blocked-k@c.test').reply).toMatch(/^550 5\.7\.26 Unauthenticated email from acme\.test is not accepted/);
    expect(by('transient9-t@d.test').reply).toBe('451 4.3.0 Temporary local problem, try again');
    expect(by('render@e.test').reply).toBe('rendered Subject contains a line break (CR/LF); refusing to send a silently altered header');
    expect(by('transient1-p@f.test').reply).toBe('451 4.3.0 Temporary local problem, try again');
    expect(by('q@f.test').reply).toBeNull();
  });

  it('csv: the same rows with a header, formula-like cells escaped, quoting that round-trips', () => {
    const text = report(db, 'c', 'csv');
    const json = JSON.parse(report(db, 'c', 'json')) as JsonRow[];
    const cells = parse(text);
    expect(cells[0]).toEqual(COLUMNS);
    expect(cells).toHaveLength(json.length + 1);
    json.forEach((j, i) => {
      const expected = COLUMNS.map((k) => {
        const v = j[k as keyof JsonRow];
        return v === null ? '' : String(v);
      });
      // Cells a spreadsheet would evaluate get a leading apostrophe.
      if (/^[=+\-@]/.test(j.address)) expected[0] = `'${j.address}`;
      expect(cells[i + 1]).toEqual(expected);
    });
    expect(text.split('\r\n')).toContain(
      `'=1+2@a.test,sent,1,sent,250,${json[1]?.reply ?? ''},${json[1]?.sent_at ?? ''},${json[1]?.message_id ?? ''},false`,
    );
    expect(text).toContain("\r\n'-5@a.test,sent,");
    expect(text).toContain("\r\n'+x@a.test,sent,");
    expect(text).toContain('\r\nq@f.test,queued,0,,,,,,false\r\n');
  });

  it('html: summary figures and every chart from the database, self-contained, to a file written atomically', () => {
    const out = path.join(dir, 'report.html');
    fs.writeFileSync(out, 'previous report');
    const r = runCli(['--db', db, 'report', '-c', 'c', '--format', 'html', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^wrote an HTML report of campaign c to .*report\.html \(\d+ bytes\)\n$/);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.report.html'))).toEqual([]);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const html = fs.readFileSync(out, 'utf8');
    const figure = (value: string, label: string): RegExp => new RegExp(`<div class="v">${value}</div><div class="k">(<span class="dot"[^>]*></span>)?${label}</div>`);
    expect(html).toMatch(figure('14', 'recipients'));
    expect(html).toMatch(figure('6', 'sent'));
    expect(html).toMatch(figure('5', 'failed'));
    expect(html).toMatch(figure('1', 'deferred'));
    expect(html).toMatch(figure('1', 'queued'));
    expect(html).toMatch(figure('1', 'suppressed'));
    expect(html).toMatch(figure('1', 'possible duplicates'));
    expect(html).toMatch(figure('2', 'send / resume runs'));
    expect(html).toMatch(/sending span: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC → /);
    for (const title of ['Sends per minute over time', 'Outcomes by category', 'Top domains by outcome', 'Latency of sent messages', 'Attempts per recipient']) {
      expect(html).toContain(`<h2>${title}</h2>`);
    }
    expect(html).not.toContain('>no data<');
    for (const category of ['sent', 'ambiguous', 'bad-recipient', 'message-rejected', 'sender-blocked', 'retry']) {
      expect(html).toMatch(new RegExp(`>${category}<title>`));
    }
    expect(html).toContain('550 5.1.1 The email account that you tried to reach does not exist');
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script|<link|<img|url\(/i);
  });

  it('an unsent campaign renders with "no data" charts; errors are one line and exit 2', () => {
    importCsv(db, 'fresh', 'a@a.test,A,B,pro,X\nb@b.test,B,B,pro,X\n');
    const html = report(db, 'fresh', 'html');
    expect(html).toMatch(/<div class="v">2<\/div><div class="k">recipients<\/div>/);
    // Timeline, categories and latency have nothing yet; domains and attempts per recipient do.
    expect(html.match(/>no data</g)).toHaveLength(3);
    expect(html).toContain('sending span: nothing sent yet');

    const unknown = runCli(['--db', db, 'report', '-c', 'nope', '--format', 'csv']);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr.split('\n')[0]).toBe(`mailq: no campaign "nope" in ${db}`);
    const bad = runCli(['--db', db, 'report', '-c', 'c', '--format', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('mailq: --format must be one of csv, json, html (got "xml")\n');
    const none = runCli(['--db', db, 'report', '-c', 'c']);
    expect(none.code).toBe(2);
    expect(none.stderr.split('\n')[0]).toBe('mailq: --format is required (csv, json or html)');
    // The format follows the --out extension when --format is not given.
    const inferred = path.join(dir, 'inferred.json');
    expect(runCli(['--db', db, 'report', '-c', 'fresh', '--out', inferred]).code).toBe(0);
    expect((JSON.parse(fs.readFileSync(inferred, 'utf8')) as JsonRow[]).map((r) => r.address)).toEqual(['a@a.test', 'b@b.test']);
    // A directory that does not exist: exit 2, nothing written.
    const missing = runCli(['--db', db, 'report', '-c', 'c', '--format', 'csv', '--out', path.join(dir, 'no', 'r.csv')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')[0]).toContain(`--out ${path.join(dir, 'no', 'r.csv')}: cannot create a file in`);
    expect(fs.existsSync(path.join(dir, 'no'))).toBe(false);
  });

  it('renders in headless Chromium: a screenshot, a PDF for print, and hostile replies stay text', async () => {
    // A second campaign whose server answers with markup: the reply is hostile input.
    const hdb = path.join(dir, 'h.db');
    importCsv(hdb, 'h', 'evil@x.test,E,B,pro,X\n=cmd@x.test,F,B,pro,X\n');
    expect((await runCliAsync(['--db', hdb, 'send', '-c', 'h', '--transport', hostile.url])).code).toBe(3);
    const rows = JSON.parse(report(hdb, 'h', 'json')) as JsonRow[];
    expect(rows.map((r) => r.reply)).toEqual([HOSTILE_REPLY, HOSTILE_REPLY]);
    const csv = parse(report(hdb, 'h', 'csv'));
    expect(csv.slice(1).map((r) => [r[0], r[5]])).toEqual([['evil@x.test', HOSTILE_REPLY], ["'=cmd@x.test", HOSTILE_REPLY]]);
    const hostileHtml = path.join(dir, 'hostile.html');
    expect(runCli(['--db', hdb, 'report', '-c', 'h', '--format', 'html', '--out', hostileHtml]).code).toBe(0);
    const source = fs.readFileSync(hostileHtml, 'utf8');
    expect(source).toContain('&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;, said the server second line &lt;img src=x onerror=alert(2)&gt;');
    expect(source).not.toMatch(/<script|<img/i);

    const profile = tempDir('mailq-chromium-');
    // The browser's own DOM: the reply is a text node, no script or img element exists.
    const dom = chromium(['--dump-dom', pathToFileURL(hostileHtml).href], profile);
    expect(dom.code, dom.stderr).toBe(0);
    expect(dom.stdout).toContain('&lt;script&gt;alert("owned")&lt;/script&gt;, said the server');
    expect(dom.stdout).not.toMatch(/<script|<img/i);
    expect(dom.stdout).toContain('<h2>Top domains by outcome</h2>');

    const page = pathToFileURL(path.join(dir, 'report.html')).href;
    const png = path.join(dir, 'report.png');
    const shot = chromium([`--screenshot=${png}`, '--window-size=1200,2000', '--hide-scrollbars', page], profile);
    expect(shot.code, shot.stderr).toBe(0);
    const image = fs.readFileSync(png);
    expect(image.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(image.readUInt32BE(16)).toBe(1200);
    expect(image.readUInt32BE(20)).toBe(2000);
    // A blank page compresses to a few KB; charts and text do not.
    expect(image.length).toBeGreaterThan(40_000);

    const pdf = path.join(dir, 'report.pdf');
    const printed = chromium([`--print-to-pdf=${pdf}`, '--no-pdf-header-footer', page], profile);
    expect(printed.code, printed.stderr).toBe(0);
    const bytes = fs.readFileSync(pdf);
    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(bytes.length).toBeGreaterThan(20_000);
    // The report does not fit one A4/Letter page: it printed across several.
    expect(bytes.toString('latin1').match(/\/Type\s*\/Page\b/g)?.length ?? 0).toBeGreaterThan(1);
  }, 180_000);
});
