import {
  InvalidOptionError,
  ManualClock,
  MemoryTokenBucketStore,
  seededRandom,
  TokenBucketLimiter,
  type TokenBucketResult,
} from '@backpressure/core'
import { Redis, type RedisOptions } from 'ioredis'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import { RedisTokenBucketStore, type RedisTokenBucketStoreOptions } from '../src/index.js'
import { freePort, type RedisServer, redisAvailable, SKIP_MESSAGE, startRedis } from './redis-server.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!redisAvailable)(
  `RedisTokenBucketStore against a real redis-server${redisAvailable ? '' : ` (${SKIP_MESSAGE})`}`,
  () => {
    let server: RedisServer
    const clients: Redis[] = []
    let admin: Redis
    let prefixes = 0

    /** A client of the test server (or of `port`), closed after all tests. */
    function connect(options: RedisOptions = {}): Redis {
      const client = new Redis({ host: '127.0.0.1', port: server.port, ...options })
      // Connection errors are asserted through the commands; keep ioredis from printing them too.
      client.on('error', () => {})
      clients.push(client)
      return client
    }

    /** A store with a prefix no other test uses, so tests never share buckets by accident. */
    function store(options: Partial<RedisTokenBucketStoreOptions> = {}) {
      const prefix = `test${prefixes++}:`
      return new RedisTokenBucketStore({ client: connect(), prefix, ...options })
    }

    beforeAll(async () => {
      server = await startRedis()
      admin = connect()
    })

    afterAll(async () => {
      for (const client of clients) client.disconnect()
      await server?.stop()
    })

    it('answers exactly as the memory store for the same times (time: caller, seeded schedule)', async () => {
      const random = seededRandom(7)
      // The manual clock does not move with real time, and expiry runs on Redis's clock: `ttl` keeps
      // keys for the length of the test so that only the refill arithmetic is compared.
      const redis = store({ time: 'caller', ttl: 600_000 })
      const memory = new MemoryTokenBucketStore()
      let compared = 0
      for (let round = 0; round < 40; round++) {
        const policy = {
          capacity: 1 + Math.floor(random() * 20),
          refillPerSecond: [0.1, 0.3, 1, 3, 7, 50][Math.floor(random() * 6)]!,
        }
        let now = 1_000 + Math.floor(random() * 1e6)
        const key = `round-${round}`
        for (let step = 0; step < 25; step++) {
          now += Math.floor(random() * 400)
          // Now and then a clock that steps back: neither store may mint tokens from it.
          if (random() < 0.05) now -= 250
          const cost = Math.floor(random() * (policy.capacity + 1))
          const expected = memory.take(key, cost, now, policy)
          expect(await redis.take(key, cost, now, policy)).toEqual(expected)
          compared++
        }
      }
      expect(compared).toBe(1000)
    })

    it('gives the memory store’s burst, refill and cost answers on Redis’s clock (time: redis)', async () => {
      const policy = { capacity: 5, refillPerSecond: 4 } // a token every 250 ms
      const redis = store({ prefix: 'clock:' })
      const memory = new MemoryTokenBucketStore()
      let local = performance.now()
      let remote = 0
      // After each take the script has written the time it used (Redis's TIME, in ms) into the bucket:
      // the memory store, given that very time, must answer exactly the same — no tolerance needed.
      // Every step leaves the bucket short of full, so the key (and its time) is always there.
      const both = async (cost: number) => {
        const actual = await redis.take('k', cost, 0, policy)
        const ts = Number(await admin.hget('clock:k', 'ts'))
        expect(ts).toBeGreaterThanOrEqual(remote)
        expect(memory.take('k', cost, ts, policy)).toEqual(actual)
        // Redis's clock runs at the speed of ours (only the instant of reading differs).
        const now = performance.now()
        if (remote > 0) expect(ts - remote).toBeGreaterThan(now - local - 250)
        local = now
        remote = ts
        return actual
      }
      // A burst of `capacity`, then a refusal for the next token, about 250 ms away.
      for (let left = 4; left >= 0; left--) {
        expect(await both(1)).toMatchObject({ allowed: true, remaining: left })
      }
      const refused = await both(1)
      expect(refused.allowed).toBe(false)
      expect(refused.retryAfterMs).toBeGreaterThan(100)
      expect(refused.retryAfterMs).toBeLessThanOrEqual(250)
      await sleep(375) // ≈ 1.5 tokens: far from a whole-token boundary on either side
      expect(await both(1)).toMatchObject({ allowed: true, remaining: 0 })
      expect(await both(3)).toMatchObject({ allowed: false, remaining: 0 }) // a refusal takes nothing…
      expect(await both(0)).toMatchObject({ allowed: true, remaining: 0 }) // …and cost 0 is always allowed
      await sleep(250) // ≈ 1.5 tokens again
      expect(await both(2)).toMatchObject({ allowed: false, remaining: 1 })
      expect(await both(1)).toMatchObject({ allowed: true, remaining: 0 })
    })

    it('is atomic: 200 concurrent takes from 4 clients on a bucket of 50 allow exactly 50', async () => {
      const prefix = `test${prefixes++}:`
      const stores = Array.from({ length: 4 }, () => new RedisTokenBucketStore({ client: connect(), prefix }))
      const policy = { capacity: 50, refillPerSecond: 0.001 } // no whole token comes back during the test
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => stores[i % 4]!.take('shared', 1, 0, policy)),
      )
      const allowed = results.filter((result) => result.allowed)
      expect(allowed).toHaveLength(50)
      // Each allowed take saw a different bucket state: 49 left, 48, …, 0 — no two read the same.
      expect(allowed.map((result) => result.remaining).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => i),
      )
      for (const refused of results.filter((result) => !result.allowed)) {
        expect(refused.remaining).toBe(0)
        expect(refused.retryAfterMs).toBeGreaterThan(900_000) // a whole token at 0.001/s: ~1000 s
      }
    })

    it('lets two limiters (two instances) share one bucket', async () => {
      const prefix = `test${prefixes++}:`
      const instance = () =>
        new TokenBucketLimiter({
          capacity: 4,
          refillPerSecond: 1,
          store: new RedisTokenBucketStore({ client: connect(), prefix }),
        })
      const a = instance()
      const b = instance()
      const answers = []
      for (let i = 0; i < 3; i++) answers.push(await a.take('alice'), await b.take('alice'))
      expect(answers.map((answer) => answer.allowed)).toEqual([true, true, true, true, false, false])
      expect(answers.map((answer) => answer.remaining)).toEqual([3, 2, 1, 0, 0, 0])
      // The refusal on either instance advertises the same next token, about a second away.
      for (const refused of answers.slice(4)) {
        expect(refused.retryAfterMs).toBeGreaterThan(900)
        expect(refused.retryAfterMs).toBeLessThanOrEqual(1000)
      }
      // Each instance with its own memory store would have let 8 through.
      expectTypeOf(a.take('alice')).toEqualTypeOf<Promise<TokenBucketResult>>()
    })

    it('expires a key when its bucket would be full again, and writes nothing for a full bucket', async () => {
      const redis = store({ prefix: 'expiry:' })
      await redis.take('slow', 3, 0, { capacity: 10, refillPerSecond: 2 })
      const fields = await admin.hgetall('expiry:slow')
      expect(Object.keys(fields).sort()).toEqual(['t', 'ts'])
      expect(Number(fields.t)).toBe(7)
      // 3 tokens short at 2/s: full again in 1.5 s, and the key lives exactly that long.
      const pttl = await admin.pttl('expiry:slow')
      expect(pttl).toBeGreaterThan(1_000)
      expect(pttl).toBeLessThanOrEqual(1_500)

      // A fast bucket refills in 10 ms; then its key is gone on its own.
      await redis.take('fast', 1, 0, { capacity: 2, refillPerSecond: 100 })
      expect(await admin.pttl('expiry:fast')).toBeLessThanOrEqual(10)
      // A flood of distinct keys vanishes the same way: Redis holds only keys active within one window.
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          redis.take(`flood-${i}`, 1, 0, { capacity: 2, refillPerSecond: 2.5 }),
        ),
      )
      expect((await admin.keys('expiry:flood-*')).length).toBe(300) // each lives 400 ms
      await sleep(450)
      expect(await admin.exists('expiry:fast')).toBe(0)
      expect(await admin.keys('expiry:flood-*')).toEqual([])

      // Cost 0 on an untouched bucket leaves it full: no key is written at all.
      expect(await redis.take('free', 0, 0, { capacity: 2, refillPerSecond: 1 })).toEqual({
        allowed: true,
        remaining: 2,
        retryAfterMs: 0,
        resetMs: 0,
      })
      expect(await admin.exists('expiry:free')).toBe(0)
    })

    it('keeps keys at least `ttl` ms, without changing any decision', async () => {
      const redis = store({ prefix: 'ttl:', ttl: 60_000 })
      const policy = { capacity: 2, refillPerSecond: 100 }
      await redis.take('k', 1, 0, policy)
      expect(await admin.pttl('ttl:k')).toBeGreaterThan(59_000)
      await sleep(30) // full again by refill, though the key is still there
      expect(await redis.take('k', 2, 0, policy)).toMatchObject({ allowed: true, remaining: 0 })
      expect(await redis.take('free', 0, 0, policy)).toMatchObject({ allowed: true, remaining: 2 })
      expect(await admin.pttl('ttl:free')).toBeGreaterThan(59_000)
    })

    it('runs the script by EVALSHA, reloading it with EVAL after Redis lost it (NOSCRIPT)', async () => {
      const redis = store()
      const policy = { capacity: 100, refillPerSecond: 1 }
      await admin.config('RESETSTAT')
      for (let i = 0; i < 5; i++) await redis.take('k', 1, 0, policy)
      await admin.script('FLUSH')
      expect(await redis.take('k', 1, 0, policy)).toMatchObject({ allowed: true, remaining: 94 })
      expect(await redis.take('k', 1, 0, policy)).toMatchObject({ allowed: true, remaining: 93 })
      const stats = commandStats(await admin.info('commandstats'))
      // First use on the connection: EVAL; then EVALSHA; after the flush, EVALSHA fails with NOSCRIPT
      // and is sent again as EVAL; from then on EVALSHA again.
      expect(stats.eval).toBe(2)
      expect(stats.evalsha).toBe(6)
    })

    it('rejects when the key holds something else (onError: reject)', async () => {
      const redis = store({ prefix: 'wrong:' })
      await admin.set('wrong:k', 'a string')
      await expect(redis.take('k', 1, 0, { capacity: 1, refillPerSecond: 1 })).rejects.toThrow(/WRONGTYPE/)
    })

    describe('when Redis is down', () => {
      const policy = { capacity: 3, refillPerSecond: 1 }
      // Fail fast: no offline queue, no retries, no reconnection loop.
      const failFast: RedisOptions = {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      }

      it('rejects the take by default, and reports the error', async () => {
        const reported: [unknown, string][] = []
        const closed = await freePort()
        const redis = new RedisTokenBucketStore({
          client: connect({ ...failFast, port: closed }),
          reportError: (error, key) => reported.push([error, key]),
        })
        expect(redis.onError).toBe('reject')
        const started = performance.now()
        await expect(redis.take('k', 1, 0, policy)).rejects.toThrow()
        expect(performance.now() - started).toBeLessThan(1_000)
        expect(reported).toHaveLength(1)
        expect(reported[0]![0]).toBeInstanceOf(Error)
        expect(reported[0]![1]).toBe('k')
      })

      it("with onError: 'allow', fails open as a full bucket would answer", async () => {
        const closed = await freePort()
        const redis = new RedisTokenBucketStore({
          client: connect({ ...failFast, port: closed }),
          onError: 'allow',
        })
        expect(await redis.take('k', 1, 0, policy)).toEqual({
          allowed: true,
          remaining: 2,
          retryAfterMs: 0,
          resetMs: 1000,
        })
      })

      it('turns from answers to errors (or open answers) when the server stops mid-run', async () => {
        const own = await startRedis()
        try {
          const options = { ...failFast, port: own.port }
          const strictClient = connect(options)
          const openClient = connect(options)
          // Without an offline queue, a command sent before the connection is ready fails at once.
          await Promise.all([ready(strictClient), ready(openClient)])
          const strict = new RedisTokenBucketStore({ client: strictClient })
          const open = new RedisTokenBucketStore({ client: openClient, onError: 'allow' })
          expect(await strict.take('k', 3, 0, policy)).toMatchObject({ allowed: true, remaining: 0 })
          expect(await open.take('k', 1, 0, policy)).toMatchObject({ allowed: false, remaining: 0 })
          await own.stop()
          await expect(strict.take('k', 1, 0, policy)).rejects.toThrow()
          expect(await open.take('k', 1, 0, policy)).toMatchObject({ allowed: true, remaining: 2 })
        } finally {
          await own.stop()
        }
      })
    })

    it('validates its options once, with core’s message shape', () => {
      const client = admin
      const cases: [Record<string, unknown>, string][] = [
        [{}, 'Expected `client` to be an ioredis client (Redis or Cluster), got `undefined` (undefined)'],
        [{ client: {} }, 'Expected `client` to be an ioredis client (Redis or Cluster), got (object)'],
        [{ client, prefix: 1 }, 'Expected `prefix` to be a string, got `1` (number)'],
        [
          { client, ttl: 0 },
          'Expected `ttl` to be an integer from 1 to 1000000000000 (ms), got `0` (number)',
        ],
        [
          { client, ttl: 1.5 },
          'Expected `ttl` to be an integer from 1 to 1000000000000 (ms), got `1.5` (number)',
        ],
        [{ client, time: 'local' }, "Expected `time` to be 'redis' or 'caller', got `\"local\"` (string)"],
        [
          { client, onError: 'ignore' },
          "Expected `onError` to be 'reject' or 'allow', got `\"ignore\"` (string)",
        ],
        [{ client, reportError: true }, 'Expected `reportError` to be a function, got `true` (boolean)'],
      ]
      for (const [options, message] of cases) {
        const build = () => new RedisTokenBucketStore(options as never)
        expect(build).toThrow(InvalidOptionError)
        expect(build).toThrow(message)
      }
      expect(() => new RedisTokenBucketStore(null as never)).toThrow(
        'Expected `options` to be an object, got `null`',
      )
      const defaults = new RedisTokenBucketStore({ client })
      expect([defaults.prefix, defaults.ttl, defaults.time, defaults.onError]).toEqual([
        'bp:tb:',
        undefined,
        'redis',
        'reject',
      ])
      // The limiter accepts it as its store, and take() is typed as a promise.
      const limiter = new TokenBucketLimiter({
        capacity: 1,
        refillPerSecond: 1,
        store: defaults,
        clock: new ManualClock(),
      })
      expectTypeOf(limiter.take('k')).toEqualTypeOf<Promise<TokenBucketResult>>()
    })
  },
)

