import { clamp, MAX_RETRY_AFTER_SECONDS, retryAfterSeconds } from './bounds.js'
import type { RandomSource } from './clock.js'
import type { RejectionReason } from './errors.js'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys } from './validate.js'

/** What a `retryAfter` function and the adaptive policy see when deciding a delay. */
export interface RetryAfterContext {
  readonly reason: RejectionReason
  readonly queueDepth: number
  readonly inFlight: number
  readonly limit: number
  /** Requests completed per second over the latency window. */
  readonly throughputPerSecond: number
}

/**
 * How long a rejected client is told to wait, in whole seconds:
 * - `{ min, max }`: uniform over that range (default `{ min: 5, max: 15 }`);
 * - a number `n`: uniform over `[n, n + max(1, ⌊n/2⌋)]`, so a fixed base still spreads retries;
 * - a function: decides per rejection (rounded up to whole seconds, at least 1);
 * - `'adaptive'`: the estimated time to drain the queue at the measured throughput, jittered over
 *   `[t, 2t]` and kept within 1–60 s.
 */
export type RetryAfterOption =
  | { readonly min: number; readonly max: number }
  | number
  | ((context: RetryAfterContext) => number)
  | 'adaptive'

/** What the controller exposes to the policy; read only when a policy needs it, so the default allocates nothing. */
export interface RetryAfterState {
  readonly queueDepth: number
  readonly inFlight: number
  readonly limit: number
  readonly throughputPerSecond: number
}

export type RetryAfterPolicy = (reason: RejectionReason, state: RetryAfterState) => number

const RANGE_KEYS = ['min', 'max']
const MAX_SECONDS = MAX_RETRY_AFTER_SECONDS
const ADAPTIVE_MAX_SECONDS = 60

function uniformInt(random: RandomSource, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

export function resolveRetryAfter(option: unknown, random: RandomSource): RetryAfterPolicy {
  if (option === undefined) return rangePolicy(5, 15, random)
  if (option === 'adaptive') {
    return (_reason, state) => {
      const backlog = state.queueDepth + state.inFlight
      const throughput = state.throughputPerSecond
      const drainSeconds = throughput > 0 ? backlog / throughput : ADAPTIVE_MAX_SECONDS / 2
      const base = clamp(Math.ceil(drainSeconds), 1, ADAPTIVE_MAX_SECONDS)
      return uniformInt(random, base, Math.min(ADAPTIVE_MAX_SECONDS, base * 2))
    }
  }
  if (typeof option === 'number') {
    if (!Number.isInteger(option) || option < 1 || option > MAX_SECONDS) {
      throw new InvalidOptionError(
        'retryAfter',
        `an integer number of seconds from 1 to ${MAX_SECONDS}`,
        option,
      )
    }
    return rangePolicy(option, Math.min(MAX_SECONDS, option + Math.max(1, Math.floor(option / 2))), random)
  }
  if (typeof option === 'function') {
    const decide = option as (context: RetryAfterContext) => number
    let warned = false
    // A function's result is rounded up and clamped rather than trusted: a fraction, 0 or Infinity in
    // the header would break clients. It never throws either: this runs while a request is being
    // rejected, and a throw there would turn the 503 into an error. NaN (a bug in the function) gets
    // the shortest wait and one warning, so the bug is seen without a log line per rejection.
    return (reason, state) => {
      const seconds = decide({
        reason,
        queueDepth: state.queueDepth,
        inFlight: state.inFlight,
        limit: state.limit,
        throughputPerSecond: state.throughputPerSecond,
      })
      if (!warned && Number.isNaN(seconds)) {
        warned = true
        process.emitWarning(
          `retryAfter function returned NaN (for ${reason}); sending Retry-After: 1`,
          'BackpressureRetryAfterWarning',
        )
      }
      return retryAfterSeconds(seconds)
    }
  }
  if (typeof option === 'object' && option !== null && !Array.isArray(option)) {
    assertKnownKeys('retryAfter', option, RANGE_KEYS)
    const { min, max } = option as { min?: unknown; max?: unknown }
    if (typeof min !== 'number' || !Number.isInteger(min) || min < 1 || min > MAX_SECONDS) {
      throw new InvalidOptionError(
        'retryAfter.min',
        `an integer number of seconds from 1 to ${MAX_SECONDS}`,
        min,
      )
    }
    if (typeof max !== 'number' || !Number.isInteger(max) || max < min || max > MAX_SECONDS) {
      throw new InvalidOptionError(
        'retryAfter.max',
        `an integer from retryAfter.min (${min}) to ${MAX_SECONDS}`,
        max,
      )
    }
    return rangePolicy(min, max, random)
  }
  throw new InvalidOptionError(
    'retryAfter',
    "`{ min, max }`, a whole number of seconds, a function or 'adaptive'",
    option,
  )
}

function rangePolicy(min: number, max: number, random: RandomSource): RetryAfterPolicy {
  return () => uniformInt(random, min, max)
}
