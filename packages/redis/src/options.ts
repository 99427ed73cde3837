import { assertKnownKeys, InvalidOptionError } from '@backpressure/core'
import type { Cluster, Redis } from 'ioredis'

/** Longest time in ms an option may give (about 31 years): the longest PEXPIRE the scripts write. */
export const MAX_MS = 1e12

/**
 * The checks every options object of this package starts with: an object, no key outside `known`, and
 * `client` an ioredis client (a `Redis` or a `Cluster`); resolves to that client. Errors name the option.
 */
export function checkedClient(options: unknown, known: readonly string[]): Redis | Cluster {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', 'an object', options)
  }
  assertKnownKeys('', options, known)
  const client = (options as { client?: unknown }).client
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof (client as Redis).defineCommand !== 'function'
  ) {
    throw new InvalidOptionError('client', 'an ioredis client (Redis or Cluster)', client)
  }
  return client as Redis | Cluster
}

/** A duration option in whole ms from 1 to `max`, or undefined when not given. */
export function msOption(name: string, value: unknown, max = MAX_MS): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidOptionError(name, `an integer from 1 to ${max} (ms)`, value)
  }
  return value
}

/** A callback option, or undefined when not given. */
export function functionOption<F extends (...args: never[]) => unknown>(
  name: string,
  value: F | undefined,
): F | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw new InvalidOptionError(name, 'a function', value)
  return value
}
