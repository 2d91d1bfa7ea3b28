import type { MessageRow, MessageState } from '../types.js';

/** A recipient row as the message queries select it (see MESSAGE_COLUMNS). */
export interface MessageRecord {
  id: number;
  campaign_id: number;
  line: number;
  source: string;
  address: string;
  address_key: string;
  domain: string;
  vars_json: string;
  columns_json: string;
  state: string;
  attempts: number;
}

/** The columns a MessageRecord needs: messages m joined with import_runs r. */
export const MESSAGE_COLUMNS = `m.id, m.campaign_id, m.line, r.source, m.address, m.address_key, m.domain,
  m.vars_json, r.columns_json, m.state, m.attempts`;

export function toMessage(r: MessageRecord): MessageRow {
  return {
    id: r.id,
    campaignId: r.campaign_id,
    line: r.line,
    source: r.source,
    address: r.address,
    addressKey: r.address_key,
    domain: r.domain,
    vars: decodeVars(r.vars_json, r.columns_json, r.address),
    state: r.state as MessageState,
    attempts: r.attempts,
  };
}

/** Decoding of JSON columns written by the store itself. */
export function parseStringRecord(json: string): Record<string, string> {
  const value: unknown = JSON.parse(json);
  const out: Record<string, string> = {};
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string') out[k] = v;
    }
  }
  return out;
}

export function parseStringArray(json: string): string[] {
  const value: unknown = JSON.parse(json);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

const columnsCache = new Map<string, string[]>();

/**
 * A recipient's variables are stored as a JSON array of values aligned with
 * its import run's columns: one JSON.stringify of an array per row, about a
 * third of the cost of an object with repeated keys on a 1,000,000-row import.
 * The address column's value is stored as null: it is the row's normalized
 * address, which the row already holds (~30 bytes a row saved).
 */
export function decodeVars(varsJson: string, columnsJson: string, address: string): Record<string, string> {
  const values: unknown = JSON.parse(varsJson);
  if (!Array.isArray(values)) return parseStringRecord(varsJson);
  let columns = columnsCache.get(columnsJson);
  if (columns === undefined) {
    columns = parseStringArray(columnsJson);
    if (columnsCache.size > 100) columnsCache.clear();
    columnsCache.set(columnsJson, columns);
  }
  const out: Record<string, string> = {};
  columns.forEach((c, i) => {
    const v: unknown = values[i];
    if (typeof v === 'string') out[c] = v;
    else if (v === null) out[c] = address;
  });
  return out;
}
