import { clamp, MAX_SF_INTEGER, MAX_TIMER_MS, retryAfterSeconds } from './bounds.js'
import { type Clock, systemClock } from './clock.js'
import { InvalidOptionError } from './errors.js'
import { PendingTakes } from './pending-takes.js'
import { assertKnownKeys, assertObject, integerOption, numberOption } from './validate.js'

/** What a bucket holds and how fast it refills; a store receives it with every `take`. */
export interface TokenBucketPolicy {
  /** Tokens a full bucket holds: the burst a key may spend at once. */
  readonly capacity: number
  /** Tokens added back per second, up to `capacity`. */
  readonly refillPerSecond: number
}

/** The outcome of one `take`. */
export interface TokenBucketResult {
  /** True when the bucket held `cost` tokens and they were taken. */
  readonly allowed: boolean
  /** Whole tokens left in the bucket after this take (rounded down). */
  readonly remaining: number
  /**
   * Milliseconds until the bucket holds `cost` tokens again (for `cost` 1, until the next token);
   * 0 when allowed. Whole-second `Retry-After` values round this up, so a client that honours them
   * never comes back before the token is there.
   */
  readonly retryAfterMs: number
  /** Milliseconds until the bucket is full again (0 when it is full). */
  readonly resetMs: number
}

/**
 * Where buckets live. `take` refills the key's bucket lazily for the time passed since it was last
 * touched, then takes `cost` tokens if it holds them — one atomic decision per call. It may return a
 * promise, so a store shared by many instances (the planned `@backpressure/redis`, one Lua script per
 * decision) plugs in without changing callers.
 */
export interface TokenBucketStore<
  R extends TokenBucketResult | Promise<TokenBucketResult> = TokenBucketResult | Promise<TokenBucketResult>,
> {
  take(key: string, cost: number, now: number, policy: TokenBucketPolicy): R
  /**
   * What the limiter answers for an asynchronous store that did not answer within `timeoutMs`, or was
   * not asked because `maxPending` calls were waiting already: `'reject'` fails the take (the HTTP
   * layer then fails the request through the framework's error handling), `'allow'` answers as a full
   * bucket would. `@backpressure/redis` sets it from its own `onError`, so a timeout follows the same
   * policy as a Redis error. @default 'allow'
   */
  readonly onError?: 'reject' | 'allow'
}

/** What a store's `take` returns: a result, or a promise of one for an asynchronous store. */
export type TokenBucketAnswer = TokenBucketResult | Promise<TokenBucketResult>

// Tolerates float error in `tokens + elapsed * rate`, so a client that waited exactly the advertised
// time is never refused for a rounding residue of 1e-15 of a token.
const EPSILON = 1e-9

/** One key's bucket, linked into its store's recency lists (the links live on the bucket: O(1), no allocation). */
class Bucket {
  prev: Bucket | undefined = undefined
  next: Bucket | undefined = undefined
  /** When it holds `capacity` again: from then on, dropping it loses nothing. */
  fullAt: number
  /** Its last take was refused: it sits in the store's `limited` list. */
  limited = false

  constructor(
    readonly key: string,
    public tokens: number,
    public updatedAt: number,
  ) {
    this.fullAt = updatedAt
  }
}

/** Buckets in order of last use, least recent first. */
class RecencyList {
  head: Bucket | undefined = undefined
  private tail: Bucket | undefined = undefined

  push(bucket: Bucket): void {
    bucket.prev = this.tail
    bucket.next = undefined
    if (this.tail === undefined) this.head = bucket
    else this.tail.next = bucket
    this.tail = bucket
  }

  remove(bucket: Bucket): void {
    if (bucket.prev === undefined) this.head = bucket.next
    else bucket.prev.next = bucket.next
    if (bucket.next === undefined) this.tail = bucket.prev
    else bucket.next.prev = bucket.prev
    bucket.prev = undefined
    bucket.next = undefined
  }

  clear(): void {
    this.head = undefined
    this.tail = undefined
  }
}

/**
 * The in-process store: one bucket per key, bounded by `maxKeys`. Every operation is O(1).
 *
 * Which bucket goes when a new key arrives and the store is full decides whether a client can reset
 * its own limit by cycling other keys through it (one limited key survived no more than `maxKeys`
 * fresh ones when the least recently used went first). So buckets are kept in two recency lists — those
 * whose last take was let through, and those whose last take was refused (the clients being limited
 * right now) — and the one dropped is, in this order:
 * 1. the least recently used of either list if it is full again by now: it carries no state, dropping
 *    it changes no decision;
 * 2. else the least recently used bucket that was let through: it loses at most the tokens it spent,
 *    which a fresh key would have been given anyway, so a flood of fresh keys only ever pushes out
 *    its own kind and never frees a limited key;
 * 3. else (every bucket is limited) the least recently limited one.
 * New keys are always tracked and served: refusing them instead would let a flood of keys lock every
 * new client out. To push out a limited key, a client must first get `maxKeys` other keys refused —
 * spending about `capacity` tokens on each — after that key's last refusal.
 *
 * Recency lives in linked lists on the buckets, not in the Map's insertion order: taking the Map's
 * first key after many deletions at its front walks their tombstones (measured: 20 µs per new key at
 * 10,000 keys).
 */
