import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { Campaign, ImportRun, Store } from '../store/types.js';
import { openCsv, type CsvDelimiter, type CsvEncoding, type CsvSource } from './csv-reader.js';
import { splitCsv, type CsvSplit } from './csv-split.js';
import type { ImportWorkerInput } from './import-protocol.js';
import { PartPump, prestartImportWorker } from './import-pump.js';
import { compileTemplate } from './template/compile.js';
import { loadTemplateDir, snapshotHash, type TemplateSnapshot } from './template/snapshot.js';

/**
 * Rows per transaction. Measured on 1,000,000 rows: 5,000 took 8.6 s,
 * 10,000 about 8.2 s, 20,000 7.6 s but +40 MB of peak RSS (two batches are
 * in flight). A kill -9 loses at most the batch in progress, and that is
 * work, not data: the re-run reads it again.
 */
const BATCH_SIZE = 10_000;

/**
 * Files smaller than this are read by the main thread alone: a worker costs
 * ~30 ms to start, more than it saves on a few MB.
 */
const SPLIT_MIN_BYTES = 8 * 1024 * 1024;
/**
 * Size of the parts the two threads take turns at: at the end, one thread
 * waits at most for the other to finish one part (~0.2 s at 2 MiB).
 */
const PART_BYTES = 2 * 1024 * 1024;
/**
 * The last two parts are cut in four (512 KiB each): the wait at the end is
 * then at most a quarter part. With 2 MiB parts up to the end, the worker
 * finished up to 270 ms before the main thread on 1,000,000 rows.
 */
const FINE_TAIL = { parts: 2, pieces: 4 };

/** Exposed so that tests can split small files. */
export const importTuning = { splitMinBytes: SPLIT_MIN_BYTES, partBytes: PART_BYTES };

/** The parts of the file; one part (the whole file) when it is small. */
async function planParts(source: string, csv: CsvSource): Promise<CsvSplit> {
  const { size } = await stat(source);
  const { dataStart, dataLine } = csv.layout;
  // One part is read whole, CR or not: no pass over the file for it.
  if (size < importTuning.splitMinBytes) return { parts: [{ start: dataStart, end: size, line: dataLine }], carriageReturn: true };
  return splitCsv(source, csv.layout, Math.ceil((size - dataStart) / importTuning.partBytes), FINE_TAIL);
}

/**
 * Call first thing: a file that will be read on two threads gets its worker
 * started now. Only a hint; importCsv reports any problem with the file.
 */
export function prepareImport(csvPath: string): void {
  try {
    if (statSync(csvPath).size >= importTuning.splitMinBytes) prestartImportWorker();
  } catch {
    // Missing or unreadable: importCsv says so, with the path.
  }
}

export interface ImportOptions {
  readonly csvPath: string;
  readonly campaign: string;
  readonly templateDir?: string;
  readonly emailColumn?: string;
  readonly delimiter?: CsvDelimiter;
  readonly encoding?: CsvEncoding;
  readonly maxFieldBytes?: number;
  /** Campaign-wide variables (from --var and --var-file), merged over the campaign's. */
  readonly vars?: Readonly<Record<string, string>>;
}

export interface ImportSummary {
  readonly campaign: string;
  readonly imported: number;
  readonly duplicates: number;
  readonly rejected: number;
  readonly total: number;
  /** Imported recipients already on the suppression list (they will not be sent). */
  readonly suppressed: number;
  readonly rejectedByReason: Readonly<Record<string, number>>;
  /** The import continued a run that an earlier, interrupted import left unfinished. */
  readonly resumed: boolean;
  readonly createdCampaign: boolean;
}

export type ImportEvent =
  | { readonly type: 'import-started'; readonly source: string; readonly resumed: boolean }
  | { readonly type: 'import-progress'; readonly records: number };

function findEmailColumn(file: string, columns: readonly string[], wanted: string): number {
  const target = wanted.trim().toLowerCase();
  const index = columns.findIndex((c) => c.trim().toLowerCase() === target);
  if (index < 0) {
    const found = columns.map((c) => JSON.stringify(c)).join(', ');
    throw new InputError(
      `${file}:1: no "${wanted}" column; columns found: ${found}`,
      'name the address column with --email-column <name>',
    );
  }
  return index;
}

/** Loads and compiles the template so that a broken template fails before anything is written. */
async function loadCheckedTemplate(dir: string): Promise<TemplateSnapshot> {
  const snapshot = await loadTemplateDir(dir);
  compileTemplate(snapshot);
  return snapshot;
}

async function resolveCampaign(
  store: Store,
  options: ImportOptions,
): Promise<{ campaign: Campaign | undefined; snapshot: TemplateSnapshot | undefined }> {
  const existing = await store.getCampaign(options.campaign);
  if (options.templateDir === undefined) {
    if (existing === undefined) {
      throw new InputError(
        `campaign "${options.campaign}" does not exist yet`,
        'give --template <dir> to create it with that template',
      );
    }
    return { campaign: existing, snapshot: undefined };
  }
  const snapshot = await loadCheckedTemplate(options.templateDir);
  if (existing !== undefined && existing.templateHash !== snapshotHash(snapshot)) {
    throw new InputError(
      `template ${options.templateDir} differs from the snapshot stored in campaign "${options.campaign}"`,
      `run \`mailq refresh-template --campaign ${options.campaign} --template ${options.templateDir}\` to replace it on purpose, or leave out --template`,
    );
  }
  return { campaign: existing, snapshot };
}

