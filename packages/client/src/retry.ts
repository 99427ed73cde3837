import { retryDelay } from './backoff.js'
import { RetryBudget } from './budget.js'
import {
  discardBody,
  errorStatus,
  headerValue,
  isNetworkError,
  isResponseLike,
  type ResponseLike,
} from './classify.js'
import { type Clock, callAt, type RandomSource, sleep, systemClock } from './clock.js'
import {
  ClientLimitError,
  type GiveUpReason,
  InvalidOptionError,
  RetryError,
  ThrottledError,
} from './errors.js'
import { parseRetryAfter } from './retry-after.js'
import type { AdaptiveThrottle } from './throttle.js'
import {
  assertOptions,
  clockOption,
  functionOption,
  instanceOption,
  integerOption,
  numberOption,
  randomOption,
  statusListOption,
} from './validate.js'

/** What each attempt is told. */
export interface AttemptInfo {
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: number
  /** Aborts when the caller's signal aborts or `timeoutMs` passes. Pass it on to the call. */
  signal: AbortSignal
  /** When the call's deadline passes, in the policy clock's milliseconds; `undefined` without one. */
  deadline: number | undefined
}

/** Passed to `onRetry` just before the client waits for a retry. */
export interface RetryEvent {
  /** The attempt that failed (1 for the first). */
  attempt: number
  /** How long the client will wait before the next attempt, in milliseconds. */
  delayMs: number
  /** Status of the failed attempt; `undefined` after a network error. */
  status: number | undefined
  /** The failed attempt's valid `Retry-After`, in milliseconds. */
  retryAfterMs: number | undefined
  /** The error the attempt failed with; `undefined` when it answered with a retryable status. */
  error: unknown
}

/** Options shared by `createFetch`, `createRetry` and `retry`. */
export interface RetryPolicyOptions {
  /**
   * Attempts per call, the first one included. 1 disables retries.
   * @default 3
   */
  maxAttempts?: number
  /**
   * Statuses that mean "overloaded, try again later". Add 502 and 504 to also retry gateway errors.
   * @default [429, 503]
   */
  retryStatusCodes?: readonly number[]
  /**
   * Decides whether a thrown error with no retryable status is worth retrying.
   * @default isNetworkError
   */
  retryOnError?: (error: unknown) => boolean
  /**
   * Backoff base: the n-th retry waits a uniform draw from [0, min(maxDelayMs, baseDelayMs · 2^(n−1))).
   * @default 100
   */
  baseDelayMs?: number
  /**
   * Backoff cap, in milliseconds. It does not cap a `Retry-After`.
   * @default 10_000
   */
  maxDelayMs?: number
  /**
   * The longest `Retry-After` the client will wait out, in milliseconds. When the server asks for
   * more, the client gives up at once (`RetryError`, reason `retry_after_too_long`) instead of either
   * waiting that long or retrying early. `Infinity` waits out any `Retry-After`.
   * @default 30_000
   */
  maxRetryAfterMs?: number
  /**
   * Spread added on top of a `Retry-After`, as a fraction of it: a `Retry-After: 10` is waited out as
   * 10 to 12 s at 0.2. The wait is never shorter than the `Retry-After`. 0 waits exactly as asked.
   * @default 0.2
   */
  retryAfterJitter?: number
  /**
   * Deadline for the whole call, retries and waits included, in milliseconds. Attempts are aborted when
   * it passes, and a retry that could not start before it is not waited for. No deadline when unset.
   * @default undefined
   */
  timeoutMs?: number
  /**
   * The retry budget charged for each retry. `false` for none.
   * @default a new RetryBudget() per client; none for a single retry() call
   */
  budget?: RetryBudget | false
  /**
   * Adaptive client-side throttling; share one instance between the clients of one server.
   * @default false
   */
  throttle?: AdaptiveThrottle | false
  /** Called before each wait for a retry, for logs and metrics. */
  onRetry?: (event: RetryEvent) => void
  /**
   * Time source, for tests.
   * @default systemClock
   */
  clock?: Clock
  /**
   * Random source in [0, 1), for tests.
   * @default Math.random
   */
  random?: RandomSource
}

/** Options of a single `retry()` call. */
export interface RetryOptions extends RetryPolicyOptions {
  /** Aborts the call, including any wait for a retry, at once; the call rejects with the signal's reason. */
  signal?: AbortSignal
}

