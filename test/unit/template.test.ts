import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { Liquid, Parser } from 'liquidjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '../../src/errors.js';
import { loadTemplateDir, parseSnapshot, snapshotHash, type TemplateSnapshot } from '../../src/campaign/template/snapshot.js';
import { compileTemplate, templateVariables, type RenderLimits } from '../../src/campaign/template/compile.js';
import { renderMessage, type RenderResult, type RenderedMessage } from '../../src/campaign/template/render.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const NEWSLETTER = path.join(repoRoot, 'templates/newsletter');
const RELEASE = path.join(repoRoot, 'templates/release');

const CONFIG = JSON.stringify({ from: 'Acme <news@acme.test>' });
const demoRow = { email: 'bob@example.com', first_name: 'Bob', last_name: 'Stone', plan: 'pro', city: 'Zürich' };

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailq-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Writes a template folder under the test's temp dir. */
function writeDir(files: Record<string, string | Buffer>, name = 'tpl'): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
  return dir;
}

/** A snapshot with a default subject and template.json unless given. */
function snap(files: Record<string, string>): TemplateSnapshot {
  return { version: 1, files: { 'subject.liquid': 'Hello', 'template.json': CONFIG, ...files } };
}

async function render(files: Record<string, string>, vars: Record<string, unknown> = {}, limits?: Partial<RenderLimits>): Promise<RenderResult> {
  return renderMessage(compileTemplate(snap(files), limits), vars);
}

function ok(r: RenderResult): RenderedMessage {
  if (!r.ok) throw new Error(`expected success, got ${r.reason}: ${r.message}`);
  return r.message;
}

function fail(r: RenderResult): { reason: string; message: string } {
  if (r.ok) throw new Error('expected a render failure');
  return r;
}

async function loadError(dir: string): Promise<InputError> {
  const err: unknown = await loadTemplateDir(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

function compileError(s: TemplateSnapshot): InputError {
  try {
    compileTemplate(s);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected compileTemplate to throw');
}

describe('loadTemplateDir', () => {
  it('loads the newsletter example with its layout and partial', async () => {
    const s = await loadTemplateDir(NEWSLETTER);
    expect(s.version).toBe(1);
    expect(Object.keys(s.files).sort()).toEqual([
      'html.liquid', 'layouts/base.liquid', 'partials/footer.liquid', 'subject.liquid', 'template.json', 'text.liquid',
    ]);
  });

  it('fails on a missing folder, naming it', async () => {
    const missing = path.join(tmp, 'nope');
    const err = await loadError(missing);
    expect(err.message).toContain(missing);
    expect(err.message).toMatch(/not found/);
  });

  it('fails when the path is a file', async () => {
    const file = path.join(tmp, 'file.liquid');
    fs.writeFileSync(file, 'x');
    expect((await loadError(file)).message).toMatch(/not a folder/);
  });

  it('fails without subject.liquid', async () => {
    const err = await loadError(writeDir({ 'html.liquid': '<p>x</p>', 'template.json': CONFIG }));
    expect(err.message).toMatch(/no subject\.liquid/);
  });

  it('fails without any body', async () => {
    const err = await loadError(writeDir({ 'subject.liquid': 'x', 'template.json': CONFIG }));
    expect(err.message).toMatch(/neither html\.liquid nor text\.liquid/);
  });

  it('fails without template.json (from is required)', async () => {
    const err = await loadError(writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y' }));
    expect(err.message).toMatch(/no template\.json/);
  });

  it('reports invalid JSON with file, line and column', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y', 'template.json': '{\n  "from": "a@b.test",\n  "replyTo": ,\n}' });
    const err = await loadError(dir);
    expect(err.message).toContain(path.join(dir, 'template.json'));
    expect(err.message).toMatch(/line 3 col 14/);
  });

  it('names an unknown key in template.json', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y', 'template.json': JSON.stringify({ from: 'a@b.test', reply_to: 'c@d.test' }) });
    expect((await loadError(dir)).message).toMatch(/unknown key "reply_to"/);
  });

  it('requires from in template.json', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y', 'template.json': JSON.stringify({ replyTo: 'c@d.test' }) });
    expect((await loadError(dir)).message).toMatch(/"from" is required/);
  });

  it('rejects invalid UTF-8, naming the file', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'html.liquid': Buffer.from([0x3c, 0x70, 0x3e, 0xff, 0xfe]), 'template.json': CONFIG });
    const err = await loadError(dir);
    expect(err.message).toContain(path.join(dir, 'html.liquid'));
    expect(err.message).toMatch(/not valid UTF-8/);
  });

  it('rejects a file over 1 MiB', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y'.repeat(1024 * 1024 + 1), 'template.json': CONFIG });
    const err = await loadError(dir);
    expect(err.message).toContain('text.liquid');
    expect(err.message).toMatch(/1 MiB/);
  });

  it('accepts a file of exactly 1 MiB', async () => {
    const dir = writeDir({ 'subject.liquid': 'x', 'text.liquid': 'y'.repeat(1024 * 1024), 'template.json': CONFIG });
    const s = await loadTemplateDir(dir);
    expect(s.files['text.liquid']).toHaveLength(1024 * 1024);
  });

  it('ignores unknown and hidden files, keeps nested partials, strips a BOM', async () => {
    const dir = writeDir({
      'subject.liquid': '\uFEFFHi',
      'text.liquid': 'y',
      'template.json': CONFIG,
      'README.md': 'notes',
      'partials/.DS_Store': 'junk',
      'partials/notes.txt': 'junk',
      'partials/social/icons.liquid': 'icons',
    });
    const s = await loadTemplateDir(dir);
    expect(Object.keys(s.files).sort()).toEqual(['partials/social/icons.liquid', 'subject.liquid', 'template.json', 'text.liquid']);
    expect(s.files['subject.liquid']).toBe('Hi');
  });
});

