/**
 * Stable error codes of the client. They appear in logs and in `catch` branches, so they never change
 * once published. The client does not depend on `@backpressure/core` at runtime, so the option error
 * is a local twin of core's with the same code and message shape.
 */
export const ERROR_CODES = {
  invalidOption: 'BP_ERR_INVALID_OPTION',
  retryFailed: 'BP_ERR_RETRY_FAILED',
  clientThrottled: 'BP_ERR_CLIENT_THROTTLED',
  clientLimited: 'BP_ERR_CLIENT_LIMITED',
} as const

/**
 * Why the client stopped retrying:
 * - `max_attempts`: `maxAttempts` attempts were made.
 * - `budget_exhausted`: the shared retry budget had no retry left.
 * - `retry_after_too_long`: the server asked to wait longer than `maxRetryAfterMs`.
 * - `deadline`: the next attempt could not start (or finish) before `timeoutMs`.
 * - `throttled`: adaptive throttling refused to send the retry.
 * - `retried_below`: the 503 said the server behind it had already retried (`Backpressure-Retried-Below`),
 *   and the retry budget (one retry per call at most) had none to spare.
 */
export type GiveUpReason =
  | 'max_attempts'
  | 'budget_exhausted'
  | 'retry_after_too_long'
  | 'deadline'
  | 'throttled'
  | 'retried_below'

// Symbol.for brands survive two copies of this package in one process, where `instanceof` would not.
const kRetryError = Symbol.for('backpressure.client.retry-error')
const kThrottledError = Symbol.for('backpressure.client.throttled-error')
// Read by @backpressure/core's HTTP layer: a route that throws one of our errors is answered 503
// (`downstream_overloaded`) without a dependency between the two packages.
const kDownstreamOverloaded = Symbol.for('backpressure.downstream-overloaded')

/** What a {@link RetryError} reports about the failed call. */
export interface RetryErrorDetails {
  reason: GiveUpReason
  attempts: number
  totalDelayMs: number
  lastStatus: number | undefined
  retryAfterMs: number | undefined
  cause: unknown
}

/**
 * The final failure of a call whose retryable failures (a retryable status or a network error) could
 * not be retried any further. The body of the last response has already been drained, so the socket
 * goes back to the pool; its status and `Retry-After` are kept here.
 *
 * @example
 * ```ts
 * try {
 *   await fetchWithRetry(url)
 * } catch (error) {
 *   if (RetryError.is(error)) log.warn({ status: error.lastStatus, attempts: error.attempts }, error.reason)
 * }
 * ```
 */
export class RetryError extends Error {
  readonly code = ERROR_CODES.retryFailed
  /** Why retrying stopped. */
  readonly reason: GiveUpReason
  /** Attempts sent (locally throttled attempts are not counted). */
  readonly attempts: number
  /** Milliseconds spent waiting between attempts. */
  readonly totalDelayMs: number
  /** Status of the last response, or of the last error carrying one; `undefined` after a network error. */
  readonly lastStatus: number | undefined
  /** The last valid `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number | undefined

  constructor(details: RetryErrorDetails) {
    const status = details.lastStatus === undefined ? 'no response' : `last status ${details.lastStatus}`
    super(
      `Gave up after ${details.attempts} attempt${details.attempts === 1 ? '' : 's'} (${details.reason}): ${status}, waited ${Math.round(details.totalDelayMs)} ms`,
      { cause: details.cause },
    )
    this.name = 'RetryError'
    this.reason = details.reason
    this.attempts = details.attempts
    this.totalDelayMs = details.totalDelayMs
    this.lastStatus = details.lastStatus
    this.retryAfterMs = details.retryAfterMs
  }

  /** True for a RetryError from any copy of this package. */
  static is(value: unknown): value is RetryError {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kRetryError] === true
    )
  }
}

Object.defineProperty(RetryError.prototype, kRetryError, { value: true })
Object.defineProperty(RetryError.prototype, kDownstreamOverloaded, { value: true })

/**
 * Adaptive throttling refused to send a request: the server has been rejecting most recent requests,
 * so this one is failed locally, before it can add to the overload.
 */
export class ThrottledError extends Error {
  readonly code = ERROR_CODES.clientThrottled
  /** The local rejection probability at the time of the decision. */
  readonly probability: number

  constructor(probability: number) {
    super(
      `Request rejected locally by adaptive throttling (rejection probability ${probability.toFixed(2)}): the server is rejecting most requests`,
    )
    this.name = 'ThrottledError'
    this.probability = probability
  }

