/**
 * Fixed-size counters for the dashboard model: each one is O(1) per sample
 * (amortised) and holds a constant amount of memory however long the send.
 */

/**
 * Counts per wall-clock second over the last `seconds` seconds: a ring of
 * buckets indexed by second. Adding clears the buckets of the seconds skipped
 * since the last add (at most `seconds` of them), so there is no timer.
 */
export class SecondRing {
  private readonly buckets: Float64Array;
  /** Second (ms / 1000, floored) of the newest bucket; undefined before the first add. */
  private head: number | undefined;

  constructor(private readonly seconds: number) {
    this.buckets = new Float64Array(seconds);
  }

  add(atMs: number, n = 1): void {
    const sec = Math.floor(atMs / 1000);
    const head = this.head;
    if (head === undefined || sec - head >= this.seconds) {
      this.buckets.fill(0);
      this.head = sec;
    } else if (sec > head) {
      for (let s = head + 1; s <= sec; s++) this.buckets[s % this.seconds] = 0;
      this.head = sec;
    } else if (head - sec >= this.seconds) {
      return; // older than the window: already out of every sum
    }
    this.buckets[sec % this.seconds] = (this.buckets[sec % this.seconds] ?? 0) + n;
  }

  /** Sum over the current second of `nowMs` and the `seconds - 1` before it. */
  sum(nowMs: number): number {
    const head = this.head;
    if (head === undefined) return 0;
    const now = Math.floor(nowMs / 1000);
    // The window [now - seconds + 1, now] intersected with the seconds the ring holds.
    const lo = Math.max(now, head) - this.seconds + 1;
    const hi = Math.min(now, head);
    let total = 0;
    for (let s = lo; s <= hi; s++) total += this.buckets[s % this.seconds] ?? 0;
    return total;
  }
}

/**
 * Rate over the last `windowMs` (a whole number of seconds) from a SecondRing:
 * the buckets cover the current partial second plus the whole seconds before
 * it, so the divisor is that exact span, or the time since the start when the
 * run is younger than the window (at least one second, so that three messages
 * in the first 100 ms do not read as 30/s).
 */
export function ringRate(ring: SecondRing, windowMs: number, nowMs: number, startedAt: number): number {
  const covered = windowMs - 1000 + (((nowMs % 1000) + 1000) % 1000);
  const span = Math.max(1000, Math.min(covered, nowMs - startedAt));
  return (ring.sum(nowMs) * 1000) / span;
}

/**
 * The last `capacity` samples (e.g. latencies) and their percentiles. The
 * sort happens in `percentile`, at most once per new sample batch, on a
 * scratch copy: 1,000 numbers sort in ~0.1 ms, well below a 250 ms frame.
 */
export class SampleRing {
  private readonly samples: Float64Array;
  private readonly sorted: Float64Array;
  private count = 0;
  private next = 0;
  private dirty = false;

  constructor(readonly capacity: number) {
    this.samples = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  add(value: number): void {
    this.samples[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    this.dirty = true;
  }

  get size(): number {
    return this.count;
  }

  /** Nearest-rank percentile (p in 0..100) of the samples held; undefined when empty. */
  percentile(p: number): number | undefined {
    if (this.count === 0) return undefined;
    if (this.dirty) {
      this.sorted.set(this.samples.subarray(0, this.count));
      this.sorted.subarray(0, this.count).sort();
      this.dirty = false;
    }
    const rank = Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count)));
    return this.sorted[rank - 1];
  }
}

/**
 * The most frequent strings of a stream in bounded memory: the space-saving
 * algorithm (Metwally, Agrawal, El Abbadi, 2005). At most `capacity` strings
 * are held; a new string replaces the least counted one and inherits its
 * count + 1. Any string seen more than n / capacity times out of n is
 * guaranteed to be held, so the most common reply of a category is kept even
 * when every bounce carries its own text. A miss scans `capacity` (32) counts
 * in a typed array for the minimum: ~0.1 µs.
 */
export class TopStrings {
  private readonly slots = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly counts: Float64Array;

  constructor(readonly capacity: number) {
    this.counts = new Float64Array(capacity);
  }

  add(key: string): void {
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      this.counts[slot] = (this.counts[slot] ?? 0) + 1;
      return;
    }
    if (this.keys.length < this.capacity) {
      this.slots.set(key, this.keys.length);
      this.counts[this.keys.length] = 1;
      this.keys.push(key);
      return;
    }
    let min = 0;
    for (let i = 1; i < this.capacity; i++) if ((this.counts[i] ?? 0) < (this.counts[min] ?? 0)) min = i;
    this.slots.delete(this.keys[min] as string);
    this.slots.set(key, min);
    this.keys[min] = key;
    this.counts[min] = (this.counts[min] ?? 0) + 1;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The string with the highest (possibly over-estimated) count. */
  top(): string | undefined {
    let best = -1;
    for (let i = 0; i < this.keys.length; i++) if (best < 0 || (this.counts[i] ?? 0) > (this.counts[best] ?? 0)) best = i;
    return best < 0 ? undefined : this.keys[best];
  }
}
