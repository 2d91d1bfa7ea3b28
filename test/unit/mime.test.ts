import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { InputError } from '../../src/errors.js';
import { decodeWords } from '../helpers/mime.js';
import { buildMessage, buildMime, messageIdFor, senderBlockStats } from '../../src/campaign/mime.js';
import { loadTemplateDir } from '../../src/campaign/template/snapshot.js';
import { compileTemplate } from '../../src/campaign/template/compile.js';
import { renderMessage, type RenderedMessage } from '../../src/campaign/template/render.js';

const DATE = new Date('2024-05-06T07:08:09Z');
const MSGID = '<0123456789abcdef01234567.spring@acme.test>';

const message: RenderedMessage = {
  subject: 'Grüße aus Zürich, Bob',
  from: 'Acme News <news@acme.test>',
  replyTo: 'Acme Support <support@acme.test>',
  headers: [['List-Unsubscribe', '<mailto:unsub@acme.test?subject=unsubscribe>']],
  html: '<p>Hello <b>Bob</b></p>',
  text: 'Hello Bob',
  textDerived: false,
};

/** Header block of a raw message, with folded lines joined. */
function headerBlock(raw: string): string {
  const end = raw.indexOf('\r\n\r\n');
  expect(end).toBeGreaterThan(0);
  return raw.slice(0, end).replace(/\r\n[ \t]+/g, ' ');
}

function headerValues(raw: string, name: string): string[] {
  const re = new RegExp(`^${name}: (.*)$`, 'gim');
  return [...headerBlock(raw).matchAll(re)].map((m) => m[1] ?? '');
}

