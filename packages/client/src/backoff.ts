import type { RandomSource } from './clock.js'

/**
 * "Full jitter" exponential backoff: a uniform draw from [0, min(cap, base · 2^(retry − 1))). Spreading
 * each client's wait over the whole range is what breaks up synchronized waves of retries; adding a
 * little jitter to a fixed exponential delay leaves the waves in place.
 *
 * @param retry 1 for the first retry, 2 for the second, …
 * @example
 * ```ts
 * fullJitterBackoff(3, 100, 10_000, Math.random) // somewhere in [0, 400)
 * ```
 */
export function fullJitterBackoff(
  retry: number,
  baseMs: number,
  capMs: number,
  random: RandomSource,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** (retry - 1))
  return random() * ceiling
}

/**
 * The wait before a retry. A `Retry-After` is a floor — the server knows when it expects to have room,
 * and a client that retries earlier only adds to the overload — so the wait is the floor plus a spread
 * of up to `retryAfterJitter` of it (servers that send one fixed value to every client would otherwise
 * get every retry back in the same instant), and never less than the backoff.
 */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  options: { baseDelayMs: number; maxDelayMs: number; retryAfterJitter: number },
  random: RandomSource,
): number {
  // Whole milliseconds, rounded up: timers cannot do better, and rounding down could undercut the floor.
  const backoff = Math.ceil(fullJitterBackoff(retry, options.baseDelayMs, options.maxDelayMs, random))
  if (retryAfterMs === undefined || retryAfterMs === 0) return backoff
  return Math.max(Math.ceil(retryAfterMs + random() * retryAfterMs * options.retryAfterJitter), backoff)
}
