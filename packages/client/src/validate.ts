import type { Clock, RandomSource } from './clock.js'
import { InvalidOptionError } from './errors.js'

// Option checks shared by every factory and class: one message shape, `??` defaults, no silent fallback
// to a default when a value is given but wrong.

/**
 * The options argument itself: absent, or a plain object with no key but `known` (typed callers cannot
 * get this wrong, JavaScript ones can, and a misspelt key would leave its default in force silently).
 */
export function assertOptions(value: unknown, known: readonly string[]): void {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('options', 'an object', value)
  }
  assertKnownKeys(value, known)
}

// A twin of core's assertKnownKeys (the client has no runtime dependency on core); client options are
// never nested, so keys are named as they are.
function assertKnownKeys(options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    const nearest = nearestKey(key, known)
    const hint =
      nearest === undefined
        ? `expected one of ${known.map((valid) => `\`${valid}\``).join(', ')}`
        : `did you mean \`${nearest}\`?`
    throw new InvalidOptionError(key, 'a known option', undefined, `Unknown option \`${key}\`: ${hint}`)
  }
}

/** The valid key a typo most likely meant: the nearest, if within a third of the key's length (at least one edit). */
function nearestKey(key: string, known: readonly string[]): string | undefined {
  let nearest: string | undefined
  let nearestDistance = Math.max(1, Math.floor(key.length / 3)) + 1
  for (const candidate of known) {
    const distance = editDistance(key, candidate)
    if (distance < nearestDistance) {
      nearest = candidate
      nearestDistance = distance
    }
  }
  return nearest
}

/** Levenshtein distance with a swap of two neighbours counted as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  let twoBack: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      let distance = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, twoBack[j - 2]! + 1)
      }
      current.push(distance)
    }
    twoBack = previous
    previous = current
  }
  return previous[b.length]!
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
