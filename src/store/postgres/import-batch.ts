import type { PoolClient } from 'pg';
import { addressKeyOf, domainOf } from '../../campaign/address.js';
import type { ImportRun, RecipientInsert, RejectInsert } from '../types.js';
import { statement, type Queryable } from './db.js';
import { pgText } from './records.js';

/**
 * How one import batch (10,000 rows from src/campaign/import.ts) goes into
 * `messages`. All three insert with ON CONFLICT on (campaign_id, address_key):
 * a duplicate changes nothing, except that within one run the lowest line
 * wins (see Store.insertBatch). Measured on 100,000 rows (bench/postgres/import.mjs
 * --compare; figures in docs/pg-part.md):
 *   copy    COPY into a per-connection temp table, then INSERT … SELECT
 *   unnest  one INSERT … SELECT FROM unnest($3::int[], …): 7 parameters per batch
 *   values  multi-row INSERT … VALUES of 1,000 rows (5,000 parameters) per statement
 */
export const importMethods = ['copy', 'unnest', 'values'] as const;
export type ImportMethod = (typeof importMethods)[number];

const COLUMNS = `(campaign_id, import_run_id, line, address, address_key, domain, vars_json)`;
const ON_CONFLICT = `ON CONFLICT (campaign_id, address_key) DO UPDATE SET
  line = EXCLUDED.line, address = EXCLUDED.address, domain = EXCLUDED.domain, vars_json = EXCLUDED.vars_json
  WHERE messages.import_run_id = EXCLUDED.import_run_id AND EXCLUDED.line < messages.line`;

/** A row with its key and domain derived (see RecipientInsert). */
interface KeyedRow extends RecipientInsert {
  readonly addressKey: string;
  readonly domain: string;
}

/**
 * One row per address, the lowest line: DO UPDATE refuses to touch a row
 * twice in one statement, so duplicates inside a batch are settled here.
 * The key is derived here rather than with lower() in SQL, whose result
 * depends on the database's locale (Turkish lowers 'I' to a dotless 'ı').
 */
function firstPerAddress(rows: Iterable<RecipientInsert>): KeyedRow[] {
  const seen = new Map<string, KeyedRow>();
  for (const r of rows) {
    const addressKey = addressKeyOf(r.address);
    const had = seen.get(addressKey);
    if (had === undefined || r.line < had.line) seen.set(addressKey, { ...r, addressKey, domain: domainOf(r.address) });
  }
  return [...seen.values()];
}

const UNNEST = statement(
  'import_unnest',
  `INSERT INTO messages ${COLUMNS}
   SELECT $1, $2, l, a, k, d, v FROM unnest($3::integer[], $4::text[], $5::text[], $6::text[], $7::text[]) AS t(l, a, k, d, v)
   ${ON_CONFLICT}`,
);

/** Rows per multi-row VALUES statement: 5,000 parameters, well under PostgreSQL's 65,535. */
const VALUES_CHUNK = 1000;

function valuesStatement(rows: number): { name: string; text: string } {
  const tuples: string[] = [];
  for (let i = 0; i < rows; i++) {
    const p = 3 + i * 5;
    tuples.push(`($1, $2, $${p}, $${p + 1}, $${p + 2}, $${p + 3}, $${p + 4})`);
  }
  return statement(`import_values_${rows}`, `INSERT INTO messages ${COLUMNS} VALUES ${tuples.join(', ')} ${ON_CONFLICT}`);
}

const STAGE = 'mailq_import_stage';
const STAGE_TABLE = `CREATE TEMP TABLE IF NOT EXISTS ${STAGE} (
  line INTEGER, address TEXT, address_key TEXT, domain TEXT, vars_json TEXT) ON COMMIT DELETE ROWS`;
const FROM_STAGE = statement(
  'import_from_stage',
  `INSERT INTO messages ${COLUMNS} SELECT $1, $2, line, address, address_key, domain, vars_json FROM ${STAGE} ${ON_CONFLICT}`,
);

/** COPY text format: backslash, tab, newline and carriage return are escaped. */
function copyField(value: string): string {
  return /[\\\t\n\r]/.test(value)
    ? value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
    : value;
}

async function copyRows(client: PoolClient, q: Queryable, run: ImportRun, rows: readonly KeyedRow[]): Promise<void> {
  // Every batch: the table lives as long as the connection, but its creation
  // is undone with the transaction of a batch that failed, so "this client
  // has it" cannot be remembered. IF NOT EXISTS is one catalog lookup.
  await client.query(STAGE_TABLE);
  const { from } = (await import('pg-copy-streams')).default;
  const stream = client.query(from(`COPY ${STAGE} (line, address, address_key, domain, vars_json) FROM STDIN`));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  // ~64 KiB writes: few enough calls, and the socket's buffer never holds the whole batch twice.
  let chunk = '';
  for (const r of rows) {
    chunk += `${r.line}\t${copyField(r.address)}\t${copyField(r.addressKey)}\t${copyField(r.domain)}\t${copyField(r.varsJson)}\n`;
    if (chunk.length > 65_536) {
      if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
      chunk = '';
    }
  }
  stream.end(chunk);
  await done;
  await q.count(FROM_STAGE, [run.campaignId, run.id]);
}

async function unnestRows(q: Queryable, run: ImportRun, rows: readonly KeyedRow[]): Promise<void> {
  await q.count(UNNEST, [
    run.campaignId,
    run.id,
    rows.map((r) => r.line),
    rows.map((r) => r.address),
    rows.map((r) => r.addressKey),
    rows.map((r) => r.domain),
    rows.map((r) => r.varsJson),
  ]);
}

async function valuesRows(q: Queryable, run: ImportRun, rows: readonly KeyedRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += VALUES_CHUNK) {
    const part = rows.slice(i, i + VALUES_CHUNK);
    const values: unknown[] = [run.campaignId, run.id];
    for (const r of part) values.push(r.line, r.address, r.addressKey, r.domain, r.varsJson);
    await q.count(valuesStatement(part.length), values);
  }
}

/** Inserts a batch's recipients inside the caller's transaction. */
export function insertRecipients(
  method: ImportMethod,
  client: PoolClient,
  q: Queryable,
  run: ImportRun,
  rows: Iterable<RecipientInsert>,
): Promise<void> {
  const unique = firstPerAddress(rows);
  if (unique.length === 0) return Promise.resolve();
  switch (method) {
    case 'copy':
      return copyRows(client, q, run, unique);
    case 'unnest':
      return unnestRows(q, run, unique);
    case 'values':
      return valuesRows(q, run, unique);
  }
}

const REJECTS = statement(
  'import_rejects',
  `INSERT INTO import_rejects (campaign_id, import_run_id, source, line, raw, reason, message)
   SELECT $1, $2, $3, l, w, r, m FROM unnest($4::integer[], $5::text[], $6::text[], $7::text[]) AS t(l, w, r, m)
   ON CONFLICT (campaign_id, source, line) DO NOTHING`,
);

export async function insertRejects(q: Queryable, run: ImportRun, rejects: readonly RejectInsert[]): Promise<void> {
  if (rejects.length === 0) return;
  await q.count(REJECTS, [
    run.campaignId,
    run.id,
    run.source,
    rejects.map((r) => r.line),
    rejects.map((r) => pgText(r.raw)),
    rejects.map((r) => r.reason),
    rejects.map((r) => pgText(r.message)),
  ]);
}
