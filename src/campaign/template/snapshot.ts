/**
 * A template folder frozen into plain data. The snapshot is what a campaign
 * stores and renders from: after import nothing reads the template folder
 * again, so editing the files mid-campaign cannot change what later
 * recipients receive, and a resume on another host renders the same bytes.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../errors.js';
import { parseTemplateConfig, type TemplateConfig } from './config.js';

export interface TemplateSnapshot {
  readonly version: 1;
  /** Relative posix path -> UTF-8 content, e.g. 'html.liquid', 'partials/footer.liquid'. */
  readonly files: Readonly<Record<string, string>>;
}

export const SUBJECT_FILE = 'subject.liquid';
export const HTML_FILE = 'html.liquid';
export const TEXT_FILE = 'text.liquid';
export const CONFIG_FILE = 'template.json';
export const LAYOUTS_DIR = 'layouts';
export const PARTIALS_DIR = 'partials';
const TOP_LEVEL_FILES = [SUBJECT_FILE, HTML_FILE, TEXT_FILE, CONFIG_FILE] as const;

/** A template file is markup, not data: anything bigger is almost surely a mistake (a pasted image). */
export const MAX_TEMPLATE_FILE_BYTES = 1024 * 1024;
/** Bounds the walk of layouts/ and partials/ (a symlink loop or a huge tree must not hang the import). */
const MAX_SUBDIR_FILES = 500;
const MAX_SUBDIR_DEPTH = 8;

const LAYOUT_HINT = 'a template folder holds subject.liquid, html.liquid and/or text.liquid, template.json, and optional layouts/ and partials/';

/** Loads a template folder into a snapshot, rejecting anything the operator must fix before a send. */
export async function loadTemplateDir(dir: string): Promise<TemplateSnapshot> {
  const dirStat = await stat(dir).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw new InputError(`template folder not found: ${dir}`, LAYOUT_HINT);
    throw new InputError(`cannot read template folder ${dir}: ${errorText(err)}`);
  });
  if (!dirStat.isDirectory()) throw new InputError(`template path is not a folder: ${dir}`, LAYOUT_HINT);

  const files: Record<string, string> = {};
  for (const name of TOP_LEVEL_FILES) {
    const content = await readTemplateFile(path.join(dir, name), true);
    if (content !== undefined) files[name] = content;
  }
  for (const sub of [LAYOUTS_DIR, PARTIALS_DIR]) {
    for (const rel of await listLiquidFiles(dir, sub)) {
      const content = await readTemplateFile(path.join(dir, ...rel.split('/')), false);
      if (content !== undefined) files[rel] = content;
    }
  }
  const snapshot: TemplateSnapshot = { version: 1, files };
  checkSnapshotFiles(snapshot, dir, path.join(dir, CONFIG_FILE));
  return snapshot;
}

/**
 * sha256 over a canonical encoding (keys sorted), so two snapshots with the
 * same files hash the same however their objects were built or stored.
 */
