/**
 * Turns a snapshot into parsed Liquid templates once per campaign (per worker),
 * so rendering a recipient is only evaluation. Everything the operator can fix
 * in the template (syntax, unknown filters, missing partials, bad template.json,
 * a static From that is not one address) fails here, before any send.
 */
import { LookupType, type Liquid, type Template } from 'liquidjs';
import { InputError } from '../../errors.js';
import { createEngines, describeLiquidError, type Engines } from './liquid-env.js';
import { parseSingleMailbox } from './mailbox.js';
import {
  CONFIG_FILE, HTML_FILE, LAYOUTS_DIR, PARTIALS_DIR, SUBJECT_FILE, TEXT_FILE,
  checkSnapshotFiles, snapshotHash, type TemplateSnapshot,
} from './snapshot.js';

export interface RenderLimits {
  /** Max characters liquidjs parses in one parse call (one file). */
  parseLimit: number;
  /** Wall-clock budget for rendering all parts of one recipient, in ms. */
  renderLimitMs: number;
  /** liquidjs allocation budget (string/array sizes created by filters, ranges) per recipient. */
  memoryLimit: number;
  /** Cap on the rendered subject + headers + bodies of one message, in UTF-8 bytes. */
  maxOutputBytes: number;
}

/**
 * Why these numbers: a hostile or careless template — `{% for i in (1..100000000) %}`
 * or a string doubled by assign/append in a loop — must fail *that* render
 * within a second rather than hang a worker or exhaust its memory mid-send.
 * The range is charged against memoryLimit up front (1e8 > 64e6 fails at
 * once); doubling strings hits memoryLimit after ~26 rounds; a long cheap loop
 * hits the 500 ms clock; whatever gets through is stopped by the output cap.
 * Real newsletters render in well under 10 ms and far below 2 MiB (Gmail
 * clips messages above ~100 KB anyway).
 */
export const defaultRenderLimits: RenderLimits = Object.freeze({
  parseLimit: 1e6,
  renderLimitMs: 500,
  memoryLimit: 64e6,
  maxOutputBytes: 2 * 1024 * 1024,
});

/** One parsed template plus the engine that must render it (escaping differs). */
export interface CompiledPart {
  /** File name used in messages: 'html.liquid', 'template.json from', … */
  readonly label: string;
  readonly engine: Liquid;
  readonly templates: Template[];
  /**
   * The output when the source has no Liquid tag or output at all (a fixed
   * From, Reply-To or header, as most are): the same for every recipient,
   * so it is not rendered again for each.
   */
  readonly constant: string | undefined;
}

export interface CompiledHeader {
  readonly name: string;
  readonly value: CompiledPart;
}

/** Treat as opaque outside src/campaign/template: fields may change. */
export interface CompiledTemplate {
  readonly snapshotHash: string;
  readonly limits: Readonly<RenderLimits>;
  readonly subject: CompiledPart;
  readonly html: CompiledPart | undefined;
  readonly text: CompiledPart | undefined;
  readonly from: CompiledPart;
  readonly replyTo: CompiledPart | undefined;
  readonly headers: readonly CompiledHeader[];
  /** Sorted top-level variable names the template reads (computed once). */
  readonly variables: readonly string[];
  /** Source text -> file label, to name files in errors (see describeLiquidError). */
  readonly sourceLabels: ReadonlyMap<string, string>;
}

/** Loop objects liquidjs provides itself; analysis reports them when used outside their loop. */
const BUILTIN_NAMES = new Set(['forloop', 'tablerowloop']);

export function compileTemplate(s: TemplateSnapshot, limits?: Partial<RenderLimits>): CompiledTemplate {
  const effective = mergeLimits(limits);
  const config = checkSnapshotFiles(s, 'snapshot', CONFIG_FILE);
  const engines = createEngines(s.files, effective);

  const sources: Array<{ label: string; source: string; engine: Liquid }> = [];
  const add = (label: string, source: string | undefined, engine: Liquid): CompiledPart | undefined => {
    if (source === undefined) return undefined;
    sources.push({ label, source, engine });
    const constant = source.includes('{{') || source.includes('{%') ? undefined : source;
    return { label, engine, templates: parseOrThrow(engine, source, label), constant };
  };
  const subject = add(SUBJECT_FILE, s.files[SUBJECT_FILE], engines.plain);
  const html = add(HTML_FILE, s.files[HTML_FILE], engines.html);
  const text = add(TEXT_FILE, s.files[TEXT_FILE], engines.plain);
  const from = add(`${CONFIG_FILE} from`, config.from, engines.plain);
  const replyTo = add(`${CONFIG_FILE} replyTo`, config.replyTo, engines.plain);
  const headers: CompiledHeader[] = [];
  for (const [name, source] of config.headers) {
    const value = add(`${CONFIG_FILE} headers.${name}`, source, engines.plain);
    if (value !== undefined) headers.push({ name, value });
  }
  if (subject === undefined || from === undefined) throw new Error('unreachable: checked by checkSnapshotFiles');

  checkStaticFrom(config.from);
  warmIncludes(s, engines);
  const variables = analyzeVariables(engines.analysis, sources);
  const sourceLabels = new Map<string, string>();
  for (const { label, source } of sources) if (!sourceLabels.has(source)) sourceLabels.set(source, label);
  for (const [file, content] of Object.entries(s.files)) if (!sourceLabels.has(content)) sourceLabels.set(content, file);

  return {
    snapshotHash: snapshotHash(s),
    limits: Object.freeze(effective),
    subject, html, text, from, replyTo, headers,
    variables: Object.freeze(variables),
    sourceLabels,
  };
}

