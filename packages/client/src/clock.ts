/**
 * Time and randomness are injected so unit tests are deterministic and never sleep. Same shape as
 * `@backpressure/core`'s clock, except that `now()` is wall-clock time: a `Retry-After` HTTP-date is
 * compared against it.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  setTimeout(callback: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

export type TimerHandle = unknown

/** A random number in [0, 1). */
export type RandomSource = () => number

export const systemClock: Clock = {
  now: () => Date.now(),
  // Not unref'd, unlike core's timers: a pending retry is work the caller is awaiting, and the process
  // must not exit in the middle of it.
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}

/**
 * The longest delay Node's setTimeout honours (2^31 − 1 ms, about 24.8 days). It fires a longer one after
 * 1 ms, with a TimeoutOverflowWarning, and a wait that then re-arms for the rest spins. `maxRetryAfterMs:
 * Infinity` is allowed and the server chooses the `Retry-After`, so a wait can be any length.
 */
export const MAX_TIMER_MS = 2_147_483_647

/** A delay every timer accepts: NaN and negatives become 0, anything longer MAX_TIMER_MS. */
export function timerDelay(ms: number): number {
  if (!(ms > 0)) return 0
  return Math.min(ms, MAX_TIMER_MS)
}

/**
 * Calls `callback` once the clock reads `until` or later, however far off that is, and returns a function
 * that cancels it. Every timer the client arms goes through here: a wait longer than Node's timers
 * allow is armed in pieces, and a timer that fires a fraction of a millisecond early against Date.now()
 * is re-armed for the remainder, which keeps a Retry-After floor a real floor.
 */
export function callAt(clock: Clock, until: number, callback: () => void): () => void {
  let handle: TimerHandle
  const fire = () => {
    if (clock.now() < until) arm()
    else callback()
  }
  const arm = () => {
    handle = clock.setTimeout(fire, timerDelay(Math.ceil(until - clock.now())))
  }
  arm()
  return () => clock.clearTimeout(handle)
}

/**
 * Resolves after `ms` (`Infinity`: never), or rejects with the signal's reason as soon as it aborts,
 * clearing its timer either way, so no wait outlives the caller's interest in it.
 */
export function sleep(ms: number, clock: Clock, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cancel()
      reject(signal.reason)
    }
    const cancel = callAt(clock, clock.now() + ms, () => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    })
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
