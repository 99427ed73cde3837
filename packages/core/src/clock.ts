import { timerDelay } from './bounds.js'

/**
 * Time and randomness are injected so unit tests are deterministic and never sleep. Production uses
 * the monotonic clock (wall-clock jumps must not expire a whole queue) and unref'd timers (an idle
 * controller never keeps a process alive). Both clocks keep delays to what Node accepts (0 to 2^31 − 1
 * ms): a longer timer fires early, once per ~24.8 days, and its owner re-arms for the rest, where
 * Node's own overflow handling would fire it after 1 ms, every time.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; monotonic. */
  now(): number
  /**
   * Add to `now()` for Unix time in ms, if the clock knows it: the adaptive limit schedules its
   * probes on multiples of Unix time so the instances of a fleet probe together. Without it, `now()`
   * itself is the grid (a shared manual clock in a simulation aligns just the same).
   */
  readonly epochOffsetMs?: number
  setTimeout(callback: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

export type TimerHandle = unknown

/** A random number in [0, 1). */
export type RandomSource = () => number

export const systemClock: Clock = {
  now: () => performance.now(),
  epochOffsetMs: performance.timeOrigin,
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, timerDelay(ms))
    timer.unref()
    return timer
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}

interface ManualTimer {
  at: number
  seq: number
  callback: () => void
}

/**
 * A clock that moves only when told to, for tests of code that takes a `clock` option. Timers fire in
 * order of due time during `advance()`.
 */
export class ManualClock implements Clock {
  private time: number
  private seq = 0
  private readonly timers = new Set<ManualTimer>()

  constructor(start = 0) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    // The system clock's clamp, so tests see long timers fire early exactly as production does.
    const timer: ManualTimer = { at: this.time + timerDelay(ms), seq: this.seq++, callback }
    this.timers.add(timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as ManualTimer)
  }

  /** Number of timers still pending. */
  get pendingTimers(): number {
    return this.timers.size
  }

  /** When the next pending timer falls due, or undefined when none is pending. */
  nextTimerAt(): number | undefined {
    let next: number | undefined
    for (const timer of this.timers) if (next === undefined || timer.at < next) next = timer.at
    return next
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const target = this.time + ms
    for (;;) {
      let next: ManualTimer | undefined
      for (const timer of this.timers) {
        if (
          timer.at <= target &&
          (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))
        ) {
          next = timer
        }
      }
      if (next === undefined) break
      this.timers.delete(next)
      this.time = Math.max(this.time, next.at)
      next.callback()
    }
    this.time = target
  }

  /** Moves time forward by `ms` without firing timers, as a busy event loop runs them late; the next `advance` fires them. */
  stall(ms: number): void {
    this.time += ms
  }
}

/** A seeded pseudo-random source (mulberry32) for reproducible tests and simulations. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
