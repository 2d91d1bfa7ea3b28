// The baseline: csv-parse streaming the same file with default options,
// counting records and nothing else.
import fs from 'node:fs';
import { parse } from 'csv-parse';

let records = 0;
for await (const record of fs.createReadStream(process.argv[2], { highWaterMark: 256 * 1024 }).pipe(parse())) {
  if (record.length > 0) records++;
}
process.stdout.write(`${JSON.stringify({ records: records - 1 })}\n`);
