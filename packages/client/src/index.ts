export { fullJitterBackoff } from './backoff.js'
export { RetryBudget, type RetryBudgetOptions } from './budget.js'
export { isNetworkError } from './classify.js'
export { type Clock, type RandomSource, systemClock, type TimerHandle } from './clock.js'
export {
  ConcurrencyLimit,
  type ConcurrencyLimitOptions,
  defaultConcurrencyLimit,
} from './concurrency-limit.js'
export {
  ClientLimitError,
  type ClientLimitReason,
  ERROR_CODES,
  type GiveUpReason,
  InvalidOptionError,
  RetryError,
  type RetryErrorDetails,
  ThrottledError,
} from './errors.js'
export { type ClientOptions, createFetch, DEADLINE_HEADER, type FetchLike } from './fetch.js'
export {
  type AttemptInfo,
  createRetry,
  RETRIED_BELOW_HEADER,
  type RetryCallOptions,
  type RetryEvent,
  type RetryOptions,
  type RetryPolicyOptions,
  retry,
} from './retry.js'
export { parseHttpDate, parseRetryAfter } from './retry-after.js'
export { AdaptiveThrottle, type AdaptiveThrottleOptions } from './throttle.js'
