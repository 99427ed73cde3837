import { isNetworkError } from './classify.js'
import { ConcurrencyLimit, defaultConcurrencyLimit, type LimitOutcome } from './concurrency-limit.js'
import { InvalidOptionError } from './errors.js'
import {
  type AttemptInfo,
  execute,
  POLICY_OPTION_KEYS,
  type RetryPolicy,
  type RetryPolicyOptions,
  resolvePolicy,
} from './retry.js'
import { assertOptions, functionOption, instanceOption, methodListOption } from './validate.js'

/** Anything with `fetch`'s signature: the global `fetch`, undici's, or a test double. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** Options of {@link createFetch}. */
export interface ClientOptions extends RetryPolicyOptions {
  /**
   * The fetch to wrap. When unset, the global `fetch` is looked up on every call, so a test that
   * replaces it later is still seen.
   * @default globalThis.fetch
   */
  fetch?: FetchLike
  /**
   * Methods safe to send twice. Any other method is retried only when the request carries an
   * `Idempotency-Key` header; a plain POST is never retried.
   * @default ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']
   */
  retryMethods?: readonly string[]
  /**
   * The per-origin adaptive concurrency limit requests go through (docs/call-chains.md): a request
   * that cannot be sent in time fails locally with a `ClientLimitError` and is never sent. Pass your
   * own `ConcurrencyLimit` to keep these calls' limits apart, or `false` for none.
   * @default one ConcurrencyLimit shared by every createFetch in the process (one of its own, on that
   * clock, for a client given a `clock`)
   */
  concurrencyLimit?: ConcurrencyLimit | false
  /**
   * The request header that tells the server how many milliseconds the call has left (our servers read
   * `x-request-timeout-ms` by default and never start work past it). Sent when the call has a deadline:
   * `timeoutMs`, or the deadline of the request being served when `signal` is our server's
   * `req.signal`. A header the caller set is left alone. `false` sends none.
   * @default 'x-request-timeout-ms'
   */
  deadlineHeader?: string | false
}

/** The name our servers read a caller's remaining time from by default. */
export const DEADLINE_HEADER = 'x-request-timeout-ms'
// Put on `req.signal` by @backpressure/core when the request declared a deadline: a function giving the
// milliseconds left, so a call made while serving it inherits that deadline.
const kRemainingMs = Symbol.for('backpressure.remainingMs')

const CLIENT_OPTION_KEYS: readonly string[] = [
  ...POLICY_OPTION_KEYS,
  ...Object.keys({
    fetch: true,
    retryMethods: true,
    concurrencyLimit: true,
    deadlineHeader: true,
  } satisfies Record<Exclude<keyof ClientOptions, keyof RetryPolicyOptions>, true>),
]

const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']

/**
 * Wraps `fetch` so that 503s, 429s and network errors are retried the way an overloaded server needs:
 * never before its `Retry-After`, spread by full-jitter backoff otherwise, within a retry budget shared
 * by every call through this client, and (optionally) throttled locally while the server is rejecting
 * most requests. The returned function has `fetch`'s signature.
 *
 * A request is retried only when it is safe to send again: an idempotent method (or an
 * `Idempotency-Key` header) and a body that can be replayed — a string, `URLSearchParams`, `Blob`,
 * `ArrayBuffer`, typed array or `FormData`, or a `Request` whose body has not been read. A stream body
 * cannot be sent twice. Requests that are not retried pass through unchanged: their response is
 * returned whatever its status.
 *
 * Any other status (200, 404, 500, …) is returned as fetch returns it. When a retryable failure cannot
 * be retried any further, the call rejects with a `RetryError` (the last response's body is drained, its
 * status kept on the error). A `ThrottledError` means adaptive throttling refused to send the request;
 * an abort rejects with the signal's reason.
 *
 * @example
 * ```ts
 * const fetchInventory = createFetch({ maxAttempts: 3, timeoutMs: 5_000 })
 * const response = await fetchInventory('http://inventory.internal/items/42')
 * ```
 */
