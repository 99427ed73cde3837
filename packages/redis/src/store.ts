import {
  InvalidOptionError,
  type TokenBucketPolicy,
  type TokenBucketResult,
  type TokenBucketStore,
} from '@backpressure/core'
import type { Cluster, Redis } from 'ioredis'
import { checkedClient, functionOption, msOption } from './options.js'
import { TAKE_SCRIPT } from './script.js'

/** What to answer when Redis cannot: fail the request, or let it through. */
export type RedisErrorPolicy = 'reject' | 'allow'

/** Whose clock refills the buckets. */
export type RedisTimeSource = 'redis' | 'caller'

export interface RedisTokenBucketStoreOptions {
  /**
   * The ioredis client (a `Redis`, or a `Cluster`: each decision touches one key) the store sends its
   * script through. The store never connects, quits or configures it; configure it to fail fast
   * (`enableOfflineQueue: false`, `maxRetriesPerRequest`, `commandTimeout`) so that a Redis outage does
   * not hold requests.
   */
  readonly client: Redis | Cluster
  /**
   * Put in front of every bucket's key (after the client's own `keyPrefix`, if any).
   * @default 'bp:tb:'
   */
  readonly prefix?: string
  /**
   * The shortest time, in ms, a key lives after its last take. By default a key expires exactly when
   * its bucket would be full again, the earliest moment forgetting it changes nothing; `ttl` only ever
   * keeps keys longer, so it never changes a decision. Needed with `time: 'caller'` when the limiter's
   * clock does not run at real speed (a test's ManualClock), since expiry always runs on Redis's clock.
   * @default undefined (expire when full)
   */
  readonly ttl?: number
  /**
   * `'redis'`: refill by Redis's clock (`TIME`, inside the script), so a fleet whose machines' clocks
   * differ shares one timeline, and the `now` the limiter passes is ignored. `'caller'`: refill by the
   * `now` the limiter passes (its `clock`); only sound when every caller's clock is the same clock —
   * tests with a ManualClock, or one process. The limiter's default clock is `performance.now()`,
   * whose origin is each process's start: never use `'caller'` with it across processes.
   * @default 'redis'
   */
  readonly time?: RedisTimeSource
  /**
   * When the script fails (Redis down, a timeout, a key of the wrong type): `'reject'` rejects the
   * take, so the HTTP layer fails the request through the framework's error handling (500 by default);
   * `'allow'` fails open, answering as a full bucket would (admission control still protects the
   * server; only the per-client limit lapses while Redis is out).
   * @default 'reject'
   */
  readonly onError?: RedisErrorPolicy
  /** Called with every failure, whatever `onError` decides: log or count Redis outages here. */
  readonly reportError?: (error: unknown, key: string) => void
}

/** Every key of RedisTokenBucketStoreOptions (the compiler keeps the two in step): any other is refused. */
const OPTION_KEYS: readonly string[] = Object.keys({
  client: true,
  prefix: true,
  ttl: true,
  time: true,
  onError: true,
  reportError: true,
} satisfies Record<keyof RedisTokenBucketStoreOptions, true>)

// Same tolerance as the memory store: float residue never costs a client a token.
const EPSILON = 1e-9
// A name unlikely to clash with the user's own defineCommand names on a shared client.
const COMMAND = 'backpressureTokenBucketTake'

type TakeCommand = (key: string, ...args: (string | number)[]) => Promise<[number, string]>

/**
 * A token-bucket store in Redis, shared by every instance that points at the same Redis: one bucket per
 * key, each decision one atomic Lua script (EVALSHA, falling back to EVAL the first time on each
 * connection). Keys expire when their bucket is full again, so Redis holds only the keys active within
 * one refill window.
 *
 * @example
 * import { Redis } from 'ioredis'
 * import { backpressure } from '@backpressure/express'
 * import { RedisTokenBucketStore } from '@backpressure/redis'
 *
 * const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
 * app.use(backpressure({
 *   rateLimit: { key: (req) => req.ip, capacity: 20, refillPerSecond: 5, store: new RedisTokenBucketStore({ client: redis }) },
 * }))
 */
export class RedisTokenBucketStore implements TokenBucketStore<Promise<TokenBucketResult>> {
  readonly client: Redis | Cluster
  readonly prefix: string
  readonly ttl: number | undefined
  readonly time: RedisTimeSource
  readonly onError: RedisErrorPolicy
  /**
   * True with a `Cluster` client: each key is written `prefix{key}`, a hash tag, so a bucket's slot is
   * chosen by the caller's key alone (spreading buckets over the shards whatever the prefix, as long as
   * the prefix has no braces of its own) and whatever a script touches for one bucket is on one slot.
   */
  readonly hashTagged: boolean
  private readonly reportError: ((error: unknown, key: string) => void) | undefined
  private readonly command: TakeCommand
  private readonly minTtlArg: string

  constructor(options: RedisTokenBucketStoreOptions) {
    const client = checkedClient(options, OPTION_KEYS)
    const prefix = options.prefix ?? 'bp:tb:'
    if (typeof prefix !== 'string') throw new InvalidOptionError('prefix', 'a string', prefix)
    const ttl = msOption('ttl', options.ttl)
    const time = options.time ?? 'redis'
    if (time !== 'redis' && time !== 'caller') {
      throw new InvalidOptionError('time', "'redis' or 'caller'", time)
    }
    const onError = options.onError ?? 'reject'
    if (onError !== 'reject' && onError !== 'allow') {
      throw new InvalidOptionError('onError', "'reject' or 'allow'", onError)
    }
    const reportError = functionOption('reportError', options.reportError)

    this.client = client
    this.prefix = prefix
    this.ttl = ttl
    this.time = time
    this.onError = onError
    this.reportError = reportError
    this.minTtlArg = String(ttl ?? 0)
    this.hashTagged = (client as Cluster).isCluster === true
    // defineCommand hashes the script once and sends EVALSHA, or EVAL on a connection that has not
    // seen it yet (and again after NOSCRIPT, when Redis restarted or flushed its script cache).
    this.client.defineCommand(COMMAND, { numberOfKeys: 1, lua: TAKE_SCRIPT })
    const command = (this.client as unknown as Record<string, TakeCommand>)[COMMAND]!
    this.command = command.bind(this.client)
  }

  /** Refills `key`'s bucket, takes `cost` tokens if it holds them, in one atomic script. */
  take(key: string, cost: number, now: number, policy: TokenBucketPolicy): Promise<TokenBucketResult> {
    const { capacity, refillPerSecond } = policy
    const perMs = refillPerSecond / 1000
    return this.command(
      this.hashTagged ? `${this.prefix}{${key}}` : this.prefix + key,
      capacity,
      perMs,
      cost,
      this.time === 'caller' ? now : '',
      this.minTtlArg,
    ).then(
      (reply) => result(reply[0] === 1, Number(reply[1]), cost, capacity, perMs),
      (error: unknown) => {
        if (this.reportError !== undefined) this.reportError(error, key)
        if (this.onError === 'reject') throw error
        // Fail open as a full bucket would answer: nothing is known about this key.
        return result(true, Math.max(0, capacity - cost), cost, capacity, perMs)
      },
    )
  }
}

/** The memory store's formulas, applied to the tokens the script left. */
function result(
  allowed: boolean,
  tokens: number,
  cost: number,
  capacity: number,
  perMs: number,
): TokenBucketResult {
  return {
    allowed,
    remaining: Math.floor(tokens + EPSILON),
    retryAfterMs: allowed ? 0 : (cost - tokens) / perMs,
    resetMs: tokens + EPSILON >= capacity ? 0 : (capacity - tokens) / perMs,
  }
}