const MEMORY_STORE_OPTION_KEYS = ['maxKeys']

export class MemoryTokenBucketStore implements TokenBucketStore<TokenBucketResult> {
  readonly maxKeys: number
  private readonly buckets = new Map<string, Bucket>()
  private readonly open = new RecencyList()
  private readonly limited = new RecencyList()

  /** `maxKeys`: the most keys held at once (default 10000). */
  constructor(options: { readonly maxKeys?: number | undefined } = {}) {
    assertObject('options', options as unknown)
    assertKnownKeys('', options, MEMORY_STORE_OPTION_KEYS)
    this.maxKeys = integerOption('maxKeys', options.maxKeys, 10_000, 1)
  }

  /** Keys held now. */
  get size(): number {
    return this.buckets.size
  }

  /** True when a bucket for `key` is held. */
  has(key: string): boolean {
    return this.buckets.has(key)
  }

  take(key: string, cost: number, now: number, policy: TokenBucketPolicy): TokenBucketResult {
    const { capacity, refillPerSecond } = policy
    const perMs = refillPerSecond / 1000
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict(now)
      bucket = new Bucket(key, capacity, now)
      this.buckets.set(key, bucket)
    } else {
      ;(bucket.limited ? this.limited : this.open).remove(bucket)
      const elapsed = now - bucket.updatedAt
      if (elapsed > 0) bucket.tokens = Math.min(capacity, bucket.tokens + elapsed * perMs)
      // A clock that went backwards must not mint tokens later: time is only ever taken forward.
      bucket.updatedAt = Math.max(bucket.updatedAt, now)
    }

    const allowed = bucket.tokens + EPSILON >= cost
    if (allowed) bucket.tokens = Math.max(0, bucket.tokens - cost)
    const tokens = bucket.tokens
    const resetMs = tokens + EPSILON >= capacity ? 0 : (capacity - tokens) / perMs
    bucket.fullAt = bucket.updatedAt + resetMs
    bucket.limited = !allowed
    ;(allowed ? this.open : this.limited).push(bucket)
    return {
      allowed,
      remaining: Math.floor(tokens + EPSILON),
      retryAfterMs: allowed ? 0 : (cost - tokens) / perMs,
      resetMs,
    }
  }

  /** Drops every bucket. */
  clear(): void {
    this.buckets.clear()
    this.open.clear()
    this.limited.clear()
  }

  /** Makes room for one key (the order is explained on the class). */
  private evict(now: number): void {
    const open = this.open.head
    const limited = this.limited.head
    let victim: Bucket
    if (open !== undefined && open.fullAt <= now) victim = open
    else if (limited !== undefined && limited.fullAt <= now) victim = limited
    else victim = (open ?? limited) as Bucket
    ;(victim.limited ? this.limited : this.open).remove(victim)
    this.buckets.delete(victim.key)
  }
}

export interface TokenBucketOptions<R extends TokenBucketAnswer = TokenBucketResult> {
  /** Tokens a full bucket holds: how many requests (of cost 1) a key may send in one burst. */
  readonly capacity: number
  /** Tokens added back per second, up to `capacity`; fractions allowed (`0.5` = one every 2 s). */
  readonly refillPerSecond: number
  /** The most keys the default memory store holds (when full, buckets that are full again go first, limited ones last). Not allowed with `store`. @default 10000 */
  readonly maxKeys?: number
  /** Where buckets live. @default a MemoryTokenBucketStore bounded by `maxKeys` */
  readonly store?: TokenBucketStore<R>
  /**
   * The longest an asynchronous store may take to answer, in ms; past it the take is answered by the
   * store's `onError` policy (`'allow'` unless the store says `'reject'`). @default 250
   */
  readonly timeoutMs?: number
  /**
   * The most calls to an asynchronous store waiting at once; beyond it the store is not called and the
   * take is answered by the store's `onError` policy at once. @default 1000
   */
  readonly maxPending?: number
  /** Time source; tests pass a ManualClock. @default the monotonic system clock */
  readonly clock?: Clock
}

/** Every key of TokenBucketOptions (the compiler keeps the two in step): any other is refused. */
const TOKEN_BUCKET_OPTION_KEYS: readonly string[] = Object.keys({
  capacity: true,
  refillPerSecond: true,
  maxKeys: true,
  store: true,
  timeoutMs: true,
  maxPending: true,
  clock: true,
} satisfies Record<keyof TokenBucketOptions, true>)