describe('buildMime', () => {
  it('builds a multipart/alternative message with the given To, Message-ID and Date', () => {
    const raw = (buildMime(message, 'bob@example.com', MSGID, DATE)).toString('utf8');
    expect(headerValues(raw, 'To')).toEqual(['bob@example.com']);
    expect(headerValues(raw, 'From')).toEqual(['Acme News <news@acme.test>']);
    expect(headerValues(raw, 'Reply-To')).toEqual(['Acme Support <support@acme.test>']);
    expect(headerValues(raw, 'Message-ID')).toEqual([MSGID]);
    expect(headerValues(raw, 'Date')).toEqual(['Mon, 06 May 2024 07:08:09 +0000']);
    expect(headerValues(raw, 'MIME-Version')).toEqual(['1.0']);
    expect(headerValues(raw, 'List-Unsubscribe')).toEqual(['<mailto:unsub@acme.test?subject=unsubscribe>']);
    expect(headerValues(raw, 'Cc')).toEqual([]);
    expect(headerValues(raw, 'Bcc')).toEqual([]);

    const [contentType] = headerValues(raw, 'Content-Type');
    expect(contentType).toMatch(/^multipart\/alternative; boundary="?([^";]+)"?$/);
    const boundary = /boundary="?([^";]+)"?/.exec(contentType ?? '')?.[1] ?? '';
    const parts = raw.split(`--${boundary}`);
    // preamble, text, html, closing "--"
    expect(parts).toHaveLength(4);
    expect(parts[1]).toMatch(/Content-Type: text\/plain; charset=utf-8/);
    expect(parts[1]).toContain('Hello Bob');
    expect(parts[2]).toMatch(/Content-Type: text\/html; charset=utf-8/);
    expect(parts[2]).toContain('<p>Hello <b>Bob</b></p>');
    expect(parts[3]?.startsWith('--')).toBe(true);
  });

  it('encodes a UTF-8 subject as RFC 2047 and keeps headers ASCII', () => {
    const raw = (buildMime(message, 'bob@example.com', MSGID, DATE)).toString('utf8');
    const [subject] = headerValues(raw, 'Subject');
    expect(subject).toMatch(/^=\?UTF-8\?[QB]\?/);
    expect(decodeWords(subject ?? '')).toBe('Grüße aus Zürich, Bob');
    expect(headerBlock(raw)).toMatch(/^[\x20-\x7e\r\n\t]*$/);
  });

  it('uses CRLF line endings only', () => {
    const raw = (buildMime(message, 'bob@example.com', MSGID, DATE)).toString('utf8');
    expect(raw).not.toMatch(/[^\r]\n/);
  });

  it('builds a single text/plain part when there is no html', () => {
    const { html: _html, ...textOnly } = message;
    const raw = (buildMime(textOnly, 'bob@example.com', MSGID, DATE)).toString('utf8');
    expect(headerValues(raw, 'Content-Type')).toEqual(['text/plain; charset=utf-8']);
    expect(raw).not.toContain('multipart');
  });

  it('defaults Date to now', () => {
    const before = Date.now();
    const raw = (buildMime(message, 'bob@example.com', MSGID)).toString('utf8');
    const [date] = headerValues(raw, 'Date');
    const t = Date.parse(date ?? '');
    expect(t).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it('addresses exactly the one given recipient, in headers and envelope', () => {
    const built = buildMessage(message, 'a@x.com', MSGID, DATE);
    expect(built.envelope).toEqual({ from: 'news@acme.test', to: ['a@x.com'] });
    const raw = built.raw.toString('utf8');
    const recipients = [...headerValues(raw, 'To'), ...headerValues(raw, 'Cc'), ...headerValues(raw, 'Bcc')];
    expect(recipients).toEqual(['a@x.com']);
    // The only addresses in the header block are the sender's, the recipient's and our own.
    const addresses = headerBlock(raw).match(/[\w.+-]+@[\w.-]+/g) ?? [];
    expect(new Set(addresses)).toEqual(new Set(['a@x.com', 'news@acme.test', 'support@acme.test', 'unsub@acme.test', '0123456789abcdef01234567.spring@acme.test']));
  });

  it('never expands an address-list-looking recipient into several', () => {
    for (const to of ['a@x.com, b@y.com', 'a@x.com;b@y.com', 'a@x.com b@y.com', 'Bob <a@x.com>', '"a@x.com, b"@y.com', 'g: a@x.com, b@y.com;', 'a@x.com\r\nBcc: b@y.com']) {
      expect(() => buildMime(message, to, MSGID, DATE), to).toThrow(InputError);
    }
  });

  it('refuses a From that is not exactly one address', () => {
    expect(() => buildMime({ ...message, from: 'a@acme.test, b@acme.test' }, 'bob@example.com', MSGID, DATE)).toThrow(/exactly one/);
  });

  it('refuses line breaks in headers of a hand-built message instead of altering them', () => {
    expect(() => buildMime({ ...message, subject: 'Hi\r\nBcc: evil@x.test' }, 'bob@example.com', MSGID, DATE)).toThrow(/Subject contains a line break/);
    expect(() => buildMime({ ...message, headers: [['X-Tag', 'a\u2028b']] }, 'bob@example.com', MSGID, DATE)).toThrow(/X-Tag/);
    expect(() => buildMime({ ...message, headers: [['Bcc', 'evil@x.test']] }, 'bob@example.com', MSGID, DATE)).toThrow(/cannot be set/);
  });

  it('builds the rendered newsletter example end to end', async () => {
    const c = compileTemplate(await loadTemplateDir(path.resolve(import.meta.dirname, '../../templates/newsletter')));
    const r = await renderMessage(c, { email: 'bob@example.com', first_name: 'Bob', last_name: 'Stone', plan: 'pro', city: 'Zürich' });
    if (!r.ok) throw new Error(r.message);
    const id = messageIdFor('spring-news', 'bob@example.com', r.message.from);
    const raw = (buildMime(r.message, 'bob@example.com', id, DATE)).toString('utf8');
    expect(headerValues(raw, 'Message-ID')).toEqual([id]);
    expect(headerValues(raw, 'To')).toEqual(['bob@example.com']);
    expect(headerValues(raw, 'List-Unsubscribe')).toEqual(['<mailto:unsub@acme.test?subject=unsubscribe%20bob%40example.com>']);
    expect(headerValues(raw, 'Content-Type')[0]).toMatch(/^multipart\/alternative/);
  });
});