/** Options of one call made through `createRetry()`. */
export interface RetryCallOptions {
  /** Aborts the call, including any wait for a retry, at once; the call rejects with the signal's reason. */
  signal?: AbortSignal
}

/** @internal Every key of RetryPolicyOptions (the compiler keeps the two in step). */
export const POLICY_OPTION_KEYS: readonly string[] = Object.keys({
  maxAttempts: true,
  retryStatusCodes: true,
  retryOnError: true,
  baseDelayMs: true,
  maxDelayMs: true,
  maxRetryAfterMs: true,
  retryAfterJitter: true,
  timeoutMs: true,
  budget: true,
  throttle: true,
  onRetry: true,
  clock: true,
  random: true,
} satisfies Record<keyof RetryPolicyOptions, true>)
const CALL_OPTION_KEYS: readonly string[] = Object.keys({ signal: true } satisfies Record<
  keyof RetryCallOptions,
  true
>)
const RETRY_OPTION_KEYS: readonly string[] = [
  ...POLICY_OPTION_KEYS,
  ...Object.keys({ signal: true } satisfies Record<
    Exclude<keyof RetryOptions, keyof RetryPolicyOptions>,
    true
  >),
]

/** @internal The resolved, validated, frozen form of {@link RetryPolicyOptions}. */
export interface RetryPolicy {
  readonly maxAttempts: number
  readonly retryStatusCodes: ReadonlySet<number>
  readonly retryOnError: (error: unknown) => boolean
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly maxRetryAfterMs: number
  readonly retryAfterJitter: number
  readonly timeoutMs: number | undefined
  readonly budget: RetryBudget | undefined
  readonly throttle: AdaptiveThrottle | undefined
  readonly onRetry: ((event: RetryEvent) => void) | undefined
  readonly clock: Clock
  readonly random: RandomSource
}

/** @internal `options` has been checked by the caller (`assertOptions`) against the keys it takes. */
export function resolvePolicy(options: RetryPolicyOptions | undefined, ownBudget: boolean): RetryPolicy {
  const clock = clockOption(options?.clock, systemClock)
  const baseDelayMs = numberOption('baseDelayMs', options?.baseDelayMs, 100, 0)
  const budget = instanceOption<RetryBudget>('budget', options?.budget, 'a RetryBudget or false', [
    'recordRequest',
    'tryAcquire',
  ])
  const throttle = instanceOption<AdaptiveThrottle>(
    'throttle',
    options?.throttle,
    'an AdaptiveThrottle or false',
    ['tryRequest', 'recordAccept', 'rejectionProbability'],
  )
  const timeoutMs = options?.timeoutMs
  return Object.freeze({
    maxAttempts: integerOption('maxAttempts', options?.maxAttempts, 3, 1),
    retryStatusCodes: statusListOption('retryStatusCodes', options?.retryStatusCodes, [429, 503]),
    retryOnError:
      functionOption<(error: unknown) => boolean>('retryOnError', options?.retryOnError) ?? isNetworkError,
    baseDelayMs,
    maxDelayMs: numberOption('maxDelayMs', options?.maxDelayMs, Math.max(10_000, baseDelayMs), baseDelayMs),
    maxRetryAfterMs: numberOption('maxRetryAfterMs', options?.maxRetryAfterMs, 30_000, 0),
    retryAfterJitter: numberOption('retryAfterJitter', options?.retryAfterJitter, 0.2, 0, 1),
    timeoutMs:
      timeoutMs === undefined
        ? undefined
        : numberOption('timeoutMs', timeoutMs, 0, 0, Number.POSITIVE_INFINITY, true),
    budget: budget === undefined ? (ownBudget ? new RetryBudget({ clock }) : undefined) : budget || undefined,
    throttle: throttle || undefined,
    onRetry: functionOption<(event: RetryEvent) => void>('onRetry', options?.onRetry),
    clock,
    random: randomOption(options?.random, Math.random),
  })
}

interface Failure {
  status: number | undefined
  headers: unknown
  response: ResponseLike | undefined
  error: unknown
}

