/**
 * A Prometheus-style histogram (cumulative since start, fixed upper bounds) kept by the controller
 * itself, so a metrics exporter reads it at scrape time instead of observing every request. Observing
 * is a short scan over a dozen bounds.
 */
export class CumulativeHistogram {
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1
        break
      }
    }
    this.sum += value
    this.count++
  }

  /** A copy with cumulative bucket counts, as exposition formats want them. */
  snapshot(): HistogramSnapshot {
    const cumulative: number[] = []
    let running = 0
    for (let i = 0; i < this.bounds.length; i++) {
      running += this.counts[i] as number
      cumulative.push(running)
    }
    return { bounds: this.bounds, cumulativeCounts: cumulative, sum: this.sum, count: this.count }
  }
}

export interface HistogramSnapshot {
  /** Upper bounds (`le`), ascending; `+Inf` is implied by `count`. */
  readonly bounds: readonly number[]
  readonly cumulativeCounts: readonly number[]
  readonly sum: number
  readonly count: number
}

export const DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const
export const RETRY_AFTER_BUCKETS_SECONDS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300] as const
