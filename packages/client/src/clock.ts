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
 * Resolves after `ms`, or rejects with the signal's reason as soon as it aborts, clearing its timer
 * either way, so no wait outlives the caller's interest in it.
 */
export function sleep(ms: number, clock: Clock, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(timer)
      reject(signal.reason)
    }
    // Timers may fire a fraction of a millisecond early against Date.now(); re-arming for the remainder
    // keeps a Retry-After floor a real floor.
    const until = clock.now() + ms
    const arm = (delay: number): TimerHandle =>
      clock.setTimeout(() => {
        const left = until - clock.now()
        if (left > 0) {
          timer = arm(Math.ceil(left))
          return
        }
        signal.removeEventListener('abort', onAbort)
        resolve()
      }, delay)
    let timer = arm(ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
