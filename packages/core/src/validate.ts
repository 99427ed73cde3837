import { InvalidOptionError } from './errors.js'

/** Option checks shared by every constructor: one message shape, `??` defaults, no silent fallback. */

export function assertObject(name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(name, 'an object', value)
  }
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
