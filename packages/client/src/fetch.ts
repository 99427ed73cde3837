import { InvalidOptionError } from './errors.js'
import { execute, POLICY_OPTION_KEYS, type RetryPolicyOptions, resolvePolicy } from './retry.js'
import { assertOptions, functionOption, methodListOption } from './validate.js'

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
}

const CLIENT_OPTION_KEYS: readonly string[] = [
  ...POLICY_OPTION_KEYS,
  ...Object.keys({ fetch: true, retryMethods: true } satisfies Record<
    Exclude<keyof ClientOptions, keyof RetryPolicyOptions>,
    true
  >),
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
      return execute(
        policy,
        (attempt) => fetchImpl(next(), { ...init, signal: attempt.signal }),
        signal,
        mayRetry,
      )
    } catch (error) {
      return Promise.reject(error)
    }
  }
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
