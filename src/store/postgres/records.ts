/**
 * Rows come back from PostgreSQL with the same column names and JS types as
 * from SQLite (int8 parsed to numbers, see connect.ts), so the recipient
 * mapping and the stored variables encoding are shared with the SQLite backend.
 */
export { MESSAGE_COLUMNS, decodeVars, parseStringArray, parseStringRecord, toMessage, type MessageRecord } from '../sqlite/records.js';

/**
 * PostgreSQL text cannot hold NUL (SQLite can). A rejected cell may be
 * rejected precisely for containing one, and an SMTP reply is whatever the
 * server sent: NUL is stored as U+2400 (␀), which shows where it was.
 */
export function pgText(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\u2400') : value;
}
