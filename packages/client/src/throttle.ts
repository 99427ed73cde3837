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
   * Sliding window over which requests and accepts are counted, in milliseconds. The client forgets an
   * outage within about half of it once the server accepts again (Envoy's admission control uses 30 s;
   * the Google SRE book two minutes).
   * @default 30_000
   */
  windowMs?: number
  /**
   * Requests sent in the window before the client rejects anything locally. The formula alone would
   * drop half of a fresh client's traffic after a single 503; like the server's p99, a rejection rate
   * needs a minimum sample. 0 applies the formula from the first request.
   * @default 10
   */
  minRequests?: number
  /**
   * The highest probability with which an attempt is rejected locally, however bad the server's answers
   * (Envoy's `max_rejection_probability`). What still gets through is how the client learns that the
   * server has recovered: at 0.8, a fifth of the attempts probe it during an outage. 1 removes the cap.
   * @default 0.8
   */
  maxRejectionProbability?: number
  /** Time source, for tests. */
  clock?: Clock
  /** Random source in [0, 1), for tests. */
  random?: RandomSource
}

const THROTTLE_OPTION_KEYS: readonly string[] = Object.keys({
  k: true,
  windowMs: true,
  minRequests: true,
  maxRejectionProbability: true,
  clock: true,
  random: true,
} satisfies Record<keyof AdaptiveThrottleOptions, true>)

/**
 * Client-side adaptive throttling (Google SRE book, "Handling Overload", as Envoy's admission control
 * filter implements it): every attempt sent counts as a request, every response the server did not
 * reject for overload counts as an accept, and a new attempt is rejected locally, before it is sent,
 * with probability `min(maxRejectionProbability, max(0, (requests − k · accepts) / (requests + 1)))`
 * (once the window holds `minRequests` requests).
 *
 * When a server rejects nearly everything, rejecting costs it almost as much as serving; the clients
 * that stop sending are what lets it recover. Attempts rejected locally are not counted, and the cap
 * keeps some attempts going out: both are what let the probability fall back to 0 soon after the server
 * accepts again.
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
  readonly maxRejectionProbability: number
  private readonly window: SlidingWindow
  private readonly random: RandomSource

  constructor(options?: AdaptiveThrottleOptions) {
    assertOptions(options, THROTTLE_OPTION_KEYS)
    this.k = numberOption('k', options?.k, 2, 1)
    this.windowMs = numberOption('windowMs', options?.windowMs, 30_000, 0, Number.POSITIVE_INFINITY, true)
    this.minRequests = numberOption('minRequests', options?.minRequests, 10, 0)
    this.maxRejectionProbability = numberOption(
      'maxRejectionProbability',
      options?.maxRejectionProbability,
      0.8,
      0,
      1,
    )
    this.random = randomOption(options?.random, Math.random)
    this.window = new SlidingWindow(this.windowMs, 2, clockOption(options?.clock, systemClock))
  }

  /** The probability with which the next attempt would be rejected locally. */
  rejectionProbability(): number {
    const requests = this.window.total(REQUESTS)
    if (requests < this.minRequests) return 0
    const probability = (requests - this.k * this.window.total(ACCEPTS)) / (requests + 1)
    return probability > 0 ? Math.min(probability, this.maxRejectionProbability) : 0
  }

  /** Decides whether an attempt may be sent, and counts it if so; false means reject it locally. */
  tryRequest(): boolean {
    const probability = this.rejectionProbability()
    // The SRE book counts locally rejected attempts as requests too, so that the client sends about k
    // times what the server accepts whatever its own demand. But then, once an outage has filled the
    // window with them, the probability can only fall as fast as accepts outweigh them at k per request:
    // at least half a window even if every attempt were sent, and with only 1 − p of them sent, many
    // windows (a 2-minute outage took over 8 minutes to forget). Envoy's admission control leaves them out
    // for that reason: a rejected attempt says nothing about the server. The price is a weaker hold
    // under a partial overload (the client sends √(k · accepted · demand) instead of k · accepted, and
    // never less than 1 − maxRejectionProbability of its demand either way); the server's own shedding
    // covers that.
    if (probability > 0 && this.random() < probability) return false
    this.window.add(REQUESTS)
    return true
  }

  /** Counts an attempt the server accepted (any answer but an overload rejection or a network error). */
  recordAccept(): void {
    this.window.add(ACCEPTS)
  }
}
