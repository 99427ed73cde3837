/**
 * Latency percentiles over a sliding time window, from a log-bucketed histogram.
 *
 * Recording is O(1): one logarithm and two array increments. The window is a ring of sub-windows; an
 * aggregate holds their sum, so expiring the oldest sub-window subtracts it instead of re-summing. A
 * percentile walks the buckets (a few hundred) and is cached per sub-window, so admission reads a
 * number instead of sorting samples per request. Buckets grow by 2^(1/8) (about 9% relative error),
 * from 1 µs to about 17 minutes.
 */
const BUCKETS_PER_DOUBLING = 8
const BUCKET_COUNT = 30 * BUCKETS_PER_DOUBLING

function bucketOf(ms: number): number {
  const micros = ms * 1000
  if (!(micros > 1)) return 0
  const index = Math.floor(Math.log2(micros) * BUCKETS_PER_DOUBLING)
  return index < BUCKET_COUNT ? index : BUCKET_COUNT - 1
}

/** Upper bound of a bucket, in ms: a percentile is never reported lower than the samples in it. */
function bucketUpperMs(index: number): number {
  return 2 ** ((index + 1) / BUCKETS_PER_DOUBLING) / 1000
}

export class LatencyWindow {
  private readonly slots: Uint32Array[]
  private readonly total = new Uint32Array(BUCKET_COUNT)
  private readonly slotMs: number
  private current = 0
  private currentEndsAt: number
  private totalCount = 0
  private readonly slotCounts: number[]
  private cachedPercentile = -1

  constructor(
    windowMs: number,
    slotCount: number,
    private readonly percentile: number,
    now: number,
  ) {
    this.slotMs = windowMs / slotCount
    this.slots = Array.from({ length: slotCount }, () => new Uint32Array(BUCKET_COUNT))
    this.slotCounts = new Array<number>(slotCount).fill(0)
    this.currentEndsAt = now + this.slotMs
  }

  get count(): number {
    return this.totalCount
  }

  record(ms: number, now: number): void {
    if (now >= this.currentEndsAt) this.rotate(now)
    const bucket = bucketOf(ms)
    const slot = this.slots[this.current] as Uint32Array
    slot[bucket] = (slot[bucket] as number) + 1
    this.total[bucket] = (this.total[bucket] as number) + 1
    this.slotCounts[this.current] = (this.slotCounts[this.current] as number) + 1
    this.totalCount++
  }

  /**
   * The configured percentile in ms over the window, or 0 with fewer than `minSamples` samples (one slow
   * request must never look like a slow server). Cached until the window moves.
   */
  value(now: number, minSamples: number): number {
    if (now >= this.currentEndsAt) this.rotate(now)
    if (this.totalCount < minSamples) return 0
    if (this.cachedPercentile < 0) this.cachedPercentile = this.compute(this.percentile)
    return this.cachedPercentile
  }

  /** Any percentile (0–1) over the window, computed now; for stats, not the hot path. */
  quantile(q: number, now: number): number {
    if (now >= this.currentEndsAt) this.rotate(now)
    if (this.totalCount === 0) return 0
    return this.compute(q)
  }

  private compute(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.totalCount))
    let seen = 0
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.total[i] as number
      if (seen >= rank) return bucketUpperMs(i)
    }
    return bucketUpperMs(BUCKET_COUNT - 1)
  }

  private rotate(now: number): void {
    const slotCount = this.slots.length
    // Skip as many slots as whole periods passed; after a full window of silence every slot is stale.
    const periods = Math.floor((now - this.currentEndsAt) / this.slotMs) + 1
    const steps = Math.min(slotCount, periods)
    for (let step = 0; step < steps; step++) {
      this.current = (this.current + 1) % slotCount
      const slot = this.slots[this.current] as Uint32Array
      if ((this.slotCounts[this.current] as number) > 0) {
        for (let i = 0; i < BUCKET_COUNT; i++) {
          const n = slot[i] as number
          if (n !== 0) {
            this.total[i] = (this.total[i] as number) - n
            slot[i] = 0
          }
        }
        this.totalCount -= this.slotCounts[this.current] as number
        this.slotCounts[this.current] = 0
      }
    }
    this.currentEndsAt += periods * this.slotMs
    this.cachedPercentile = -1
  }
}
