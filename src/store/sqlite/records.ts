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
 */
export function decodeVars(varsJson: string, columnsJson: string): Record<string, string> {
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
  });
  return out;
}
