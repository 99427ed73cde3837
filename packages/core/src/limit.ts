import type { Clock, RandomSource } from './clock.js'
import { InvalidOptionError } from './errors.js'

/**
 * The concurrency limit the controller admits against. A fixed limit never moves; an adaptive one
 * learns from the service time of each completed request and reports changes through `onChange`.
 */
export interface ConcurrencyLimit {
  readonly value: number
  /** One completed request: its service time (start to release) and the in-flight count it ran beside. */
  onSample(serviceMs: number, inFlight: number, now: number): void
  stop(): void
}

export type LimitChangeListener = (previous: number, limit: number) => void

/** `maxConcurrency`: a fixed number of requests in flight. */
export type LimitOption = number

export const DEFAULT_MAX_CONCURRENCY = 100

export class FixedLimit implements ConcurrencyLimit {
  constructor(readonly value: number) {}
  onSample(): void {}
  stop(): void {}
}

export function resolveLimit(
  option: unknown,
  _clock: Clock,
  _random: RandomSource,
  _onChange: LimitChangeListener,
): ConcurrencyLimit {
  if (option === undefined) return new FixedLimit(DEFAULT_MAX_CONCURRENCY)
  if (typeof option === 'number' && Number.isInteger(option) && option >= 1) return new FixedLimit(option)
  throw new InvalidOptionError('maxConcurrency', 'an integer from 1 and up', option)
}
