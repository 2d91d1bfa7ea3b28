import type { Command } from 'commander';
import { ExitCode, InputError, isMailqError } from '../errors.js';
import { openStore, resolveDbLocation } from '../store/open-store.js';
import type { Campaign, Store } from '../store/types.js';

export interface GlobalOptions {
  readonly db?: string;
}

/** Writes to stdout; machine-readable output (--json, csv) only ever goes here. */
export function out(text: string): void {
  process.stdout.write(text);
}

/** Human messages, progress and warnings go to stderr so stdout stays clean. */
export function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export async function withStore<T>(cmd: Command, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(resolveDbLocation(globalOptions(cmd).db, process.env));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function requireCampaign(store: Store, name: string): Promise<Campaign> {
  const campaign = await store.getCampaign(name);
  if (campaign === undefined) {
    const names = (await store.listCampaigns()).map((c) => c.campaign.name);
    throw new InputError(
      `no campaign "${name}" in ${store.location}`,
      names.length > 0 ? `campaigns here: ${names.join(', ')}` : 'create one with `mailq import <csv> --campaign <name> --template <dir>`',
    );
  }
  return campaign;
}

/** Refuses a campaign whose import was interrupted: it would look complete but is not. */
export async function requireImportsComplete(store: Store, campaign: Campaign): Promise<void> {
  const pending = await store.pendingImports(campaign.id);
  const first = pending[0];
  if (first !== undefined) {
    throw new InputError(
      `campaign "${campaign.name}" has an unfinished import of ${first.source}`,
      `re-run \`mailq import ${first.source} --campaign ${campaign.name}\` to complete it`,
    );
  }
}

export function reportError(err: unknown): number {
  if (isMailqError(err)) {
    say(`mailq: ${err.message}`);
    if (err.hint !== undefined) say(`  hint: ${err.hint}`);
    return err.exitCode;
  }
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  say(`mailq: internal error (a bug; please report it with this trace)\n${detail}`);
  return ExitCode.internal;
}

export function parseFormat<T extends string>(value: string, allowed: readonly T[], flag = '--format'): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(`${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new InputError(`${flag} must be a positive whole number (got "${value}")`);
  }
  return Number(value);
}
