import type { Clock } from './clock.js'

const BUCKETS = 10

/**
 * Counts events per lane over a sliding window, in ten buckets: memory and work per event are constant
 * however busy the client is, and old events fall out a tenth of a window at a time instead of all at
 * once.
 */
export class SlidingWindow {
  private readonly bucketMs: number
  private readonly lanes: Float64Array[]
  private readonly totals: number[]
  private current = Number.NEGATIVE_INFINITY

  constructor(
    windowMs: number,
    laneCount: number,
    private readonly clock: Clock,
  ) {
    this.bucketMs = windowMs / BUCKETS
    this.lanes = Array.from({ length: laneCount }, () => new Float64Array(BUCKETS))
    this.totals = new Array<number>(laneCount).fill(0)
  }

  add(lane: number, count = 1): void {
    const slot = this.rotate()
    this.lanes[lane]![slot] = this.lanes[lane]![slot]! + count
    this.totals[lane] = this.totals[lane]! + count
  }

  total(lane: number): number {
    this.rotate()
    return this.totals[lane]!
  }

  /** Clears the buckets that fell out of the window since the last call; returns the current slot. */
  private rotate(): number {
    const index = Math.floor(this.clock.now() / this.bucketMs)
    // A wall clock that stepped back keeps counting in the newest bucket rather than reviving old ones.
    if (index > this.current) {
      const stale = Math.min(index - this.current, BUCKETS)
      for (let step = 1; step <= stale; step++) {
        const slot = slotOf(index - stale + step)
        for (let lane = 0; lane < this.lanes.length; lane++) {
          const counts = this.lanes[lane]!
          this.totals[lane] = this.totals[lane]! - counts[slot]!
          counts[slot] = 0
        }
      }
      this.current = index
    }
    return slotOf(this.current)
  }
}

// `%` keeps the sign of its left operand: a clock that reads fewer than ten buckets (a test clock at 0,
// an infinite window whose index stays 0) or a negative time would give slots −9…−1, which a typed array
// reads as undefined, and every total would turn NaN.
function slotOf(index: number): number {
  return ((index % BUCKETS) + BUCKETS) % BUCKETS
}