/**
 * The header a server of ours puts on a 503 it answered because its own downstream call failed after
 * retries (docs/errors.md): the layer below has retried already, so retrying here too would multiply
 * the attempts reaching the overloaded service. Such a 503 is retried at most once per call, and only
 * with a token from the retry budget.
 */
export const RETRIED_BELOW_HEADER = 'backpressure-retried-below'

/**
 * @internal The retry loop behind `createFetch`, `createRetry` and `retry`. `mayRetry` false sends one
 * attempt and hands its outcome back untouched (a POST, a stream body): the budget and the throttle
 * still see it. `timeoutMs` replaces the policy's for this call (a deadline inherited from the request
 * being served).
 */
export async function execute<T>(
  policy: RetryPolicy,
  call: (info: AttemptInfo) => T | Promise<T>,
  userSignal: AbortSignal | undefined,
  mayRetry: boolean,
  callTimeoutMs: number | undefined = policy.timeoutMs,
): Promise<T> {
  userSignal?.throwIfAborted()
  const { clock, budget, throttle } = policy
  let timedOut = false
  let deadline: number | undefined
  let cancelDeadline: (() => void) | undefined
  let deadlineController: AbortController | undefined
  if (callTimeoutMs !== undefined) {
    const timeoutMs = callTimeoutMs
    const controller = new AbortController()
    deadlineController = controller
    deadline = clock.now() + timeoutMs
    cancelDeadline = callAt(clock, deadline, () => {
      timedOut = true
      controller.abort(new DOMException(`The call did not complete within ${timeoutMs} ms`, 'TimeoutError'))
    })
  }
  // Attempts get the caller's own signal whenever possible: as with fetch, aborting it after the call
  // returned must still cancel the response body the caller is reading.
  const signal =
    userSignal !== undefined && deadlineController !== undefined
      ? anySignal(userSignal, deadlineController.signal)
      : (userSignal ?? deadlineController?.signal ?? new AbortController().signal)

  budget?.recordRequest()
  let attempts = 0
  let totalDelayMs = 0
  let last: Failure | undefined
  let retryAfterMs: number | undefined
  let retriedBelow = false
  const giveUp = (reason: GiveUpReason, cause: unknown = last?.error): RetryError => {
    discardBody(last?.response)
    return new RetryError({
      reason,
      attempts,
      totalDelayMs,
      lastStatus: last?.status,
      retryAfterMs,
      cause,
    })
  }

  try {
    for (let attempt = 1; ; attempt++) {
      if (throttle !== undefined && !throttle.tryRequest()) {
        if (attempt === 1) throw new ThrottledError(throttle.rejectionProbability())
        throw giveUp('throttled')
      }
      attempts = attempt
      let failure: Failure
      try {
        const result = await call({ attempt, signal, deadline })
        const response = isResponseLike(result) ? result : undefined
        if (response === undefined || !policy.retryStatusCodes.has(response.status)) {
          throttle?.recordAccept()
          return result
        }
        if (!mayRetry) return result
        failure = { status: response.status, headers: response.headers, response, error: undefined }
      } catch (error) {
        if (userSignal?.aborted) throw userSignal.reason
        if (timedOut) throw giveUp('deadline', error)
        // Refused by the client's own concurrency limit: never sent, so the server saw nothing.
        if (ClientLimitError.is(error)) throw error
        const withStatus = errorStatus(error)
        if (withStatus !== undefined && policy.retryStatusCodes.has(withStatus.status)) {
          failure = { status: withStatus.status, headers: withStatus.headers, response: undefined, error }
        } else if (withStatus === undefined && policy.retryOnError(error)) {
          failure = { status: undefined, headers: undefined, response: undefined, error }
        } else {
          throttle?.recordAccept()
          throw error
        }
        if (!mayRetry) throw error
      }
      last = failure
      retryAfterMs = parseRetryAfter(
        headerValue(last.headers, 'retry-after'),
        clock.now(),
        headerValue(last.headers, 'date'),
      )

      if (attempt >= policy.maxAttempts) throw giveUp('max_attempts')
      if (headerValue(last.headers, RETRIED_BELOW_HEADER) !== undefined) {
        if (retriedBelow || budget === undefined) throw giveUp('retried_below')
        retriedBelow = true
      }
      if (retryAfterMs !== undefined && retryAfterMs > policy.maxRetryAfterMs)
        throw giveUp('retry_after_too_long')
      const delayMs = retryDelay(attempt, retryAfterMs, policy, policy.random)
      if (deadline !== undefined && clock.now() + delayMs >= deadline) throw giveUp('deadline')
      // Charged last, so a retry that was never going to happen does not spend the budget.
      if (budget !== undefined && !budget.tryAcquire())
        throw giveUp(retriedBelow ? 'retried_below' : 'budget_exhausted')

      discardBody(last.response)
      last.response = undefined
      policy.onRetry?.({ attempt, delayMs, status: last.status, retryAfterMs, error: last.error })
      const waitStart = clock.now()
      try {
        await sleep(delayMs, clock, signal)
      } catch (error) {
        totalDelayMs += clock.now() - waitStart
        if (userSignal?.aborted) throw userSignal.reason
        throw giveUp('deadline', error)
      }
      totalDelayMs += clock.now() - waitStart
    }
  } finally {
    cancelDeadline?.()
  }
}