function checkVarCollisions(file: string, columns: readonly string[], vars: Readonly<Record<string, string>>): void {
  const names = new Set(columns.map((c) => c.trim()));
  for (const key of Object.keys(vars)) {
    if (names.has(key)) {
      throw new InputError(
        `campaign variable "${key}" has the same name as a column of ${file}`,
        'rename the --var / --var-file variable or the column: one name, one meaning',
      );
    }
  }
}

/** Checks the template and variables, then creates the campaign or updates its variables. */
async function prepareCampaign(
  store: Store,
  options: ImportOptions,
  columns: readonly string[],
): Promise<{ campaign: Campaign; createdCampaign: boolean }> {
  const newVars = options.vars ?? {};
  const resolved = await resolveCampaign(store, options);
  const mergedVars = { ...(resolved.campaign?.vars ?? {}), ...newVars };
  checkVarCollisions(options.csvPath, columns, mergedVars);
  if (resolved.campaign !== undefined) {
    if (Object.keys(newVars).length > 0) await store.setCampaignVars(resolved.campaign.id, mergedVars);
    return { campaign: resolved.campaign, createdCampaign: false };
  }
  const snapshot = resolved.snapshot;
  if (snapshot === undefined || options.templateDir === undefined) throw new Error('template missing for a new campaign');
  const campaign = await store.createCampaign({
    name: options.campaign,
    templateJson: JSON.stringify(snapshot),
    templateHash: snapshotHash(snapshot),
    templateSource: path.resolve(options.templateDir),
    vars: mergedVars,
  });
  return { campaign, createdCampaign: true };
}

/**
 * Streams a recipient CSV into a campaign. Everything that can be checked
 * before writing (file, header, template, variables) is checked first; a
 * problem found mid-file (unclosed quote, oversized field, bad encoding)
 * removes what this run inserted, so nothing is ever half-imported.
 */
export async function importCsv(
  store: Store,
  options: ImportOptions,
  onEvent: (event: ImportEvent) => void = () => undefined,
): Promise<ImportSummary> {
  const source = path.resolve(options.csvPath);
  const csv = await openCsv(source, {
    ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
    ...(options.encoding === undefined ? {} : { encoding: options.encoding }),
    ...(options.maxFieldBytes === undefined ? {} : { maxFieldBytes: options.maxFieldBytes }),
  });
  const columns = csv.columns.map((c) => c.trim());
  const emailIndex = findEmailColumn(options.csvPath, columns, options.emailColumn ?? 'email');

  // The worker starts reading before the campaign is prepared (template
  // compiled, campaign and run written): it parses ahead, up to its batches
  // in flight, instead of waiting ~50 ms for its first part. Nothing is
  // inserted before the run exists, and a template error still comes first.
  const { parts, carriageReturn } = await planParts(source, csv);
  const input: ImportWorkerInput = {
    path: source,
    delimiter: csv.delimiter,
    encoding: options.encoding ?? 'utf-8',
    maxFieldBytes: options.maxFieldBytes,
    columns,
    emailIndex,
    batchSize: BATCH_SIZE,
    lfOnly: parts.length > 1 && !carriageReturn,
  };
  let run: ImportRun | undefined;
  let rejected = 0;
  const rejectedByReason: Record<string, number> = {};
  const pump = new PartPump(
    input,
    parts,
    async (rows, rejects, records) => {
      if (run === undefined) throw new Error('an import batch came before its run began');
      await store.insertBatch(run, rows, rejects);
      for (const r of rejects) {
        rejected++;
        rejectedByReason[r.reason] = (rejectedByReason[r.reason] ?? 0) + 1;
      }
      onEvent({ type: 'import-progress', records });
    },
    store.insertsInProcess,
    () => (run === undefined ? Promise.resolve() : store.importEndInSight(run.id)),
  );
  pump.start();

  let prepared: { campaign: Campaign; createdCampaign: boolean };
  try {
    prepared = await prepareCampaign(store, options, columns);
    run = await store.beginImport(prepared.campaign.id, source, columns);
  } catch (err) {
    pump.stop();
    throw err;
  }
  const { campaign, createdCampaign } = prepared;
  onEvent({ type: 'import-started', source, resumed: run.resumed });
  let total = 0;
  try {
    total = await pump.run();
    if (total === 0) {
      throw new InputError(`${options.csvPath} has a header but no data rows`, 'add recipients below the header line');
    }
  } catch (err) {
    await store.abortImport(run.id);
    if (createdCampaign) await store.deleteEmptyCampaign(campaign.id);
    throw err;
  }

  const tally = await store.finishImport(run.id, { rejected, total });
  return {
    campaign: campaign.name,
    imported: tally.imported,
    duplicates: tally.duplicates,
    rejected,
    total,
    suppressed: tally.suppressed,
    rejectedByReason,
    resumed: run.resumed,
    createdCampaign,
  };
}