export function createFetch(options?: ClientOptions): typeof globalThis.fetch {
  assertOptions(options, CLIENT_OPTION_KEYS)
  const policy = resolvePolicy(options, true)
  const fetchOption = functionOption<FetchLike>('fetch', options?.fetch)
  const methods = methodListOption('retryMethods', options?.retryMethods, IDEMPOTENT_METHODS)
  const limitOption = instanceOption<ConcurrencyLimit>(
    'concurrencyLimit',
    options?.concurrencyLimit,
    'a ConcurrencyLimit or false',
    ['acquire', 'release'],
  )
  // A client given its own clock (a test's) gets a limit of its own on that clock: the shared one
  // keeps real time, and its waits would expire while the test's clock stood still.
  const limit =
    limitOption === undefined
      ? options?.clock === undefined
        ? defaultConcurrencyLimit
        : new ConcurrencyLimit({ clock: policy.clock })
      : limitOption || undefined
  const deadlineHeader = deadlineHeaderOption(options?.deadlineHeader)

  return function fetchWithRetry(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    try {
      const fetchImpl = fetchOption ?? globalThis.fetch
      const request = isRequest(input) ? input : undefined
      const idempotent =
        methods.has((init?.method ?? request?.method ?? 'GET').toUpperCase()) ||
        hasIdempotencyKey(init, request)

      let mayRetry = idempotent
      let next = (): string | URL | Request => input
      if (init?.body !== undefined && init.body !== null) {
        mayRetry &&= isReplayableBody(init.body)
      } else if (request !== undefined && request.body !== null) {
        // A fresh clone per attempt keeps the original unread; an already-read body cannot be replayed,
        // and fetch itself reports that.
        mayRetry &&= !request.bodyUsed
        if (mayRetry) next = () => request.clone()
      }

      const signal = init?.signal ?? request?.signal ?? undefined
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new InvalidOptionError('signal', 'an AbortSignal', signal)
      }
      const inherited = inheritedRemainingMs(signal)
      const timeoutMs =
        inherited !== undefined && (policy.timeoutMs === undefined || inherited < policy.timeoutMs)
          ? Math.max(inherited, Number.MIN_VALUE)
          : policy.timeoutMs
      const send = (attempt: AttemptInfo): Promise<Response> =>
        fetchImpl(next(), withDeadline(init, request, attempt, policy, deadlineHeader))
      if (limit === undefined) return execute(policy, send, signal, mayRetry, timeoutMs)
      const origin = originOf(input, request)
      return execute(
        policy,
        (attempt) => sendLimited(limit, origin, policy, attempt, signal, send),
        signal,
        mayRetry,
        timeoutMs,
      )
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

/**
 * One attempt through the origin's concurrency limit: wait for a slot (or fail locally), send, give the
 * slot back when the answer's headers arrive, with what it says about the origin.
 */
async function sendLimited(
  limit: ConcurrencyLimit,
  origin: string,
  policy: RetryPolicy,
  attempt: AttemptInfo,
  userSignal: AbortSignal | undefined,
  send: (attempt: AttemptInfo) => Promise<Response>,
): Promise<Response> {
  const remainingMs = attempt.deadline === undefined ? undefined : attempt.deadline - policy.clock.now()
  const acquired = limit.acquire(origin, remainingMs, attempt.signal)
  const slot = acquired instanceof Promise ? await acquired : acquired
  const sentAt = limit.clock.now()
  let outcome: LimitOutcome = 'ignore'
  try {
    const response = await send(attempt)
    outcome = response.status === 503 || response.status === 429 ? 'drop' : 'ok'
    return response
  } catch (error) {
    // The caller's own abort says nothing about the origin; our deadline passing, or the connection
    // failing, says it could not answer in time.
    if (!userSignal?.aborted && (attempt.signal.aborted || isNetworkError(error))) outcome = 'drop'
    throw error
  } finally {
    limit.release(slot, outcome, limit.clock.now() - sentAt)
  }
}

/** The attempt's init, with the time the call has left in the deadline header (unless the caller set it). */
function withDeadline(
  init: RequestInit | undefined,
  request: Request | undefined,
  attempt: AttemptInfo,
  policy: RetryPolicy,
  header: string | undefined,
): RequestInit {
  if (header === undefined || attempt.deadline === undefined) return { ...init, signal: attempt.signal }
  // As in fetch, headers given in `init` replace the Request's own, so the Request's are the base.
  const headers = new Headers(init?.headers ?? request?.headers)
  if (!headers.has(header)) {
    headers.set(header, String(Math.max(0, Math.floor(attempt.deadline - policy.clock.now()))))
  }
  return { ...init, headers, signal: attempt.signal }
}

function inheritedRemainingMs(signal: AbortSignal | undefined): number | undefined {
  const remaining = (signal as unknown as Record<symbol, unknown> | undefined)?.[kRemainingMs]
  if (typeof remaining !== 'function') return undefined
  const ms: unknown = remaining()
  return typeof ms === 'number' && Number.isFinite(ms) ? Math.max(0, ms) : undefined
}

function originOf(input: string | URL | Request, request: Request | undefined): string {
  if (input instanceof URL) return input.origin
  try {
    return new URL(request?.url ?? (input as string)).origin
  } catch {
    // fetch reports the bad URL itself; every such call shares one key.
    return 'invalid:'
  }
}

function deadlineHeaderOption(value: unknown): string | undefined {
  if (value === false) return undefined
  if (value === undefined) return DEADLINE_HEADER
  if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)) {
    throw new InvalidOptionError('deadlineHeader', 'a header name or false', value)
  }
  return value.toLowerCase()
}

function isRequest(input: unknown): input is Request {
  return (
    typeof input === 'object' &&
    input !== null &&
    !(input instanceof URL) &&
    typeof (input as Request).clone === 'function' &&
    typeof (input as Request).method === 'string'
  )
}

function hasIdempotencyKey(init: RequestInit | undefined, request: Request | undefined): boolean {
  // As in fetch, headers given in `init` replace the Request's own.
  if (init?.headers !== undefined) return new Headers(init.headers).has('idempotency-key')
  return request?.headers.has('idempotency-key') ?? false
}

/** Bodies fetch serializes afresh on every call; streams and async iterables are read once and gone. */
function isReplayableBody(body: unknown): boolean {
  return (
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob ||
    body instanceof FormData
  )
}