/**
 * Calls `fn` until it succeeds, retrying the outcomes that mean "overloaded, try again later":
 *
 * - `fn` **throws an error carrying a status** in `retryStatusCodes` — `status`, `statusCode` or
 *   `response.status`, with `Retry-After` read from `headers` or `response.headers` (a `Headers` or a
 *   plain object). Our own `BackpressureError` and the errors of http-errors, ky, got and axios qualify.
 * - `fn` **returns a `Response`** (anything with a numeric `status` and `headers.get()`) whose status is in
 *   `retryStatusCodes`; its body is drained before the retry.
 * - `fn` **throws any other error** for which `retryOnError` returns true (network errors by default).
 *
 * Everything else is returned or thrown as is. Only wrap calls that are safe to repeat. A single call
 * has no budget unless you pass a shared `budget`; `createRetry()` makes one for a group of calls.
 * Fails with a `RetryError` when retrying stops, a `ThrottledError` when adaptive throttling refuses the
 * first attempt, or the signal's reason on abort.
 *
 * @example
 * ```ts
 * const user = await retry(async ({ signal }) => {
 *   const response = await fetch(`${base}/users/42`, { signal })
 *   if (!response.ok) throw Object.assign(new Error('users failed'), { status: response.status, headers: response.headers })
 *   return response.json()
 * }, { signal: AbortSignal.timeout(5000) })
 * ```
 */
export function retry<T>(fn: (attempt: AttemptInfo) => T | Promise<T>, options?: RetryOptions): Promise<T> {
  try {
    if (typeof fn !== 'function') throw new InvalidOptionError('fn', 'a function', fn)
    assertOptions(options, RETRY_OPTION_KEYS)
    const policy = resolvePolicy(options, false)
    return execute(policy, fn, signalOption(options?.signal), true)
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * Makes a `retry` bound to one set of options and one retry budget shared by all its calls (a budget
 * only means something across calls). Options are validated here, once.
 *
 * @example
 * ```ts
 * const withRetry = createRetry({ maxAttempts: 4 })
 * const rows = await withRetry(({ signal }) => inventory.query(sql, { signal }), { signal })
 * ```
 */
export function createRetry(
  options?: RetryPolicyOptions,
): <T>(fn: (attempt: AttemptInfo) => T | Promise<T>, callOptions?: RetryCallOptions) => Promise<T> {
  assertOptions(options, POLICY_OPTION_KEYS)
  const policy = resolvePolicy(options, true)
  return (fn, callOptions) => {
    try {
      if (typeof fn !== 'function') throw new InvalidOptionError('fn', 'a function', fn)
      assertOptions(callOptions, CALL_OPTION_KEYS)
      return execute(policy, fn, signalOption(callOptions?.signal), true)
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  // AbortSignal.any (Node 20.3+) holds its sources weakly, so a long-lived caller signal does not
  // collect a listener per call.
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b])
  const controller = new AbortController()
  const forward = (source: AbortSignal) => () => controller.abort(source.reason)
  if (a.aborted || b.aborted) controller.abort(a.aborted ? a.reason : b.reason)
  a.addEventListener('abort', forward(a), { once: true })
  b.addEventListener('abort', forward(b), { once: true })
  return controller.signal
}

function signalOption(value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value
  throw new InvalidOptionError('signal', 'an AbortSignal', value)
}
