import type { Clock } from './clock.js'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject, numberOption } from './validate.js'

/**
 * The no-load service time of a downstream that the instances of a fleet share (one database behind
 * many servers), as each instance's probes measured it. An instance that joins a busy fleet cannot
 * measure it: every query it sends waits in the queue its siblings keep, and a baseline taken there
 * lets it take the pool from them (simulated: five instances joining ten at 2× held Σ limits at 6.9 P,
 * Jain's index 0.66). With a shared baseline it starts from the fleet's and probes with it.
 *
 * Both methods are called from the limit's update, on the request path: they must not block or throw,
 * and answer synchronously (`current` from what was fetched before; `publish` sends and forgets). A
 * promise either returns is not waited for, and its rejection is ignored.
 */
export interface SharedBaseline {
  /** The fleet's no-load service time in ms (the median of its members' fresh baselines), or undefined. */
  current(): number | undefined
  /** This instance's baseline after a probe, in ms. */
  publish(baselineMs: number): void
}

export interface MemoryBaselineBoardOptions {
  /** How long a member's baseline counts after it published it, in ms: about three probe intervals. @default 30000 */
  readonly ttlMs?: number
  /** Whose time stamps the entries. @default systemClock */
  readonly clock?: Pick<Clock, 'now'>
}

/**
 * Shared baselines for instances in one process (several controllers in front of one pool: an HTTP
 * server and a queue consumer, say, or a simulated fleet); across processes, use
 * `RedisSharedBaseline` from `@backpressure/redis`. Each instance takes its own `member()`.
 */
export class MemoryBaselineBoard {
  private readonly entries = new Map<number, { ms: number; at: number }>()
  private readonly ttlMs: number
  private readonly clock: Pick<Clock, 'now'>
  private members = 0

  constructor(options: MemoryBaselineBoardOptions = {}) {
    assertObject('options', options as unknown)
    assertKnownKeys('', options, ['ttlMs', 'clock'] satisfies (keyof MemoryBaselineBoardOptions)[])
    this.ttlMs = numberOption('ttlMs', options.ttlMs, 30_000, 1)
    const clock = options.clock ?? { now: () => performance.now() }
    if (typeof clock !== 'object' || clock === null || typeof clock.now !== 'function')
      throw new InvalidOptionError('clock', 'an object with now()', clock)
    this.clock = clock
  }

  member(): SharedBaseline {
    const id = this.members++
    return {
      current: () => this.median(),
      publish: (baselineMs) => {
        if (Number.isFinite(baselineMs) && baselineMs > 0)
          this.entries.set(id, { ms: baselineMs, at: this.clock.now() })
      },
    }
  }

  /** The median of the fresh entries (the mean of the middle two for an even count). */
  private median(): number | undefined {
    const now = this.clock.now()
    const fresh: number[] = []
    for (const [id, entry] of this.entries) {
      if (now - entry.at > this.ttlMs) this.entries.delete(id)
      else fresh.push(entry.ms)
    }
    return medianOf(fresh)
  }
}

/** The median of `values` (sorted in place), or undefined for none. */
function medianOf(values: number[]): number | undefined {
  if (values.length === 0) return undefined
  values.sort((a, b) => a - b)
  const mid = values.length >> 1
  return values.length % 2 === 1 ? values[mid] : ((values[mid - 1] as number) + (values[mid] as number)) / 2
}