function ready(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => client.once('ready', () => resolve()))
}

function commandStats(info: string): Record<string, number> {
  const stats: Record<string, number> = {}
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) stats[match[1]!] = Number(match[2])
  return stats
}

// Needs no Redis: unknown keys are refused before the client is touched.
describe('RedisTokenBucketStore options', () => {
  const client = { defineCommand() {} }

  it.each([
    ['prefx', { client, prefx: 'app:' }, 'Unknown option `prefx`: did you mean `prefix`?'],
    ['onErorr', { client, onErorr: 'allow' }, 'Unknown option `onErorr`: did you mean `onError`?'],
    ['ttL', { client, ttL: 1000 }, 'Unknown option `ttL`: did you mean `ttl`?'],
    ['clinet', { clinet: client }, 'Unknown option `clinet`: did you mean `client`?'],
    [
      'keyPrefix',
      { client, keyPrefix: 'app:' },
      'Unknown option `keyPrefix`: expected one of `client`, `prefix`, `ttl`, `time`, `onError`, `reportError`',
    ],
  ])('refuses the unknown option %s, naming the option meant', (option, options, message) => {
    let error: unknown
    try {
      new RedisTokenBucketStore(options as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect((error as InvalidOptionError).code).toBe('BP_ERR_INVALID_OPTION')
    expect((error as InvalidOptionError).option).toBe(option)
    expect((error as Error).message).toBe(message)
  })
})
