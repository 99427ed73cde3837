/**
 * Numbers that leave this package — a timer's delay handed to Node, a header value handed to a
 * client — must be ones the receiver accepts. Computed values can be anything: NaN from 0/0, Infinity
 * from a rate near 0, a fraction or a negative from a user's function. Each helper here maps every
 * number, NaN included, into the receiver's range, so no caller has to remember which inputs are bad.
 * `Math.min`/`Math.max` alone are not enough: both propagate NaN.
 */

/**
 * The longest delay Node's timers accept: 2^31 − 1 ms (about 24.8 days). Node fires a longer timer
 * after 1 ms instead, with a TimeoutOverflowWarning; a caller that re-arms until its due time would then
 * spin.
 */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * The longest `Retry-After` sent, in seconds: one day, the most the `retryAfter` option accepts. A
 * rate limit whose next token is further away answers again when the client comes back (with what is
 * left, again at most a day), so no client is let in early; it is only told in steps.
 */
export const MAX_RETRY_AFTER_SECONDS = 86_400

/** The largest integer a Structured Field carries (RFC 9651 §3.3.1: at most 15 digits). */
export const MAX_SF_INTEGER = 999_999_999_999_999

/** `value` within [min, max]; NaN gives `min` (as every clamp must reject NaN). */
export function clamp(value: number, min: number, max: number): number {
  if (value >= max) return max
  if (value >= min) return value
  return min
}

/** A delay Node's `setTimeout` accepts as given: 0 to MAX_TIMER_MS ms (NaN: 0). A clamped timer fires early; its caller re-arms for the rest. */
export function timerDelay(ms: number): number {
  return clamp(ms, 0, MAX_TIMER_MS)
}

/** A valid `Retry-After`: whole seconds, rounded up so never earlier, from 1 to MAX_RETRY_AFTER_SECONDS (NaN: 1). */
export function retryAfterSeconds(seconds: number): number {
  return clamp(Math.ceil(seconds), 1, MAX_RETRY_AFTER_SECONDS)
}

/**
 * A non-negative Structured Field integer (RFC 9651): rounded down, 0 to MAX_SF_INTEGER (NaN: 0).
 * Where later is the safe side (a time to wait), the caller rounds up first.
 */
export function sfInteger(value: number): number {
  return clamp(Math.floor(value), 0, MAX_SF_INTEGER)
}