/**
 * Sorted unique top-level names the template reads from the recipient row or
 * campaign variables: across subject, bodies, template.json values, layouts
 * and partials; names set by assign/capture/for/increment are excluded.
 */
export function templateVariables(c: CompiledTemplate): string[] {
  return [...c.variables];
}

function mergeLimits(limits: Partial<RenderLimits> | undefined): RenderLimits {
  const merged: RenderLimits = { ...defaultRenderLimits };
  for (const key of Object.keys(defaultRenderLimits) as Array<keyof RenderLimits>) {
    const v = limits?.[key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v <= 0) throw new InputError(`render limit ${key} must be a positive number, got ${v}`);
    merged[key] = v;
  }
  return merged;
}

function parseOrThrow(engine: Liquid, source: string, label: string): Template[] {
  try {
    // The label becomes the token's file, so later render errors name it too.
    return engine.parse(source, label);
  } catch (err) {
    throw templateError(err, label);
  }
}

/** "template html.liquid line 3 col 5: undefined filter: upcas" */
function templateError(err: unknown, fallbackLabel: string): InputError {
  const info = describeLiquidError(err);
  const missing = missingInclude(info.cause);
  if (missing !== undefined) {
    return new InputError(
      `template ${info.where ?? fallbackLabel}: "${missing}" not found`,
      `{% render %} and {% include %} look in ${PARTIALS_DIR}/, {% layout %} in ${LAYOUTS_DIR}/ (name without .liquid)`,
    );
  }
  const hint = /limit exceeded$/.test(info.message) ? `the template is too large (parseLimit)` : undefined;
  return new InputError(`template ${info.where ?? fallbackLabel}: ${info.message}`, hint);
}

/** The file name liquidjs failed to find, from its ENOENT lookup error. */
export function missingInclude(cause: unknown): string | undefined {
  if (!(cause instanceof Error) || (cause as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
  const m = /Failed to lookup "([^"]*)"/.exec(cause.message);
  return m?.[1] ?? cause.message;
}

/** A From without Liquid is the same for every recipient: check it now, not 100k times. */
function checkStaticFrom(source: string): void {
  if (source.includes('{{') || source.includes('{%')) return;
  const r = parseSingleMailbox(source);
  if (!r.ok) {
    throw new InputError(`${CONFIG_FILE}: "from" ${r.problem}`, 'use one address, for example "Acme News <news@acme.test>"');
  }
}

/**
 * Parses every partial and layout with both render engines now: syntax errors
 * in them surface at import with their file name, and the engines' caches
 * hold the parsed result for every recipient (keyed like `{% render 'name' %}`).
 */
function warmIncludes(s: TemplateSnapshot, engines: Engines): void {
  for (const file of Object.keys(s.files).sort()) {
    const dir = file.startsWith(`${PARTIALS_DIR}/`) ? PARTIALS_DIR : file.startsWith(`${LAYOUTS_DIR}/`) ? LAYOUTS_DIR : undefined;
    if (dir === undefined) continue;
    const name = file.slice(dir.length + 1, -'.liquid'.length);
    const type = dir === PARTIALS_DIR ? LookupType.Partials : LookupType.Layouts;
    for (const engine of [engines.html, engines.plain]) {
      try {
        engine.parseFileSync(name, type);
      } catch (err) {
        throw templateError(err, file);
      }
    }
  }
}

function analyzeVariables(engine: Liquid, sources: ReadonlyArray<{ label: string; source: string }>): string[] {
  const names = new Set<string>();
  for (const { label, source } of sources) {
    let found: string[];
    try {
      // partials: true follows render/include/layout with literal names, and
      // maps `{% render 'x', a: b %}` arguments back to the caller's `b`.
      found = engine.globalVariablesSync(engine.parse(source, label), { partials: true });
    } catch (err) {
      throw templateError(err, label);
    }
    for (const name of found) if (!BUILTIN_NAMES.has(name)) names.add(name);
  }
  return [...names].sort();
}
