import { simpleParser, type AddressObject } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { decodeWords } from '../helpers/mime.js';
import { buildMessage } from '../../src/campaign/mime.js';
import { quotedPrintable, rfc5322Date } from '../../src/campaign/mime-encode.js';
import type { RenderedMessage } from '../../src/campaign/template/render.js';

/**
 * mailq writes its own MIME (src/campaign/mime-encode.ts); these tests read
 * what it writes back with mailparser, an independent MIME parser, over the
 * shapes that break encoders: long and unbroken lines, non-ASCII of every
 * width, dots and "=" and trailing spaces, every kind of line break.
 */

const DATE = new Date('2024-05-06T07:08:09Z');
const MSGID = '<0123456789abcdef01234567.spring@acme.test>';

const base: RenderedMessage = {
  subject: 'Hello',
  from: 'Acme News <news@acme.test>',
  headers: [],
  html: '<p>Hello</p>',
  text: 'Hello',
  textDerived: false,
};

function mailboxes(a: AddressObject | AddressObject[] | undefined): { name: string; address: string | undefined }[] {
  const list = a === undefined ? [] : Array.isArray(a) ? a : [a];
  return list.flatMap((x) => x.value.map((v) => ({ name: v.name, address: v.address })));
}

/** Line breaks as a reader sees them: any of CRLF, LF, CR is one break. */
const lines = (s: string): string => s.replace(/\r\n|\r/g, '\n');

async function roundTrip(m: RenderedMessage, to = 'bob@example.com') {
  const built = buildMessage(m, to, MSGID, DATE);
  const raw = built.raw.toString('utf8');
  // Every line of the message fits SMTP's 998, and the header block is ASCII.
  for (const l of raw.split('\r\n')) expect(l.length).toBeLessThanOrEqual(998);
  expect(raw).not.toMatch(/[^\r]\n|\r[^\n]/);
  expect(raw.slice(0, raw.indexOf('\r\n\r\n'))).toMatch(/^[\x20-\x7e\r\n]*$/);
  return { built, raw, parsed: await simpleParser(built.raw) };
}

