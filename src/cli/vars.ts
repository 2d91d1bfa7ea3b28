import fs from 'node:fs';
import { InputError } from '../errors.js';

/** Liquid identifiers: a name a template can write as {{ name }}. */
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A campaign variable file (release notes, say) is a document, not a dataset: 1 MiB is plenty. */
const MAX_VAR_FILE_BYTES = 1024 * 1024;

function splitPair(flag: string, pair: string): [string, string] {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new InputError(`${flag} "${pair}" is not key=value`, `write it as ${flag} name=value`);
  const key = pair.slice(0, eq);
  if (!VAR_NAME.test(key)) {
    throw new InputError(`${flag} name "${key}" is not a valid variable name`, 'use letters, digits and _, starting with a letter or _');
  }
  return [key, pair.slice(eq + 1)];
}

export function parseVars(pairs: readonly string[], files: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  const set = (flag: string, key: string, value: string): void => {
    if (Object.prototype.hasOwnProperty.call(vars, key)) throw new InputError(`variable "${key}" is given twice (${flag})`);
    vars[key] = value;
  };
  for (const pair of pairs) {
    const [key, value] = splitPair('--var', pair);
    set('--var', key, value);
  }
  for (const pair of files) {
    const [key, file] = splitPair('--var-file', pair);
    let bytes: Buffer;
    try {
      const stat = fs.statSync(file);
      if (!stat.isFile()) throw new InputError(`--var-file ${key}: ${file} is not a file`);
      if (stat.size > MAX_VAR_FILE_BYTES) throw new InputError(`--var-file ${key}: ${file} is over 1 MiB`);
      bytes = fs.readFileSync(file);
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError(`--var-file ${key}: cannot read ${file}: ${(err as Error).message}`);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new InputError(`--var-file ${key}: ${file} is not valid UTF-8`);
    }
    set('--var-file', key, text.replace(/^\uFEFF/, ''));
  }
  return vars;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