describe('snapshotHash / parseSnapshot', () => {
  it('is a sha256 hex that ignores key order', () => {
    const a: TemplateSnapshot = { version: 1, files: { 'subject.liquid': 's', 'text.liquid': 't', 'template.json': CONFIG } };
    const b: TemplateSnapshot = { version: 1, files: { 'template.json': CONFIG, 'text.liquid': 't', 'subject.liquid': 's' } };
    expect(snapshotHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(snapshotHash(b)).toBe(snapshotHash(a));
  });

  it('changes when any content or name changes', () => {
    const base = snap({ 'text.liquid': 't' });
    expect(snapshotHash(snap({ 'text.liquid': 't ' }))).not.toBe(snapshotHash(base));
    expect(snapshotHash(snap({ 'html.liquid': 't' }))).not.toBe(snapshotHash(base));
  });

  it('is stable across a load, a JSON round trip and a reload', async () => {
    const s = await loadTemplateDir(NEWSLETTER);
    const back = parseSnapshot(JSON.stringify(s));
    expect(back).toEqual(s);
    expect(snapshotHash(back)).toBe(snapshotHash(s));
    expect(snapshotHash(await loadTemplateDir(NEWSLETTER))).toBe(snapshotHash(s));
  });

  it('rejects malformed stored snapshots', () => {
    const good = snap({ 'text.liquid': 't' });
    expect(() => parseSnapshot('{')).toThrow(InputError);
    expect(() => parseSnapshot(JSON.stringify({ ...good, version: 2 }))).toThrow(/version/);
    expect(() => parseSnapshot(JSON.stringify({ version: 1, files: { ...good.files, 'text.liquid': 5 } }))).toThrow(/not text/);
    expect(() => parseSnapshot(JSON.stringify({ version: 1, files: { ...good.files, 'partials/../../etc.liquid': 'x' } }))).toThrow(/unexpected file name/);
    expect(() => parseSnapshot(JSON.stringify({ version: 1, files: { 'text.liquid': 't', 'template.json': CONFIG } }))).toThrow(/subject\.liquid/);
  });
});

describe('snapshot isolation', () => {
  it('renders what was loaded, whatever happens to the files afterwards', async () => {
    const dir = writeDir({
      'subject.liquid': 'Hi {{ name }}',
      'html.liquid': '<p>v1 {{ name }}</p>{% render "foot" %}',
      'partials/foot.liquid': '<small>foot v1</small>',
      'template.json': CONFIG,
    });
    const s = await loadTemplateDir(dir);
    const before = ok(await renderMessage(compileTemplate(s), { name: 'Ann' }));

    fs.writeFileSync(path.join(dir, 'html.liquid'), '<p>v2 {{ other }}</p>');
    fs.writeFileSync(path.join(dir, 'partials/foot.liquid'), '<small>foot v2</small>');
    fs.rmSync(path.join(dir, 'subject.liquid'));

    const again = ok(await renderMessage(compileTemplate(s), { name: 'Ann' }));
    expect(again.html).toBe('<p>v1 Ann</p><small>foot v1</small>');
    expect(again).toEqual(before);
  });
});

describe('compileTemplate errors', () => {
  it('reports parse errors as "template <file> line L col C: <message>"', () => {
    const err = compileError(snap({ 'html.liquid': '<p>\n  {% for x in items %}' }));
    expect(err.message).toMatch(/^template html\.liquid line 2 col 3: .*not closed/);
  });

  it('fails an unknown filter at compile time (strictFilters)', () => {
    const err = compileError(snap({ 'text.liquid': 'Hi\n{{ name | upcasee }}' }));
    expect(err.message).toMatch(/^template text\.liquid line 2 col \d+: undefined filter: upcasee/);
  });

  it('fails a missing partial or layout', () => {
    expect(compileError(snap({ 'html.liquid': '{% render "nope" %}' })).message).toMatch(/"nope" not found/);
    expect(compileError(snap({ 'html.liquid': '{% layout "gone" %}x' })).message).toMatch(/"gone" not found/);
  });

  it('names the partial that has a syntax error', () => {
    const err = compileError(snap({ 'html.liquid': '{% render "footer" %}', 'partials/footer.liquid': 'ok\n{{ x | nofilter }}' }));
    expect(err.message).toMatch(/^template partials\/footer\.liquid line 2 col \d+: undefined filter: nofilter/);
  });

  it('rejects a static From that is not exactly one address', () => {
    const s = (from: string): TemplateSnapshot => ({ version: 1, files: { 'subject.liquid': 's', 'text.liquid': 't', 'template.json': JSON.stringify({ from }) } });
    expect(compileError(s('a@acme.test, b@acme.test')).message).toMatch(/"from" holds 2 addresses/);
    expect(compileError(s('Acme News')).message).toMatch(/"from" has no email address/);
    expect(() => compileTemplate(s('Acme <news@acme.test>'))).not.toThrow();
  });

  it('refuses reserved header names in template.json', () => {
    for (const name of ['From', 'to', 'CC', 'Bcc', 'Subject', 'Message-ID', 'Date', 'Content-Type', 'content-transfer-encoding', 'Reply-To', 'MIME-Version']) {
      const s: TemplateSnapshot = {
        version: 1,
        files: { 'subject.liquid': 's', 'text.liquid': 't', 'template.json': JSON.stringify({ from: 'a@acme.test', headers: { [name]: 'x' } }) },
      };
      const err = compileError(s);
      expect(err.message, name).toContain(`header "${name}" cannot be set`);
    }
  });

  it('refuses invalid header names and literal line breaks in values', () => {
    const withHeaders = (headers: Record<string, string>): TemplateSnapshot => ({
      version: 1,
      files: { 'subject.liquid': 's', 'text.liquid': 't', 'template.json': JSON.stringify({ from: 'a@acme.test', headers }) },
    });
    for (const name of ['X Bad', 'X:Bad', '', 'X-Ünicode']) {
      expect(compileError(withHeaders({ [name]: 'v' })).message, name).toMatch(/not a valid header name/);
    }
    expect(compileError(withHeaders({ 'X-Tag': 'a\r\nBcc: evil@x.test' })).message).toMatch(/line break/);
    expect(compileError(withHeaders({ 'X-Tag': 'a', 'x-tag': 'b' })).message).toMatch(/given twice/);
    expect(() => compileTemplate(withHeaders({ 'X-Campaign-Id': 'spring', 'List-Unsubscribe': '<mailto:u@acme.test>' }))).not.toThrow();
  });
});

describe('compiled once, rendered many times', () => {
  it('does not parse anything per recipient, partials and layouts included', async () => {
    const c = compileTemplate(await loadTemplateDir(NEWSLETTER));
    const parse = vi.spyOn(Parser.prototype, 'parse');
    try {
      for (let i = 0; i < 5; i++) ok(await renderMessage(c, { ...demoRow, first_name: `Bob${i}` }));
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it('renders a fixed From and Reply-To once for all recipients: per recipient only the parts with Liquid in them', async () => {
    const c = compileTemplate(await loadTemplateDir(NEWSLETTER));
    expect(c.from.constant).toBe('Acme News <news@acme.test>');
    expect(c.replyTo?.constant).toBe('Acme Support <support@acme.test>');
    expect(c.headers[0]?.value.constant).toBeUndefined(); // List-Unsubscribe uses {{ email }}
    const renders = vi.spyOn(Liquid.prototype, 'renderSync');
    try {
      for (let i = 0; i < 5; i++) {
        const m = ok(await renderMessage(c, { ...demoRow, first_name: `Bob${i}` }));
        expect(m.from).toBe('Acme News <news@acme.test>');
        expect(m.replyTo).toBe('Acme Support <support@acme.test>');
      }
      // subject, html, text and the List-Unsubscribe header: 4 a recipient.
      expect(renders).toHaveBeenCalledTimes(20);
    } finally {
      renders.mockRestore();
    }
  });

  it('resolves partial names with or without .liquid, also with a dot in the name', async () => {
    const m = ok(await render({
      'html.liquid': '{% render "a" %}|{% render "a.liquid" %}|{% render "mail.head" %}|{% render "deep/b" %}',
      'partials/a.liquid': 'A',
      'partials/mail.head.liquid': 'H',
      'partials/deep/b.liquid': 'B',
    }));
    expect(m.html).toBe('A|A|H|B');
  });

  it('cannot reach files outside partials/ from a render tag', async () => {
    expect(compileError(snap({ 'html.liquid': '{% render "../subject" %}' })).message).toMatch(/not found/);
    const dynamic = fail(await render({ 'html.liquid': '{% render name %}' }, { name: '../template.json' }));
    expect(dynamic.reason).toBe('render-error');
    expect(dynamic.message).toMatch(/not found/);
  });

  it('enforces parseLimit at compile time', () => {
    const err = (() => {
      try {
        compileTemplate(snap({ 'html.liquid': 'x'.repeat(200) }), { parseLimit: 100 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(/parse length limit exceeded/);
  });
});

describe('strict variables and property access', () => {
  it('fails a missing variable, naming it and the file', async () => {
    const f = fail(await render({ 'html.liquid': '<p>Hi {{ first_name }}</p>' }, { email: 'a@b.test' }));
    expect(f.reason).toBe('undefined-variable');
    expect(f.message).toMatch(/^undefined variable "first_name" in html\.liquid line 1 col \d+/);
  });

  it('names the partial or layout where the variable is missing', async () => {
    const r1 = fail(await render({ 'html.liquid': 'x{% render "foot" %}', 'partials/foot.liquid': '{{ company }}' }));
    expect(r1.message).toMatch(/"company" in partials\/foot\.liquid/);
    const r2 = fail(await render({ 'html.liquid': '{% layout "base" %}body', 'layouts/base.liquid': '{{ brand }}{% block %}{% endblock %}' }));
    expect(r2.message).toMatch(/"brand" in layouts\/base\.liquid/);
  });

  it('fails in subject and template.json values too', async () => {
    const c = compileTemplate({ version: 1, files: { 'subject.liquid': 'Hi {{ nick }}', 'text.liquid': 't', 'template.json': CONFIG } });
    expect(fail(await renderMessage(c, {})).message).toMatch(/"nick" in subject\.liquid/);
    const c2 = compileTemplate({
      version: 1,
      files: { 'subject.liquid': 's', 'text.liquid': 't', 'template.json': JSON.stringify({ from: 'a@acme.test', headers: { 'X-Id': '{{ id }}' } }) },
    });
    expect(fail(await renderMessage(c2, {})).message).toMatch(/"id" in template\.json headers\.X-Id/);
  });

  it('accepts an empty string value', async () => {
    expect(ok(await render({ 'text.liquid': '[{{ city }}]' }, { city: '' })).text).toBe('[]');
  });

  it('never exposes prototype properties (ownPropertyOnly)', async () => {
    const vars = { x: { own: 'yes' }, s: 'abc' };
    expect(ok(await render({ 'text.liquid': '{{ x.own }} {{ s.size }}' }, vars)).text).toBe('yes 3');
    for (const expr of ['x.constructor', 'x.__proto__', 'x.toString', 'x.hasOwnProperty', 'constructor', 'toString']) {
      const r = await render({ 'text.liquid': `[{{ ${expr} }}]` }, vars);
      expect(r.ok, expr).toBe(false);
      expect(fail(r).reason, expr).toBe('undefined-variable');
    }
    // `default` does not turn a missing property into a fallback either (no lenientIf).
    const r = await render({ 'text.liquid': '[{{ x.constructor | default: "none" }}]' }, vars);
    expect(fail(r).message).toMatch(/"x\.constructor"/);
  });
});

describe('escaping', () => {
  const evil = '<script>alert("x")</script>';

  it('escapes HTML output by default, not text, subject or headers', async () => {
    const c = compileTemplate({
      version: 1,
      files: {
        'subject.liquid': 'S {{ v }}',
        'html.liquid': '<p>{{ v }}</p><div>{{ v | raw }}</div>',
        'text.liquid': 'T {{ v }}',
        'template.json': JSON.stringify({ from: 'a@acme.test', headers: { 'X-Note': '{{ v }}' } }),
      },
    });
    const m = ok(await renderMessage(c, { v: evil }));
    expect(m.html).toBe(`<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p><div>${evil}</div>`);
    expect(m.text).toBe(`T ${evil}`);
    expect(m.subject).toBe(`S ${evil}`);
    expect(m.headers).toEqual([['X-Note', evil]]);
  });

  it('escapes in layouts and partials used by html, not in partials used by text', async () => {
    const m = ok(await render({
      'html.liquid': '{% layout "base" %}{% block body %}{% render "p", v: v %}{% endblock %}',
      'layouts/base.liquid': '<h1>{{ v }}</h1>{% block body %}{% endblock %}',
      'partials/p.liquid': '<i>{{ v }}</i>',
      'text.liquid': '{% render "p", v: v %}',
    }, { v: '<b>' }));
    expect(m.html).toBe('<h1>&lt;b&gt;</h1><i>&lt;b&gt;</i>');
    expect(m.text).toBe('<i><b></i>');
  });

  it('does not double-escape | escape, and newline_to_br escapes then breaks', async () => {
    const m = ok(await render({ 'html.liquid': '{{ v | escape }}|{{ n | newline_to_br }}|{{ n | newline_to_br | raw }}' }, { v: 'a&b', n: '<i>1</i>\n2' }));
    expect(m.html).toBe('a&amp;b|&lt;i&gt;1&lt;/i&gt;<br />\n2|&lt;i&gt;1&lt;/i&gt;<br />\n2');
  });
});

describe('example templates', () => {
  it('renders the newsletter with layout, partial, text part and headers', async () => {
    const c = compileTemplate(await loadTemplateDir(NEWSLETTER));
    const m = ok(await renderMessage(c, demoRow));
    expect(m.subject).toBe('Bob, your pro plan news from Acme');
    expect(m.from).toBe('Acme News <news@acme.test>');
    expect(m.replyTo).toBe('Acme Support <support@acme.test>');
    expect(m.headers).toEqual([['List-Unsubscribe', '<mailto:unsub@acme.test?subject=unsubscribe%20bob%40example.com>']]);
    expect(m.html).toMatch(/^<!DOCTYPE html>/);
    expect(m.html).toContain('Hi Bob,'); // html.liquid block
    expect(m.html).toContain('max-width:600px'); // layouts/base.liquid
    expect(m.html).toContain('bob@example.com is subscribed to Acme News'); // partials/footer.liquid
    expect(m.html).toContain('in Zürich next month');
    expect(m.textDerived).toBe(false);
    expect(m.text).toMatch(/^Hi Bob,\n/);
    expect(m.text).toContain('on the pro plan');
  });

  it('renders the release template with escaped notes and derived text', async () => {
    const c = compileTemplate(await loadTemplateDir(RELEASE));
    const m = ok(await renderMessage(c, { first_name: 'Ann', product: 'mailq', version: '1.4.0', notes: '- fix <b>bold</b> bug\n- faster' }));
    expect(m.subject).toBe('mailq 1.4.0 released');
    expect(m.from).toBe('Release Bot <releases@acme.test>');
    expect(m.html).toContain('- fix &lt;b&gt;bold&lt;/b&gt; bug<br />\n- faster');
    expect(m.textDerived).toBe(true);
    expect(m.text).toContain('mailq 1.4.0 is out');
    expect(m.text).toContain('Hi Ann,');
    expect(m.text).toContain('- fix <b>bold</b> bug\n- faster');
  });
});

describe('templateVariables', () => {
  it('lists exactly the newsletter variables (layout, partial and header included)', async () => {
    expect(templateVariables(compileTemplate(await loadTemplateDir(NEWSLETTER)))).toEqual(['city', 'email', 'first_name', 'plan']);
  });

  it('lists exactly the release variables', async () => {
    expect(templateVariables(compileTemplate(await loadTemplateDir(RELEASE)))).toEqual(['first_name', 'notes', 'product', 'version']);
  });

  it('excludes loop, assigned and captured names and forloop', () => {
    const c = compileTemplate(snap({
      'text.liquid':
        '{% assign a = 1 %}{% capture c %}{{ x }}{% endcapture %}{% for i in items %}{{ i.name }}{{ forloop.index }}{% endfor %}' +
        '{{ a }}{{ c }}{{ y.z }}{% increment n %}{{ forloop.first }}',
    }));
    expect(templateVariables(c)).toEqual(['items', 'x', 'y']);
  });

  it('follows partials, layouts and template.json, mapping render arguments to the caller', () => {
    const c = compileTemplate({
      version: 1,
      files: {
        'subject.liquid': '{{ subj }}',
        'html.liquid': '{% layout "base" %}{% block main %}{% render "card", who: email %}{% endblock %}',
        'layouts/base.liquid': '{{ brand }}{% block main %}{% endblock %}',
        'partials/card.liquid': '{{ who }} {{ card_title }}',
        'template.json': JSON.stringify({ from: '{{ sender }} <a@acme.test>', replyTo: '{{ reply }}', headers: { 'X-Id': '{{ id }}' } }),
      },
    });
    expect(templateVariables(c)).toEqual(['brand', 'card_title', 'email', 'id', 'reply', 'sender', 'subj']);
  });
});

describe('hostile templates are stopped quickly', () => {
  const timed = async (files: Record<string, string>, limits?: Partial<RenderLimits>): Promise<{ r: RenderResult; ms: number }> => {
    const c = compileTemplate(snap(files), limits);
    const t0 = Date.now();
    const r = await renderMessage(c, {});
    return { r, ms: Date.now() - t0 };
  };

  it('a 100-million iteration loop', async () => {
    const { r, ms } = await timed({ 'html.liquid': '{% for i in (1..100000000) %}x{% endfor %}' });
    expect(['render-limit', 'output-too-large']).toContain(fail(r).reason);
    expect(ms).toBeLessThan(2000);
  });

  it('exponential string growth via assign/append', async () => {
    const { r, ms } = await timed({
      'text.liquid': '{% assign s = "ab" %}{% for i in (1..64) %}{% assign s = s | append: s %}{% endfor %}{{ s }}',
    });
    expect(['render-limit', 'output-too-large']).toContain(fail(r).reason);
    expect(ms).toBeLessThan(2000);
  });

  it('nested loops that allocate little but run long hit the time limit', async () => {
    const { r, ms } = await timed({ 'text.liquid': '{% for a in (1..20000) %}{% for b in (1..20000) %}{% endfor %}{% endfor %}' });
    const f = fail(r);
    expect(f.reason).toBe('render-limit');
    expect(f.message).toMatch(/500 ms/);
    expect(ms).toBeLessThan(2000);
  });

  it('a partial that includes itself', async () => {
    const { r, ms } = await timed({ 'html.liquid': '{% include "loop" %}', 'partials/loop.liquid': 'x{% include "loop" %}' });
    expect(fail(r).reason).toBe('render-limit');
    expect(ms).toBeLessThan(2000);
  });
});

describe('output size cap', () => {
  it('fails output above 2 MiB by default', async () => {
    // Few iterations of a 1 KiB chunk: stays far below the time limit, so
    // this can only fail on size.
    const f = fail(await render({ 'html.liquid': `{% for i in (1..2100) %}${'x'.repeat(1024)}{% endfor %}` }));
    expect(f.reason).toBe('output-too-large');
    expect(f.message).toMatch(/2 MiB/);
  });

  it('counts bytes of the whole message against maxOutputBytes', async () => {
    // subject "Hello" (5 bytes) + From "Acme <news@acme.test>" (21 bytes) + text
    const files = (n: number): Record<string, string> => ({ 'text.liquid': 'é'.repeat(n) });
    expect(ok(await render(files(37), {}, { maxOutputBytes: 100 })).text).toHaveLength(37);
    expect(fail(await render(files(38), {}, { maxOutputBytes: 100 })).reason).toBe('output-too-large');
  });

  it('gives one recipient one memory budget across all parts', async () => {
    const a = 'a'.repeat(300); // each append charges 600 units
    const limits = { memoryLimit: 1000 };
    const oneAppend = compileTemplate({ version: 1, files: { 'subject.liquid': 's', 'text.liquid': '{{ a | append: a }}', 'template.json': CONFIG } }, limits);
    expect(ok(await renderMessage(oneAppend, { a })).text).toHaveLength(600);
    const twoAppends = compileTemplate({ version: 1, files: { 'subject.liquid': '{{ a | append: a }}', 'text.liquid': '{{ a | append: a }}', 'template.json': CONFIG } }, limits);
    const f = fail(await renderMessage(twoAppends, { a }));
    expect(f.reason).toBe('render-limit');
    expect(f.message).toMatch(/memoryLimit/);
    // The budget is per recipient, not per compiled template: the next one starts fresh.
    expect(ok(await renderMessage(oneAppend, { a })).text).toHaveLength(600);
  });

  it('rejects non-positive limits', () => {
    expect(() => compileTemplate(snap({ 'text.liquid': 't' }), { renderLimitMs: 0 })).toThrow(InputError);
  });
});

describe('header injection', () => {
  const breaks: Array<[string, string]> = [['CR', '\r'], ['LF', '\n'], ['CRLF', '\r\n'], ['NUL', '\0'], ['U+2028', '\u2028'], ['U+2029', '\u2029']];
  const compileWith = (subject: string, config: object): ReturnType<typeof compileTemplate> =>
    compileTemplate({ version: 1, files: { 'subject.liquid': subject, 'text.liquid': 'body\nwith\nlines', 'template.json': JSON.stringify(config) } });

  for (const [label, ch] of breaks) {
    it(`refuses ${label} in subject, From, Reply-To and header values`, async () => {
      const v = `Hello${ch}Bcc: victim@evil.test`;
      const cases: Array<[string, ReturnType<typeof compileTemplate>]> = [
        ['Subject', compileWith('News {{ v }}', { from: 'a@acme.test' })],
        ['From', compileWith('s', { from: '{{ v }} <a@acme.test>' })],
        ['Reply-To', compileWith('s', { from: 'a@acme.test', replyTo: '{{ v }} <r@acme.test>' })],
        ['X-Campaign', compileWith('s', { from: 'a@acme.test', headers: { 'X-Campaign': 'c-{{ v }}' } })],
      ];
      for (const [header, c] of cases) {
        const f = fail(await renderMessage(c, { v }));
        expect(f.reason, header).toBe('header-injection');
        expect(f.message, header).toContain(`rendered ${header} contains`);
      }
      // The same value is fine in a body.
      const body = compileTemplate(snap({ 'text.liquid': '{{ v }}' }));
      expect(ok(await renderMessage(body, { v })).text).toBe(v);
    });
  }

  it('trims only surrounding blanks of the subject; an inner line break is injection', async () => {
    const c = compileWith('  Hi {{ v }}\n\n', { from: 'a@acme.test' });
    expect(ok(await renderMessage(c, { v: 'Bob' })).subject).toBe('Hi Bob');
    expect(fail(await renderMessage(c, { v: 'Bob\nBcc: x@evil.test' })).message).toMatch(
      /^rendered Subject contains a line break \(CR\/LF\); refusing to send a silently altered header/,
    );
    // A Unicode separator at the very end is not "surrounding whitespace" to us.
    expect(fail(await renderMessage(c, { v: 'Bob\u2028' })).reason).toBe('header-injection');
  });

  it('fails a From that renders to more than one address', async () => {
    const c = compileWith('s', { from: '{{ sender }}' });
    const f = fail(await renderMessage(c, { sender: 'a@acme.test, b@acme.test' }));
    expect(f.reason).toBe('render-error');
    expect(f.message).toMatch(/From .* holds 2 addresses/);
    expect(ok(await renderMessage(c, { sender: 'Ann <a@acme.test>' })).from).toBe('Ann <a@acme.test>');
    // After a good From, a bad one is still checked, not taken for the last good one.
    expect(fail(await renderMessage(c, { sender: 'Ann <a@acme.test>, b@acme.test' })).message).toMatch(/From .* holds 2 addresses/);
  });
});

describe('text part', () => {
  it('derives text from HTML: links as "text [url]", images dropped, wrapped at 78', async () => {
    const long = 'word '.repeat(60).trim();
    const m = ok(await render({
      'html.liquid': `<h1>Release notes</h1><p>Read <a href="https://acme.test/notes">the notes</a> now.</p><img src="https://acme.test/logo.png" alt="Logo"><p>${long}</p>`,
    }));
    expect(m.textDerived).toBe(true);
    expect(m.text).toContain('Release notes');
    expect(m.text).toContain('Read the notes [https://acme.test/notes] now.');
    expect(m.text).not.toContain('logo.png');
    expect(m.text).not.toContain('Logo');
    for (const line of m.text.split('\n')) expect(line.length).toBeLessThanOrEqual(78);
    expect(m.text.split('\n').length).toBeGreaterThan(3);
  });

  it('uses text.liquid when both parts exist', async () => {
    const m = ok(await render({ 'html.liquid': '<p>html {{ n }}</p>', 'text.liquid': 'plain {{ n }}' }, { n: 1 }));
    expect(m.text).toBe('plain 1');
    expect(m.html).toBe('<p>html 1</p>');
    expect(m.textDerived).toBe(false);
  });

  it('has no html for a text-only template', async () => {
    const m = ok(await render({ 'text.liquid': 'only text' }));
    expect(m.html).toBeUndefined();
    expect(m.text).toBe('only text');
  });
});