  /** True for a ThrottledError from any copy of this package. */
  static is(value: unknown): value is ThrottledError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[kThrottledError] === true
    )
  }
}

Object.defineProperty(ThrottledError.prototype, kThrottledError, { value: true })
Object.defineProperty(ThrottledError.prototype, kDownstreamOverloaded, { value: true })

const kClientLimitError = Symbol.for('backpressure.client.limit-error')

/**
 * Why the per-origin concurrency limit failed a request locally (it was never sent):
 * - `queue_full`: `maxQueueDepth` requests to the origin were already waiting.
 * - `queue_timeout`: no slot would be (or was) free within `maxQueueWaitMs` or the call's deadline.
 */
export type ClientLimitReason = 'queue_full' | 'queue_timeout'

/**
 * The per-origin concurrency limit could not send this request in time: the origin is answering
 * slower than the caller sends. It was never sent. Thrown inside a route of our server adapters, it is
 * answered `503` with reason `downstream_overloaded`.
 *
 * @example
 * ```ts
 * try {
 *   await api(url)
 * } catch (error) {
 *   if (ClientLimitError.is(error)) metrics.count('inventory.refused_locally', { reason: error.reason })
 * }
 * ```
 */
export class ClientLimitError extends Error {
  readonly code = ERROR_CODES.clientLimited
  /** Stable reason code. */
  readonly reason: ClientLimitReason
  /** The origin (`http://host:port`) the request was for. */
  readonly origin: string
  /** That origin's concurrency limit at the time. */
  readonly limit: number

  constructor(reason: ClientLimitReason, origin: string, limit: number) {
    // Refusals are what the limit turns an overload into, many a second: no stack trace for each.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(
      reason === 'queue_full'
        ? `Request to ${origin} refused locally: too many requests already wait for its concurrency limit (${limit})`
        : `Request to ${origin} refused locally: no slot under its concurrency limit (${limit}) would be free in time`,
    )
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'ClientLimitError'
    this.reason = reason
    this.origin = origin
    this.limit = limit
  }

  /** True for a ClientLimitError from any copy of this package. */
  static is(value: unknown): value is ClientLimitError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[kClientLimitError] === true
    )
  }
}

Object.defineProperty(ClientLimitError.prototype, kClientLimitError, { value: true })
Object.defineProperty(ClientLimitError.prototype, kDownstreamOverloaded, { value: true })

/**
 * Thrown at creation when an option is invalid: names the option, what was expected and what was given,
 * or, for a key no options object has, the key meant.
 */
export class InvalidOptionError extends TypeError {
  readonly code = ERROR_CODES.invalidOption
  readonly option: string

  /** `message` replaces the "Expected … got …" sentence where it does not fit (an unknown key). */
  constructor(option: string, expected: string, given: unknown, message?: string) {
    super(message ?? `Expected \`${option}\` to be ${expected}, got ${describe(given)}`)
    this.name = 'InvalidOptionError'
    this.option = option
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`
  if (typeof value === 'function') return '(function)'
  if (value === null) return '`null`'
  if (Array.isArray(value)) return '(array)'
  if (typeof value === 'object') return '(object)'
  return `\`${String(value)}\` (${typeof value})`
}

/**
 * What a server answers when one of these errors escapes a route: `503`, `Retry-After` and the
 * "already retried below" mark, as `status`/`statusCode`/`headers` — the fields the frameworks' own
 * error handlers honour (Express's final handler included), so a route that forgets to catch a
 * downstream call that gave up still answers 503 and never 500. Our adapters' error paths answer the
 * full `downstream_overloaded` response (JSON body, jittered Retry-After) before these are read.
 */
function defineHttpAnswer(prototype: object, retryAfterMs: (error: never) => number | undefined): void {
  const status = { get: () => 503, configurable: true }
  Object.defineProperty(prototype, 'status', status)
  Object.defineProperty(prototype, 'statusCode', status)
  Object.defineProperty(prototype, 'headers', {
    configurable: true,
    get(this: never) {
      const ms = retryAfterMs(this)
      return {
        'Retry-After': String(Math.max(1, Math.ceil((ms ?? 1000) / 1000))),
        'Backpressure-Retried-Below': '1',
        'Cache-Control': 'no-store',
      }
    },
  })
}
defineHttpAnswer(RetryError.prototype, (error: RetryError) => error.retryAfterMs)
defineHttpAnswer(ThrottledError.prototype, () => undefined)
defineHttpAnswer(ClientLimitError.prototype, () => undefined)