describe('the sender block, built once and reused', () => {
  it('reuses From, Reply-To and template headers while they stay the same, and rebuilds when one changes', () => {
    const before = senderBlockStats();
    const a = buildMessage(message, 'a@example.com', MSGID, DATE);
    const b = buildMessage({ ...message, subject: 'Other', text: 'Other' }, 'b@example.com', MSGID, DATE);
    const mid = senderBlockStats();
    // The first may or may not hit what an earlier test left; the second must reuse it.
    expect(mid.reused).toBeGreaterThan(before.reused);
    const rawB = b.raw.toString('utf8');
    expect(headerValues(rawB, 'To')).toEqual(['b@example.com']);
    expect(headerValues(rawB, 'Subject')).toEqual(['Other']);
    expect(headerValues(rawB, 'From')).toEqual(headerValues(a.raw.toString('utf8'), 'From'));
    expect(b.envelope.from).toBe('news@acme.test');

    // Any change is seen: a new From, a new header value, a Reply-To gone.
    const c = buildMessage({ ...message, from: 'Other Sender <other@acme.test>' }, 'c@example.com', MSGID, DATE);
    expect(headerValues(c.raw.toString('utf8'), 'From')).toEqual(['Other Sender <other@acme.test>']);
    expect(c.envelope.from).toBe('other@acme.test');
    const d = buildMessage({ ...message, headers: [['List-Unsubscribe', '<mailto:other@acme.test>']] }, 'd@example.com', MSGID, DATE);
    expect(headerValues(d.raw.toString('utf8'), 'List-Unsubscribe')).toEqual(['<mailto:other@acme.test>']);
    const e = buildMessage({ ...message, replyTo: undefined }, 'e@example.com', MSGID, DATE);
    expect(headerValues(e.raw.toString('utf8'), 'Reply-To')).toEqual([]);
    expect(senderBlockStats().built - mid.built).toBe(3);
    // A bad From after a good one is refused, never served from the last good block.
    expect(() => buildMessage({ ...message, replyTo: undefined, from: 'a@x.test, b@y.test' }, 'f@example.com', MSGID, DATE)).toThrow(InputError);
    expect(() => buildMessage({ ...message, subject: 'line\r\nBcc: x@y.test' }, 'g@example.com', MSGID, DATE)).toThrow(/Subject/);
  });
});

describe('messageIdFor', () => {
  it('is deterministic and shaped <hex24.slug@from-domain>', () => {
    const a = messageIdFor('Spring News 2025!', 'bob@example.com', 'Acme News <news@acme.test>');
    expect(a).toBe(messageIdFor('Spring News 2025!', 'bob@example.com', 'Acme News <news@acme.test>'));
    expect(a).toMatch(/^<[0-9a-f]{24}\.spring-news-2025@acme\.test>$/);
  });

  it('differs per recipient and per campaign', () => {
    const ids = new Set<string>();
    for (const campaign of ['spring', 'summer']) {
      for (let i = 0; i < 500; i++) ids.add(messageIdFor(campaign, `user${i}@example.com`, 'news@acme.test'));
    }
    expect(ids.size).toBe(1000);
  });

  it('depends on the sender address, not how the From is written', () => {
    const bare = messageIdFor('c', 'r1', 'news@acme.test');
    expect(messageIdFor('c', 'r1', 'Acme <news@ACME.test>')).toBe(bare);
    expect(messageIdFor('c', 'r1', 'other@acme.test')).not.toBe(bare);
  });

  it('uses a punycode domain and a fallback slug', () => {
    expect(messageIdFor('!!!', 'r', 'Bücher <news@bücher.de>')).toMatch(/^<[0-9a-f]{24}\.campaign@xn--bcher-kva\.de>$/);
  });
});