const cases: [string, Partial<RenderedMessage>][] = [
  ['plain ASCII', {}],
  ['German subject and body', { subject: 'Grüße aus Zürich, Jürgen', text: 'Schöne Grüße\nÄÖÜ äöü ß', html: '<p>Schöne Grüße — €100</p>' }],
  ['mostly Japanese (base64 body)', { subject: '春のお知らせ：新機能のご案内', text: '新しい機能が追加されました。\n詳しくはこちら。', html: '<p>新しい機能が追加されました。</p>' }],
  ['emoji, astral plane', { subject: 'Launch 🚀🚀🚀 day', text: 'Party 🎉 time 👩‍💻', html: '<p>🎉</p>' }],
  ['long ASCII subject with spaces', { subject: Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ') }],
  ['long unbroken ASCII subject', { subject: 'x'.repeat(1200) }],
  ['long non-ASCII subject', { subject: 'Ünïcödé '.repeat(40).trim() }],
  ['long lines, dots, equals, trailing spaces', {
    text: `${'a'.repeat(300)}\n.starts with a dot\n..two dots\nx=y and =41 literally\ntrailing spaces   \ntrailing tab\t\n\nend`,
    html: `<div style="a=b">${'<span>long</span>'.repeat(100)}</div>\n.dot`,
  }],
  ['every kind of line break', { text: 'crlf\r\nlf\ncr\rend\r\n', html: '<p>a</p>\r\n<p>b</p>\n' }],
  ['text only', { html: undefined, text: 'Only text, ünïcödé' }],
  ['NUL-free control characters and tabs', { text: 'tab\there\u000bvt\u000cff', subject: 'Tab\there' }],
];

describe('buildMessage read back by mailparser', () => {
  for (const [name, change] of cases) {
    it(name, async () => {
      const m: RenderedMessage = { ...base, ...change };
      const { parsed } = await roundTrip(m);
      expect(parsed.subject).toBe(m.subject);
      expect(lines(parsed.text ?? '').replace(/\n$/, '')).toBe(lines(m.text).replace(/\n$/, ''));
      if (m.html === undefined) expect(parsed.html).toBe(false);
      else expect(lines(typeof parsed.html === 'string' ? parsed.html : '').replace(/\n$/, '')).toBe(lines(m.html).replace(/\n$/, ''));
      expect(parsed.messageId).toBe(MSGID);
      expect(parsed.date?.toISOString()).toBe(DATE.toISOString());
      expect(mailboxes(parsed.to)).toEqual([{ name: '', address: 'bob@example.com' }]);
    });
  }

  it('writes display names that need quoting or encoding, and several Reply-To mailboxes', async () => {
    const m: RenderedMessage = {
      ...base,
      from: '"Acme, Inc. \\"News\\"" <news@acme.test>',
      replyTo: 'Zoë Support <support@acme.test>, ops@acme.test',
    };
    const { parsed, raw } = await roundTrip(m);
    expect(mailboxes(parsed.from)).toEqual([{ name: 'Acme, Inc. "News"', address: 'news@acme.test' }]);
    expect(mailboxes(parsed.replyTo)).toEqual([
      { name: 'Zoë Support', address: 'support@acme.test' },
      { name: '', address: 'ops@acme.test' },
    ]);
    expect(raw).toContain('From: "Acme, Inc. \\"News\\"" <news@acme.test>');
  });

  it('writes an IDN sender domain in punycode, in the header and the envelope', async () => {
    const { parsed, built, raw } = await roundTrip({ ...base, from: 'Bücher <news@bücher.example>' });
    expect(raw).toContain('<news@xn--bcher-kva.example>');
    // mailparser shows the domain decoded again.
    expect(mailboxes(parsed.from)).toEqual([{ name: 'Bücher', address: 'news@bücher.example' }]);
    expect(built.envelope.from).toBe('news@xn--bcher-kva.example');
  });

  it("keeps a template's own headers, encoding non-ASCII values", async () => {
    const { parsed } = await roundTrip({
      ...base,
      headers: [
        ['List-Unsubscribe', '<mailto:unsub@acme.test?subject=unsubscribe>, <https://acme.test/u/123>'],
        ['X-Campaign', 'Frühling 2025'],
      ],
    });
    // mailparser leaves headers it does not know as written.
    const campaign = parsed.headers.get('x-campaign');
    expect(typeof campaign === 'string' ? decodeWords(campaign) : campaign).toBe('Frühling 2025');
    const unsubscribe = parsed.headerLines.find((h) => h.key === 'list-unsubscribe')?.line.replace(/\r\n(?=[ \t])/g, '');
    expect(unsubscribe).toBe('List-Unsubscribe: <mailto:unsub@acme.test?subject=unsubscribe>, <https://acme.test/u/123>');
  });

  it('builds the same bytes for the same message (the boundary comes from the Message-ID)', () => {
    expect(buildMessage(base, 'bob@example.com', MSGID, DATE).raw.equals(buildMessage(base, 'bob@example.com', MSGID, DATE).raw)).toBe(true);
  });
});

describe('quotedPrintable', () => {
  it('keeps lines within 76 characters and never splits an escape', () => {
    const qp = quotedPrintable(`${'é'.repeat(100)} ${'='.repeat(100)}`);
    for (const l of qp.split('\r\n')) {
      expect(l.length).toBeLessThanOrEqual(76);
      expect(l).not.toMatch(/=[0-9A-F]?$(?<!=$)/);
    }
  });

  it('escapes a space or tab at the end of a line, and "=" everywhere', () => {
    expect(quotedPrintable('a \nb\t\nc=d')).toBe('a=20\r\nb=09\r\nc=3Dd');
  });
});

describe('rfc5322Date', () => {
  it('formats in UTC with a two-digit day', () => {
    expect(rfc5322Date(new Date('2025-03-02T09:04:05Z'))).toBe('Sun, 02 Mar 2025 09:04:05 +0000');
  });
});