/**
 * Per-key token buckets: each key may spend `capacity` tokens at once and gets `refillPerSecond` back.
 * Refill is computed when a key is seen (no timers), and the memory store is bounded in keys. Calls to
 * an asynchronous store are bounded in time (`timeoutMs`) and in number (`maxPending`).
 *
 * @example
 * const limiter = new TokenBucketLimiter({ capacity: 20, refillPerSecond: 5 })
 * const result = limiter.take(clientIp) // a promise only with an async store
 * if (!result.allowed) reply429(Math.max(1, Math.ceil(result.retryAfterMs / 1000)))
 */
export class TokenBucketLimiter<R extends TokenBucketAnswer = TokenBucketResult> {
  readonly policy: TokenBucketPolicy
  readonly store: TokenBucketStore<R>
  readonly clock: Clock
  private readonly pending: PendingTakes

  /** `prefix` names the options in error messages where they are nested (`'rateLimit.'`). */
  constructor(options: TokenBucketOptions<R>, prefix = '') {
    assertObject(prefix === '' ? 'options' : prefix.slice(0, -1), options as unknown)
    assertKnownKeys(prefix.slice(0, -1), options, TOKEN_BUCKET_OPTION_KEYS)
    const capacity = options.capacity
    if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 1) {
      throw new InvalidOptionError(`${prefix}capacity`, 'an integer from 1 and up', capacity)
    }
    const refillPerSecond = options.refillPerSecond
    if (typeof refillPerSecond !== 'number' || !Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
      throw new InvalidOptionError(`${prefix}refillPerSecond`, 'a finite number above 0', refillPerSecond)
    }
    this.policy = Object.freeze({ capacity, refillPerSecond })
    if (options.store !== undefined) {
      if (options.maxKeys !== undefined) {
        throw new InvalidOptionError(
          `${prefix}maxKeys`,
          `unset when \`${prefix}store\` is given (bound the store itself)`,
          options.maxKeys,
        )
      }
      const store = options.store as unknown
      if (
        typeof store !== 'object' ||
        store === null ||
        typeof (store as TokenBucketStore).take !== 'function'
      ) {
        throw new InvalidOptionError(
          `${prefix}store`,
          'an object with a take(key, cost, now, policy) method',
          store,
        )
      }
      this.store = options.store
    } else {
      // Without a store, R is its default, the memory store's synchronous result.
      this.store = new MemoryTokenBucketStore({
        maxKeys: integerOption(`${prefix}maxKeys`, options.maxKeys, 10_000, 1),
      }) as TokenBucketStore as TokenBucketStore<R>
    }
    const clock = options.clock ?? systemClock
    if (typeof clock !== 'object' || clock === null || typeof clock.now !== 'function') {
      throw new InvalidOptionError('clock', 'a Clock (an object with now())', clock)
    }
    // Only an asynchronous store needs timers (for its deadlines).
    if (options.store !== undefined && typeof clock.setTimeout !== 'function') {
      throw new InvalidOptionError('clock', 'a Clock (an object with now() and setTimeout())', clock)
    }
    this.clock = clock
    const onError = (this.store as TokenBucketStore).onError
    if (onError !== undefined && onError !== 'reject' && onError !== 'allow') {
      throw new InvalidOptionError(`${prefix}store.onError`, "'reject', 'allow' or unset", onError)
    }
    this.pending = new PendingTakes(
      numberOption(`${prefix}timeoutMs`, options.timeoutMs, 250, 0, MAX_TIMER_MS, true),
      integerOption(`${prefix}maxPending`, options.maxPending, 1000, 1),
      onError !== 'reject',
      this.policy,
      clock,
    )
  }

  /**
   * Takes `cost` tokens from `key`'s bucket if it holds them. A promise only when the store is async.
   * @param cost tokens this request spends, from 0 to `capacity`. @default 1
   */
  take(key: string, cost = 1): R {
    if (typeof cost !== 'number' || !(cost >= 0 && cost <= this.policy.capacity)) {
      throw new InvalidOptionError('cost', `a number from 0 to capacity (${this.policy.capacity})`, cost)
    }
    // Only calls to an asynchronous store are ever pending, so a synchronous one never gets here.
    if (this.pending.full) return this.pending.refuse(cost) as R
    const answer = this.store.take(key, cost, this.clock.now(), this.policy)
    if (typeof (answer as { then?: unknown }).then !== 'function') return answer
    return this.pending.watch(answer as PromiseLike<TokenBucketResult>, cost) as R
  }

  /**
   * The window a full bucket refills over, in whole seconds: the `w` of `RateLimit-Policy`, so from 1
   * to the largest Structured Field integer (15 digits) however slow the refill.
   */
  get windowSeconds(): number {
    return clamp(Math.ceil(this.policy.capacity / this.policy.refillPerSecond), 1, MAX_SF_INTEGER)
  }
}

/**
 * Whole seconds to wait for `ms`, rounded up so never earlier, from 1 to a day: a valid `Retry-After`
 * (a bucket whose next token is further away says so again when the client comes back).
 */
export function wholeSecondsAfter(ms: number): number {
  return retryAfterSeconds(ms / 1000)
}
