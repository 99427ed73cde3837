import type { Clock, RandomSource } from './clock.js'
import { InvalidOptionError } from './errors.js'

// Option checks shared by every factory and class: one message shape, `??` defaults, no silent fallback
// to a default when a value is given but wrong.

/** The options argument itself: absent or a plain object (typed callers cannot get this wrong, JS ones can). */
export function assertOptions(value: unknown): void {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('options', 'an object', value)
  }
}

export function integerOption(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(name, `an integer from ${min} and up`, value)
  }
  return value
}

export function numberOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
  exclusiveMin = false,
): number {
  if (value === undefined) return fallback
  if (
    typeof value !== 'number' ||
    Number.isNaN(value) ||
    (exclusiveMin ? value <= min : value < min) ||
    value > max
  ) {
    throw new InvalidOptionError(name, `a number ${numberRange(min, max, exclusiveMin)}`, value)
  }
  return value
}

/** The range as a phrase: "from 0 and up", "from 0 to 1", "above 0", "above 0 and at most 1". */
function numberRange(min: number, max: number, exclusiveMin: boolean): string {
  const unbounded = max === Number.POSITIVE_INFINITY
  if (exclusiveMin) return unbounded ? `above ${min}` : `above ${min} and at most ${max}`
  return unbounded ? `from ${min} and up` : `from ${min} to ${max}`
}

export function functionOption<F>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw new InvalidOptionError(name, 'a function', value)
  return value as F
}

export function clockOption(value: unknown, fallback: Clock): Clock {
  if (value === undefined) return fallback
  const clock = value as Partial<Record<keyof Clock, unknown>> | null
  if (
    typeof clock !== 'object' ||
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new InvalidOptionError('clock', 'an object with now(), setTimeout() and clearTimeout()', value)
  }
  return value as Clock
}

export function randomOption(value: unknown, fallback: RandomSource): RandomSource {
  return functionOption<RandomSource>('random', value) ?? fallback
}

export function statusListOption(
  name: string,
  value: unknown,
  fallback: readonly number[],
): ReadonlySet<number> {
  if (value === undefined) return new Set(fallback)
  if (
    !Array.isArray(value) ||
    !value.every(
      (status) => typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599,
    )
  ) {
    throw new InvalidOptionError(name, 'an array of HTTP status codes (integers from 100 to 599)', value)
  }
  return new Set(value as number[])
}

export function methodListOption(
  name: string,
  value: unknown,
  fallback: readonly string[],
): ReadonlySet<string> {
  if (value === undefined) return new Set(fallback)
  if (
    !Array.isArray(value) ||
    !value.every((method) => typeof method === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method))
  ) {
    throw new InvalidOptionError(name, 'an array of HTTP method names', value)
  }
  // Methods compare case-insensitively here because fetch itself upper-cases the standard ones.
  return new Set((value as string[]).map((method) => method.toUpperCase()))
}

/** An instance check by shape, so a budget or throttle from another copy of this package still works. */
export function instanceOption<T>(
  name: string,
  value: unknown,
  expected: string,
  methods: readonly string[],
): T | false | undefined {
  if (value === undefined || value === false) return value
  const candidate = value as Record<string, unknown> | null
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    !methods.every((method) => typeof candidate[method] === 'function')
  ) {
    throw new InvalidOptionError(name, expected, value)
  }
  return value as T
}
