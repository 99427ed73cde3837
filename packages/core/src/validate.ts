import { InvalidOptionError } from './errors.js'

/** Option checks shared by every constructor: one message shape, `??` defaults, no silent fallback. */

export function assertObject(name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(name, 'an object', value)
  }
}

/**
 * Refuses a key `options` cannot have: a misspelt one (`maxConcurency`) would otherwise be ignored and
 * its default used without a word. `path` is where the object sits (`''` at the top, `'metrics'`,
 * `'routes[2]'`); the error names the key with it, and the key meant when one is close, else every
 * valid key. A key set to `undefined` is refused too. Runs at construction only.
 */
export function assertKnownKeys(path: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw unknownKey(path, key, known)
  }
}

function unknownKey(path: string, key: string, known: readonly string[]): InvalidOptionError {
  const name = path === '' ? key : `${path}.${key}`
  const nearest = nearestKey(key, known)
  const hint =
    nearest === undefined
      ? `expected one of ${known.map((valid) => `\`${valid}\``).join(', ')}`
      : `did you mean \`${path === '' ? nearest : `${path}.${nearest}`}\`?`
  return new InvalidOptionError(name, 'a known option', undefined, `Unknown option \`${name}\`: ${hint}`)
}

/**
 * The valid key a typo most likely meant: the nearest, if within a third of the key's length (at least
 * one edit). Farther than that, a suggestion is more often wrong than right.
 */
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

/**
 * Levenshtein distance with a swap of two neighbours counted as one edit (optimal string alignment), so
 * `gaurd` is as near `guard` as `gard` is.
 */
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

export function integerOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `from ${min} and up` : `from ${min} to ${max}`
    throw new InvalidOptionError(name, `an integer ${range}`, value)
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

/** A positive limit, or undefined when the option is not set (the check is then off). */
export function optionalLimit(
  name: string,
  value: unknown,
  max = Number.POSITIVE_INFINITY,
): number | undefined {
  if (value === undefined) return undefined
  return numberOption(name, value, 0, 0, max, true)
}

export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'a boolean', value)
  return value
}

export function functionOption<F>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw new InvalidOptionError(name, 'a function', value)
  return value as F
}
