/**
 * `mailq report --format csv|json`: one row per recipient, in import order,
 * streamed from the store a page at a time. Category, code and reply are the
 * recipient's last outcome; CSV cells go through csv-write (formula escaping).
 */
import type { MessageState, ReportRow } from '../store/types.js';
import { csvLine } from './csv-write.js';
import type { ReportOutput } from './report-output.js';

export const REPORT_COLUMNS = [
  'address',
  'state',
  'attempts',
  'category',
  'code',
  'reply',
  'sent_at',
  'message_id',
  'possible_duplicate',
] as const;

/** The JSON shape of one row: exactly REPORT_COLUMNS, in that order. */
export interface ReportJsonRow {
  readonly address: string;
  readonly state: MessageState;
  readonly attempts: number;
  readonly category: string | null;
  readonly code: number | null;
  readonly reply: string | null;
  readonly sent_at: string | null;
  readonly message_id: string | null;
  readonly possible_duplicate: boolean;
}

export function toReportJson(r: ReportRow): ReportJsonRow {
  return {
    address: r.address,
    state: r.state,
    attempts: r.attempts,
    category: r.category ?? null,
    code: r.code ?? null,
    reply: r.reply ?? null,
    sent_at: r.sentAt === undefined ? null : new Date(r.sentAt).toISOString(),
    message_id: r.smtpMessageId ?? null,
    possible_duplicate: r.possibleDuplicate,
  };
}

export async function writeCsvReport(rows: AsyncIterable<ReportRow>, out: ReportOutput): Promise<number> {
  await out.write(csvLine(REPORT_COLUMNS));
  let n = 0;
  for await (const r of rows) {
    const j = toReportJson(r);
    await out.write(csvLine([j.address, j.state, j.attempts, j.category, j.code, j.reply, j.sent_at, j.message_id, j.possible_duplicate]));
    n++;
  }
  return n;
}

/** A JSON array written one element at a time (same layout as json-write.ts, with awaited writes). */
export async function writeJsonReport(rows: AsyncIterable<ReportRow>, out: ReportOutput): Promise<number> {
  let n = 0;
  await out.write('[');
  for await (const r of rows) {
    await out.write(`${n === 0 ? '\n' : ',\n'}${JSON.stringify(toReportJson(r))}`);
    n++;
  }
  await out.write(n === 0 ? ']\n' : '\n]\n');
  return n;
}
