import type { EngineEvent } from '../engine/events.js';

/**
 * --json: one JSON object per line on stdout, for machines. Per-message events
 * are left out (a million lines help nobody); `status`, `failures` and
 * `report` give per-recipient detail. Schema: README, "NDJSON events".
 */
const FORWARDED: ReadonlySet<EngineEvent['type']> = new Set([
  'run-started',
  'progress',
  'domain-throttled',
  'domain-resumed',
  'breaker-tripped',
  'leasing-paused',
  'leasing-resumed',
  'alert',
  'stopping',
  'lease-lost',
  'run-finished',
]);

export function ndjsonReporter(write: (line: string) => void): (e: EngineEvent) => void {
  return (e) => {
    if (!FORWARDED.has(e.type)) return;
    write(`${JSON.stringify({ ...e, at: new Date(e.at).toISOString() })}\n`);
  };
}
