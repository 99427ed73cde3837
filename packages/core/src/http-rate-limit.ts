import type { ServerResponse } from 'node:http'
import { sfInteger } from './bounds.js'
import type { BackpressureController } from './controller.js'
import { InvalidOptionError } from './errors.js'
import {
  type TokenBucketAnswer,
  TokenBucketLimiter,
  type TokenBucketResult,
  type TokenBucketStore,
} from './token-bucket.js'
import { assertKnownKeys, assertObject, booleanOption, functionOption } from './validate.js'

/**
 * Per-client rate limiting with token buckets: over the limit, a request gets `429` with `Retry-After`
 * (never earlier than the next token) and the IETF `RateLimit-Policy` / `RateLimit` headers, before it
 * reaches the queue. See docs/rate-limiting.md.
 *
 * @example
 * // Express: 20 requests at once per address, 5 more every second
 * app.use(backpressure({ rateLimit: { key: (req) => req.ip ?? '', capacity: 20, refillPerSecond: 5 } }))
 */
export interface RateLimitOptions<Req> {
  /**
   * The client a request counts against: an API key, a user id, an address. Requests for which it
   * returns `undefined` are not rate limited. Behind a proxy, read the client address the way your
   * framework's trusted-proxy setting does (`req.ip`), never a raw `X-Forwarded-For`.
   */
  readonly key: (req: Req) => string | undefined
  /** Tokens a full bucket holds: the burst a key may send at once (the `q` of `RateLimit-Policy`). */
  readonly capacity: number
  /** Tokens each key gets back per second, up to `capacity`; fractions allowed. */
  readonly refillPerSecond: number
  /** Tokens a request spends: a number, or a function of the request (0 to `capacity`). @default 1 */
  readonly cost?: number | ((req: Req) => number)
  /** The most keys the in-memory store holds (when full, buckets that are full again go first, limited ones last). Not allowed with `store`. @default 10000 */
  readonly maxKeys?: number
  /** Where buckets live; may answer asynchronously (a store shared by a fleet). @default a bounded in-memory store */
  readonly store?: TokenBucketStore
  /**
   * The longest an asynchronous store may take to answer, in ms; requests wait for it before
   * admission. Past it the request is answered by the store's `onError` policy: let through (the
   * default, `'allow'`), or failed through the framework's error handling (`'reject'`, the default of
   * `@backpressure/redis`). @default 250
   */
  readonly timeoutMs?: number
  /** The most requests waiting on an asynchronous store at once; beyond it the store's `onError` policy answers at once. @default 1000 */
  readonly maxPending?: number
  /** The policy's name in the `RateLimit-Policy` and `RateLimit` headers. @default 'default' */
  readonly policyName?: string
  /**
   * Also send `RateLimit-Policy` and `RateLimit` on requests that are let through (429s always carry
   * them). Two headers per response: turn it off if you do not want to pay for them.
   * @default true
   */
  readonly headers?: boolean
}

/** Every key of RateLimitOptions (the compiler keeps the two in step): any other is refused. */
const RATE_LIMIT_OPTION_KEYS: readonly string[] = Object.keys({
  key: true,
  capacity: true,
  refillPerSecond: true,
  cost: true,
  maxKeys: true,
  store: true,
  timeoutMs: true,
  maxPending: true,
  policyName: true,
  headers: true,
} satisfies Record<keyof RateLimitOptions<unknown>, true>)

/** The rate limit as resolved at construction. */
export interface ResolvedRateLimit<Req> {
  readonly limiter: TokenBucketLimiter<TokenBucketAnswer>
  readonly key: (req: Req) => string | undefined
  readonly fixedCost: number
  readonly costFn: ((req: Req) => number) | undefined
  /** `"name"` as a Structured Field string, ready to prefix the `RateLimit` value. */
  readonly quotedName: string
  /** The whole `RateLimit-Policy` value, built once. */
  readonly policy: string
  readonly headers: boolean
}

export function setRateLimitHeaders(
  res: ServerResponse,
  result: TokenBucketResult,
  rateLimit: ResolvedRateLimit<never>,
): void {
  res.setHeader('RateLimit-Policy', rateLimit.policy)
  res.setHeader(
    'RateLimit',
    rateLimitValue(rateLimit.quotedName, result.remaining, Math.ceil(result.resetMs / 1000)),
  )
}

/**
 * The `RateLimit` value: `r` and `t` as Structured Field integers (non-negative, at most 15 digits,
 * RFC 9651), whatever a store answered — a fraction, a negative, NaN or 1e+22 would make the whole
 * field invalid. `seconds` is already rounded up by the caller.
 */
export function rateLimitValue(quotedName: string, remaining: number, seconds: number): string {
  return `${quotedName};r=${sfInteger(remaining)};t=${sfInteger(seconds)}`
}

// A Structured Field string (RFC 9651 §3.3.3) holds printable ASCII; `"` and `\\` would need escaping,
// so a policy name is kept to the characters that never do.
const POLICY_NAME = /^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/

export function resolveRateLimit<Req>(
  option: RateLimitOptions<Req> | undefined,
  controller: BackpressureController,
): ResolvedRateLimit<Req> | undefined {
  if (option === undefined) return undefined
  assertObject('rateLimit', option as unknown)
  assertKnownKeys('rateLimit', option, RATE_LIMIT_OPTION_KEYS)
  const key = functionOption<(req: Req) => string | undefined>('rateLimit.key', option.key)
  if (key === undefined)
    throw new InvalidOptionError('rateLimit.key', 'a function of the request', option.key)
  const limiter = new TokenBucketLimiter<TokenBucketAnswer>(
    {
      capacity: option.capacity,
      refillPerSecond: option.refillPerSecond,
      ...(option.maxKeys === undefined ? {} : { maxKeys: option.maxKeys }),
      ...(option.store === undefined ? {} : { store: option.store }),
      ...(option.timeoutMs === undefined ? {} : { timeoutMs: option.timeoutMs }),
      ...(option.maxPending === undefined ? {} : { maxPending: option.maxPending }),
      clock: controller.clock,
    },
    'rateLimit.',
  )
  const cost = option.cost
  let fixedCost = 1
  let costFn: ((req: Req) => number) | undefined
  if (typeof cost === 'function') costFn = cost
  else if (cost !== undefined) {
    if (typeof cost !== 'number' || !(cost >= 0 && cost <= limiter.policy.capacity)) {
      throw new InvalidOptionError(
        'rateLimit.cost',
        `a number from 0 to rateLimit.capacity (${limiter.policy.capacity}) or a function`,
        cost,
      )
    }
    fixedCost = cost
  }
  const name = option.policyName ?? 'default'
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) {
    throw new InvalidOptionError(
      'rateLimit.policyName',
      'a non-empty string of printable ASCII without `"` or `\\`',
      name,
    )
  }
  const quotedName = `"${name}"`
  return Object.freeze({
    limiter,
    key,
    fixedCost,
    costFn,
    quotedName,
    policy: `${quotedName};q=${sfInteger(limiter.policy.capacity)};w=${limiter.windowSeconds}`,
    headers: booleanOption('rateLimit.headers', option.headers, true),
  })
}
