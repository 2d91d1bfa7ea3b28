/**
 * The time axis of the "sends per minute" chart. A campaign may last 40
 * seconds against a local sink or three days of retries; buckets are chosen
 * from round sizes so the chart has at most 60 columns (~16 px each at 1000 px:
 * at 120, one-second buckets of a 4/s send were too jagged to read) and the SQL
 * returns at most that many rows.
 */
import { utc } from './escape.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const BUCKET_STEPS_MS: readonly number[] = [
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY,
];

export const MAX_BUCKETS = 60;

export interface TimelineAxis {
  /** Start of the first bucket, aligned to a multiple of bucketMs (UTC). */
  readonly fromMs: number;
  readonly bucketMs: number;
  readonly count: number;
}

export function chooseAxis(firstMs: number, lastMs: number, maxBuckets = MAX_BUCKETS): TimelineAxis {
  const span = Math.max(0, lastMs - firstMs);
  let bucketMs = BUCKET_STEPS_MS.find((b) => alignedCount(firstMs, lastMs, b) <= maxBuckets);
  // Longer than ~a year of 7-day buckets: whole multiples of a week.
  bucketMs ??= Math.ceil(span / (maxBuckets - 1) / (7 * DAY)) * 7 * DAY;
  const fromMs = Math.floor(firstMs / bucketMs) * bucketMs;
  return { fromMs, bucketMs, count: alignedCount(firstMs, lastMs, bucketMs) };
}

function alignedCount(firstMs: number, lastMs: number, bucketMs: number): number {
  return Math.floor(lastMs / bucketMs) - Math.floor(firstMs / bucketMs) + 1;
}

/** One short label per bucket; the date is shown only when the axis spans more than one day. */
export function axisLabels(axis: TimelineAxis): string[] {
  const multiDay = Math.floor(axis.fromMs / DAY) !== Math.floor((axis.fromMs + axis.count * axis.bucketMs - 1) / DAY);
  return Array.from({ length: axis.count }, (_, i) => {
    const text = utc(axis.fromMs + i * axis.bucketMs, axis.bucketMs < MINUTE); // "YYYY-MM-DD HH:MM[:SS] UTC"
    const date = text.slice(5, 10);
    const time = text.slice(11, -4);
    if (axis.bucketMs >= DAY) return text.slice(0, 10);
    return multiDay ? `${date} ${time}` : time;
  });
}

export function bucketName(bucketMs: number): string {
  if (bucketMs < MINUTE) return `${bucketMs / SECOND} s`;
  if (bucketMs < HOUR) return `${bucketMs / MINUTE} min`;
  if (bucketMs < DAY) return `${bucketMs / HOUR} h`;
  return `${bucketMs / DAY} d`;
}