export function snapshotHash(s: TemplateSnapshot): string {
  const names = Object.keys(s.files).sort();
  const canonical = JSON.stringify([s.version, names.map((n) => [n, s.files[n]])]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** Reads a snapshot back (from the database); validates shape and contents like a fresh load. */
export function parseSnapshot(json: string): TemplateSnapshot {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new InputError(`stored template snapshot is not valid JSON: ${errorText(err)}`);
  }
  if (!isPlainObject(value)) throw new InputError('stored template snapshot is not an object');
  if (value['version'] !== 1) {
    throw new InputError(
      `stored template snapshot has unsupported version ${JSON.stringify(value['version'])}`,
      'the campaign was created by a newer mailq; upgrade mailq to send it',
    );
  }
  const rawFiles = value['files'];
  if (!isPlainObject(rawFiles)) throw new InputError('stored template snapshot has no "files" object');
  const files: Record<string, string> = {};
  for (const [name, content] of Object.entries(rawFiles)) {
    if (!isSnapshotPath(name)) throw new InputError(`stored template snapshot has an unexpected file name ${JSON.stringify(name)}`);
    if (typeof content !== 'string') throw new InputError(`stored template snapshot file ${name} is not text`);
    files[name] = content;
  }
  const snapshot: TemplateSnapshot = { version: 1, files };
  checkSnapshotFiles(snapshot, 'stored template snapshot', `${CONFIG_FILE} (stored snapshot)`);
  return snapshot;
}

/**
 * Rules every snapshot obeys whatever its origin; `where` names the folder (or
 * the DB copy) and `configLabel` the template.json in messages.
 */
export function checkSnapshotFiles(s: TemplateSnapshot, where: string, configLabel: string): TemplateConfig {
  const has = (name: string): boolean => Object.hasOwn(s.files, name);
  if (!has(SUBJECT_FILE)) throw new InputError(`template ${where} has no ${SUBJECT_FILE}`, LAYOUT_HINT);
  if (!has(HTML_FILE) && !has(TEXT_FILE)) {
    throw new InputError(`template ${where} has neither ${HTML_FILE} nor ${TEXT_FILE}`, 'a message needs a body: add at least one of them');
  }
  const config = s.files[CONFIG_FILE];
  if (config === undefined) {
    throw new InputError(`template ${where} has no ${CONFIG_FILE}`, `create it with at least {"from": "Name <sender@example.com>"}`);
  }
  return parseTemplateConfig(config, configLabel);
}

/** Names a snapshot may hold: the fixed top-level files, or .liquid files below layouts/ or partials/. */
export function isSnapshotPath(name: string): boolean {
  if ((TOP_LEVEL_FILES as readonly string[]).includes(name)) return true;
  const segments = name.split('/');
  const [top] = segments;
  if (segments.length < 2 || (top !== LAYOUTS_DIR && top !== PARTIALS_DIR) || !name.endsWith('.liquid')) return false;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what we reject
  return segments.every((seg) => seg !== '' && seg !== '.' && seg !== '..' && !/[\\\x00-\x1f]/.test(seg));
}

/** Lists `<sub>/**\/*.liquid` as snapshot paths; hidden entries (.DS_Store, editor swap files) are skipped. */
async function listLiquidFiles(dir: string, sub: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    const abs = path.join(dir, ...rel.split('/'));
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      if (depth === 0 && isErrno(err, 'ENOENT')) return; // layouts/ and partials/ are optional
      if (depth === 0 && isErrno(err, 'ENOTDIR')) throw new InputError(`${abs} must be a folder`, LAYOUT_HINT);
      throw new InputError(`cannot read ${abs}: ${errorText(err)}`);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const childRel = `${rel}/${entry.name}`;
      // Dirent does not follow symlinks; stat does, so a symlinked partial still loads.
      const info = entry.isSymbolicLink() ? await stat(path.join(abs, entry.name)).catch(() => undefined) : entry;
      if (info?.isDirectory()) {
        if (depth + 1 >= MAX_SUBDIR_DEPTH) throw new InputError(`${path.join(abs, entry.name)} is nested too deeply (max ${MAX_SUBDIR_DEPTH} levels)`);
        await walk(childRel, depth + 1);
      } else if (info?.isFile() && entry.name.endsWith('.liquid')) {
        if (!isSnapshotPath(childRel)) throw new InputError(`template file name not supported: ${path.join(abs, entry.name)}`);
        out.push(childRel);
        if (out.length > MAX_SUBDIR_FILES) throw new InputError(`${path.join(dir, sub)} holds more than ${MAX_SUBDIR_FILES} templates`);
      }
    }
  };
  await walk(sub, 0);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads one file as strict UTF-8; `optional` files that do not exist yield undefined. */
async function readTemplateFile(file: string, optional: boolean): Promise<string | undefined> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    if (optional && isErrno(err, 'ENOENT')) return undefined;
    throw new InputError(`cannot read ${file}: ${errorText(err)}`);
  }
  if (!info.isFile()) throw new InputError(`${file} is not a regular file`);
  if (info.size > MAX_TEMPLATE_FILE_BYTES) {
    throw new InputError(`${file} is ${formatMiB(info.size)}; template files are limited to 1 MiB`, 'move large content (images, attachments) out of the template');
  }
  const bytes = await readFile(file).catch((err: unknown) => {
    throw new InputError(`cannot read ${file}: ${errorText(err)}`);
  });
  // Checked again after reading: the file may have grown between stat and read.
  if (bytes.length > MAX_TEMPLATE_FILE_BYTES) throw new InputError(`${file} is larger than 1 MiB`);
  try {
    // fatal: a mis-encoded file (Latin-1 from an old editor) must not turn into U+FFFD in 100k mails.
    // The decoder drops a leading BOM, which would otherwise land in the subject.
    return utf8.decode(bytes);
  } catch {
    throw new InputError(`${file} is not valid UTF-8`, 'save the file with UTF-8 encoding');
  }
}

function formatMiB(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
