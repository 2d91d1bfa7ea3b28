/**
 * Writes a JSON array one element at a time, so an export of a million rows
 * never holds them all in memory.
 */
export async function writeJsonArray<T>(rows: AsyncIterable<T>, toJson: (row: T) => unknown, write: (text: string) => void): Promise<void> {
  let first = true;
  write('[');
  for await (const row of rows) {
    write(`${first ? '\n' : ',\n'}${JSON.stringify(toJson(row))}`);
    first = false;
  }
  write(first ? ']\n' : '\n]\n');
}
