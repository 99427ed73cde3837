import { type Clock, systemClock } from './clock.js'
import { assertOptions, clockOption, numberOption } from './validate.js'
import { SlidingWindow } from './window.js'

const REQUESTS = 0
const RETRIES = 1

export interface RetryBudgetOptions {
  /**
   * Retries allowed per request over the window: 0.1 keeps the load a client sends to at most about
   * 1.1× its request rate, however many of those requests fail.
   * @default 0.1
   */
  ratio?: number
  /**
   * Length of the sliding window the ratio is measured over, in milliseconds.
   * @default 10_000
   */
  windowMs?: number
  /**
   * The fewest retries a window allows, per second of window (0.1 over a 10 s window: one retry), so that
   * a client sending a request every few seconds can still retry one now and then — at 10 % it would
   * otherwise need ten requests in the window to earn a single retry. It is a floor under what `ratio`
   * earns, not an addition to it: once a window holds 10 requests or more, `ratio` alone decides, and a
   * fleet of callers sharing one client sends at most 1.1× its requests. Set it to 0 for a strict ratio.
   * @default 0.1
   */
  minRetriesPerSecond?: number
  /** Time source, for tests. */
  clock?: Clock
}

const BUDGET_OPTION_KEYS: readonly string[] = Object.keys({
  ratio: true,
  windowMs: true,
  minRetriesPerSecond: true,
  clock: true,
} satisfies Record<keyof RetryBudgetOptions, true>)

/**
 * A retry budget: retries stay under `ratio` of requests over a sliding window, with a small floor so a
 * quiet client can still retry.
 * Per-request retry limits alone multiply load by `maxAttempts` exactly when the server can least take
 * it; a budget caps the total. Share one budget across every call to the same dependency — `createFetch`
 * makes one per client, and any budget can be passed to several clients.
 *
 * @example
 * ```ts
 * const budget = new RetryBudget({ ratio: 0.1 })
 * const users = createFetch({ budget })
 * const orders = createFetch({ budget })
 * ```
 */
export class RetryBudget {
  readonly ratio: number
  readonly windowMs: number
  readonly minRetriesPerSecond: number
  private readonly window: SlidingWindow
  private readonly floor: number

  constructor(options?: RetryBudgetOptions) {
    assertOptions(options, BUDGET_OPTION_KEYS)
    this.ratio = numberOption('ratio', options?.ratio, 0.1, 0)
    this.windowMs = numberOption('windowMs', options?.windowMs, 10_000, 0, Number.POSITIVE_INFINITY, true)
    this.minRetriesPerSecond = numberOption('minRetriesPerSecond', options?.minRetriesPerSecond, 0.1, 0)
    this.floor = (this.minRetriesPerSecond * this.windowMs) / 1000
    this.window = new SlidingWindow(this.windowMs, 2, clockOption(options?.clock, systemClock))
  }

  /** Counts one request (a first attempt, not a retry); each one earns `ratio` of a retry. */
  recordRequest(): void {
    this.window.add(REQUESTS)
  }

  /** Spends one retry if the budget has one; false means the caller must not retry. */
  tryAcquire(): boolean {
    if (this.available < 1) return false
    this.window.add(RETRIES)
    return true
  }

  /** Retries that could be spent right now (a fraction means a part-earned retry). */
  get available(): number {
    const earned = Math.max(this.ratio * this.window.total(REQUESTS), this.floor)
    return Math.max(0, earned - this.window.total(RETRIES))
  }
}
