/**
 * The Liquid engines a compiled template renders with, all reading from the
 * snapshot held in memory (never from disk), plus helpers that turn liquidjs
 * errors into one-line operator messages.
 */
import path from 'node:path';
import { Liquid, LiquidError, type FS, type FilterImplOptions, type LiquidOptions } from 'liquidjs';
import { LAYOUTS_DIR, PARTIALS_DIR } from './snapshot.js';

export interface EngineLimits {
  readonly parseLimit: number;
  readonly renderLimitMs: number;
  readonly memoryLimit: number;
}

export interface Engines {
  /** For html.liquid and what it pulls in: output HTML-escaped unless `| raw`. */
  readonly html: Liquid;
  /** For subject, text and template.json values: output verbatim. */
  readonly plain: Liquid;
  /** Static analysis only; see createEngines for why it differs. */
  readonly analysis: Liquid;
}

/**
 * A liquidjs file system over the snapshot. Lookups are confined to the
 * directory liquidjs asks about (partials/ for render/include, layouts/ for
 * layout), so `{% render '../template' %}` cannot reach other files.
 */
class SnapshotFS implements FS {
  readonly sep = '/';

  constructor(private readonly files: Readonly<Record<string, string>>) {}

  existsSync(file: string): boolean {
    return Object.hasOwn(this.files, file);
  }

  exists(file: string): Promise<boolean> {
    return Promise.resolve(this.existsSync(file));
  }

  readFileSync(file: string): string {
    const content = Object.hasOwn(this.files, file) ? this.files[file] : undefined;
    if (content === undefined) throw new Error(`ENOENT: no template file ${file}`);
    return content;
  }

  readFile(file: string): Promise<string> {
    try {
      return Promise.resolve(this.readFileSync(file));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  resolve(dir: string, file: string, ext: string): string {
    // Unlike liquidjs's node fs (which adds the extension only when the name
    // has none), add it unless already there: the snapshot only holds .liquid
    // files, so 'footer.html' can only mean partials/footer.html.liquid.
    const name = file.endsWith(ext) ? file : file + ext;
    return path.posix.join(dir, name);
  }

  containsSync(root: string, file: string): boolean {
    return root === '.' || file.startsWith(`${root}/`);
  }

  contains(root: string, file: string): Promise<boolean> {
    return Promise.resolve(this.containsSync(root, file));
  }

  dirname(file: string): string {
    return path.posix.dirname(file);
  }
}

export function createEngines(files: Readonly<Record<string, string>>, limits: EngineLimits): Engines {
  const fs = new SnapshotFS(files);
  // A fresh object per engine: liquidjs's normalize() writes the LRU it
  // creates for `cache: true` back into the options object it was given, so
  // a shared object would make the html and plain engines share one cache of
  // parsed partials, and text parts would render with HTML escaping.
  const base = (): LiquidOptions => ({
    fs,
    root: ['.'],
    partials: [PARTIALS_DIR],
    layouts: [LAYOUTS_DIR],
    extname: '.liquid',
    // Only names relative to partials/ and layouts/; "./x" tricks buy nothing.
    relativeReference: false,
    // Partials and layouts are parsed on first use and kept: one parse per
    // engine for the whole campaign rather than one per recipient.
    cache: true,
    // A missing column must fail that message, not send "Hi ," to everyone.
    strictVariables: true,
    // A filter typo must fail the template at import, not be skipped silently.
    strictFilters: true,
    // Recipient data is plain objects; never expose constructor/__proto__.
    ownPropertyOnly: true,
    // DoS bounds (see RenderLimits in compile.ts). renderLimit/memoryLimit here
    // are defaults only: render.ts passes one shared budget per recipient.
    parseLimit: limits.parseLimit,
    renderLimit: limits.renderLimitMs,
    memoryLimit: limits.memoryLimit,
  });
  const plain = new Liquid(base());
  const html = new Liquid({ ...base(), outputEscape: 'escape' });
  makeHtmlFiltersSafe(html);
  // liquidjs's static analysis follows `{% layout 'x' %}` through the
  // *partials* lookup, so the analysis engine must find layouts there too.
  const analysis = new Liquid({ ...base(), partials: [PARTIALS_DIR, LAYOUTS_DIR] });
  return { html, plain, analysis };
}

/**
 * With outputEscape, liquidjs appends an escape to every output unless the
 * last filter is marked raw. Two consequences we fix for the HTML engine:
 * - `{{ x | escape }}` would be escaped twice ("&amp;lt;"); escape filters
 *   produce safe HTML, so they are marked raw.
 * - `{{ notes | newline_to_br }}` would escape its own `<br />`. Here it
 *   escapes its input first, then inserts `<br />`, and is marked raw: the
 *   result is safe HTML whatever the input (even after `| raw`).
 */
function makeHtmlFiltersSafe(html: Liquid): void {
  const escape = handlerOf(html.filters['escape']);
  for (const name of ['escape', 'escape_once', 'xml_escape']) {
    const original = html.filters[name];
    if (original !== undefined) html.registerFilter(name, { handler: handlerOf(original), raw: true });
  }
  html.registerFilter('newline_to_br', {
    raw: true,
    handler(value: unknown) {
      const escaped: unknown = escape.call(this, value);
      const s = String(escaped);
      this.context.memoryLimit.use(s.length);
      return s.replace(/\r?\n/g, '<br />\n');
    },
  });
}

type FilterHandler = Extract<FilterImplOptions, (...args: never[]) => unknown>;

function handlerOf(opt: FilterImplOptions | undefined): FilterHandler {
  if (opt === undefined) throw new Error('liquidjs built-in filter missing');
  return typeof opt === 'function' ? opt : opt.handler;
}

export interface LiquidErrorInfo {
  /** "html.liquid line 3 col 5", when liquidjs knows the position. */
  readonly where: string | undefined;
  /** The underlying message without liquidjs's ", file:…, line:…, col:…" suffix. */
  readonly message: string;
  /** The innermost cause (not a LiquidError), used to classify render failures. */
  readonly cause: unknown;
}

/**
 * Picks the most specific location and message out of a (possibly nested)
 * liquidjs error. `fileOf` maps a token's source text back to its file name:
 * liquidjs leaves `token.file` unset on variable tokens (the ones undefined-
 * variable errors carry), but `token.input` is the whole source of the file.
 */
export function describeLiquidError(err: unknown, fileOf?: (input: string) => string | undefined): LiquidErrorInfo {
  let innermost: LiquidError | undefined;
  let cur: unknown = err;
  while (LiquidError.is(cur)) {
    innermost = cur;
    cur = cur.originalError;
  }
  if (innermost === undefined) {
    return { where: undefined, message: err instanceof Error ? err.message : String(err), cause: err };
  }
  const token = innermost.token;
  const [line, col] = token.getPosition();
  const file = token.file === undefined || token.file === '' ? fileOf?.(token.input) : token.file;
  const suffix = `${token.file === undefined || token.file === '' ? '' : `, file:${token.file}`}, line:${line}, col:${col}`;
  const base = cur instanceof Error ? cur.message : innermost.message;
  const message = base.endsWith(suffix) ? base.slice(0, -suffix.length) : base;
  const where = `${file === undefined || file === '' ? 'template' : file} line ${line} col ${col}`;
  return { where, message, cause: cur ?? innermost };
}
