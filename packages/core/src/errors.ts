/**
 * One registry of stable rejection reasons and error codes. Reasons travel in HTTP bodies, metric
 * labels and logs, so they never change once published; docs/errors.md documents every one (a test
 * fails when one is missing).
 */
export const REJECTION_REASONS = {
  queue_full: { code: 'BP_ERR_QUEUE_FULL', status: 503, message: 'the queue is full' },
  displaced: {
    code: 'BP_ERR_DISPLACED',
    status: 503,
    message: 'a request of higher priority took this place in the queue',
  },
  queue_timeout: {
    code: 'BP_ERR_QUEUE_TIMEOUT',
    status: 503,
    message: 'the request waited in the queue longer than maxQueueWaitMs',
  },
  queue_delay: {
    code: 'BP_ERR_QUEUE_DELAY',
    status: 503,
    message: 'a standing queue formed and this request would wait longer than the queue target',
  },
  concurrency_limit: {
    code: 'BP_ERR_CONCURRENCY_LIMIT',
    status: 503,
    message: 'no slot is free and tryAcquire does not wait',
  },
  latency: { code: 'BP_ERR_LATENCY', status: 503, message: 'p99 latency is above latencyThresholdMs' },
  event_loop_delay: {
    code: 'BP_ERR_EVENT_LOOP_DELAY',
    status: 503,
    message: 'event-loop delay is above maxEventLoopDelayMs',
  },
  event_loop_utilization: {
    code: 'BP_ERR_EVENT_LOOP_UTILIZATION',
    status: 503,
    message: 'event-loop utilization is above maxEventLoopUtilization',
  },
  heap: { code: 'BP_ERR_HEAP', status: 503, message: 'heap used is above maxHeapUsedBytes' },
  rss: { code: 'BP_ERR_RSS', status: 503, message: 'resident set size is above maxRssBytes' },
  deadline_exceeded: {
    code: 'BP_ERR_DEADLINE_EXCEEDED',
    status: 503,
    message: "the client's deadline passed before the work could start",
  },
  circuit_open: { code: 'BP_ERR_CIRCUIT_OPEN', status: 503, message: 'the circuit breaker is open' },
  shutting_down: { code: 'BP_ERR_SHUTTING_DOWN', status: 503, message: 'the server is shutting down' },
  aborted: {
    code: 'BP_ERR_ABORTED',
    status: 503,
    message: 'the caller aborted while waiting in the queue',
  },
  rate_limited: { code: 'BP_ERR_RATE_LIMITED', status: 429, message: 'the rate limit for this key is spent' },
  downstream_overloaded: {
    code: 'BP_ERR_DOWNSTREAM_OVERLOADED',
    status: 503,
    message: 'a service this route called is overloaded and the call already gave up retrying',
  },
} as const satisfies Record<string, { code: `BP_ERR_${string}`; status: 503 | 429; message: string }>

/** A stable rejection reason: the `reason` of a 503/429 body and the `reason` label of metrics. */
export type RejectionReason = keyof typeof REJECTION_REASONS

/** A stable error code of a rejection (`BP_ERR_QUEUE_FULL`, …). */
export type RejectionCode = (typeof REJECTION_REASONS)[RejectionReason]['code']

/** Code of the error thrown at construction for an invalid option. */
export const INVALID_OPTION_CODE = 'BP_ERR_INVALID_OPTION'

export const REJECTION_REASON_LIST = Object.keys(REJECTION_REASONS) as readonly RejectionReason[]

/** Every error code this project throws, for docs and tests. */
export const ERROR_CODES: readonly string[] = [
  ...REJECTION_REASON_LIST.map((reason) => REJECTION_REASONS[reason].code),
  INVALID_OPTION_CODE,
]

// Symbol.for survives two copies of this package in one process (undici does the same), where
// `instanceof` would not.
const kBackpressureError = Symbol.for('backpressure.error')

/**
 * The error an overloaded controller rejects with. It carries what an HTTP framework's default error
 * handler needs to answer correctly (`status`, `statusCode`, `headers`), so throwing it from a route
 * produces the same 503 (or 429) as the middleware does.
 */
export class BackpressureError extends Error {
  readonly code: RejectionCode
  readonly reason: RejectionReason
  readonly retryAfterSeconds: number
  readonly status: 503 | 429
  readonly statusCode: 503 | 429
  readonly headers: { readonly 'Retry-After': string }
  /** Framework error handlers (Koa, http-errors) only show messages of errors marked as exposable. */
  readonly expose = true

  constructor(reason: RejectionReason, retryAfterSeconds: number) {
    const entry = REJECTION_REASONS[reason]
    super(`Backpressure: ${entry.message} (retry after ${retryAfterSeconds}s)`)
    this.name = 'BackpressureError'
    this.code = entry.code
    this.reason = reason
    this.retryAfterSeconds = retryAfterSeconds
    this.status = entry.status
    this.statusCode = entry.status
    this.headers = { 'Retry-After': String(retryAfterSeconds) }
  }

  /** True for a BackpressureError from any copy of this package. */
  static is(value: unknown): value is BackpressureError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[kBackpressureError] === true
    )
  }
}

Object.defineProperty(BackpressureError.prototype, kBackpressureError, { value: true })

/**
 * Builds a BackpressureError without capturing a stack trace: shedding happens on the hot path, and a
 * stack walk per rejected request would make rejecting nearly as costly as serving.
 */
export function createBackpressureError(
  reason: RejectionReason,
  retryAfterSeconds: number,
): BackpressureError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new BackpressureError(reason, retryAfterSeconds)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * Thrown at construction when an option is invalid: names the option (with its path, as
 * `maxConcurrency.initialLimit`), what was expected and what was given, or, for a key no options object
 * has, the key meant.
 */
export class InvalidOptionError extends TypeError {
  readonly code = INVALID_OPTION_CODE
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
