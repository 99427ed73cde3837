import { type Clock, type RandomSource, systemClock } from './clock.js'
import { assertOptions, clockOption, numberOption, randomOption } from './validate.js'
import { SlidingWindow } from './window.js'

const REQUESTS = 0
const ACCEPTS = 1

export interface AdaptiveThrottleOptions {
  /**
   * How many requests per accepted one the client still sends before it starts rejecting locally.
   * Lower is more aggressive: at 2 the client sends about twice what the server accepts.
   * @default 2
   */
  k?: number
  /**
   * Sliding window over which requests and accepts are counted, in milliseconds (two minutes in the
   * Google SRE book).
   * @default 120_000
   */
  windowMs?: number
  /**
   * Requests the window must hold before the client rejects anything locally. The formula alone would
   * drop half of a fresh client's traffic after a single 503; like the server's p99, a rejection rate
   * needs a minimum sample. 0 applies the formula from the first request.
   * @default 10
   */
  minRequests?: number
  /** Time source, for tests. */
  clock?: Clock
  /** Random source in [0, 1), for tests. */
  random?: RandomSource
}

/**
 * Client-side adaptive throttling (Google SRE book, "Handling Overload"): every attempt counts as a
 * request, every response the server did not reject for overload counts as an accept, and a new attempt
 * is rejected locally, before it is sent, with probability
 * `max(0, (requests − k · accepts) / (requests + 1))` (once the window holds `minRequests` requests).
 *
 * When a server rejects nearly everything, rejecting costs it almost as much as serving; the clients
 * that stop sending are what lets it recover. Locally rejected attempts count as requests, so the
 * probability keeps rising while the server keeps refusing, and falls as soon as accepts come back.
 *
 * @example
 * ```ts
 * const throttle = new AdaptiveThrottle()
 * const api = createFetch({ throttle })
 * ```
 */
export class AdaptiveThrottle {
  readonly k: number
  readonly windowMs: number
  readonly minRequests: number
  private readonly window: SlidingWindow
  private readonly random: RandomSource

  constructor(options?: AdaptiveThrottleOptions) {
    assertOptions(options)
    this.k = numberOption('k', options?.k, 2, 1)
    this.windowMs = numberOption('windowMs', options?.windowMs, 120_000, 0, Number.POSITIVE_INFINITY, true)
    this.minRequests = numberOption('minRequests', options?.minRequests, 10, 0)
    this.random = randomOption(options?.random, Math.random)
    this.window = new SlidingWindow(this.windowMs, 2, clockOption(options?.clock, systemClock))
  }

  /** The probability with which the next attempt would be rejected locally. */
  rejectionProbability(): number {
    const requests = this.window.total(REQUESTS)
    if (requests < this.minRequests) return 0
    return Math.max(0, (requests - this.k * this.window.total(ACCEPTS)) / (requests + 1))
  }

  /** Counts an attempt and decides whether it may be sent; false means reject it locally. */
  tryRequest(): boolean {
    const probability = this.rejectionProbability()
    this.window.add(REQUESTS)
    return probability === 0 || this.random() >= probability
  }

  /** Counts an attempt the server accepted (any answer but an overload rejection or a network error). */
  recordAccept(): void {
    this.window.add(ACCEPTS)
  }
}
