import { Cluster, type ClusterOptions } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisTokenBucketStore, type RedisTokenBucketStoreOptions } from '../src/index.js'
import { type RedisCluster, startRedisCluster } from './redis-cluster.js'
import { redisAvailable, SKIP_MESSAGE } from './redis-server.js'

// The store against a real 3-master Redis Cluster the test starts, including a master killed mid-run.

const policy = { capacity: 5, refillPerSecond: 0.001 }

describe.skipIf(!redisAvailable)(
  `RedisTokenBucketStore against a real Redis Cluster${redisAvailable ? '' : ` (${SKIP_MESSAGE})`}`,
  () => {
    let cluster: RedisCluster
    const clients: Cluster[] = []
    let prefixes = 0

    /** A Cluster client configured to fail fast, as the README recommends. */
    function connect(options: ClusterOptions = {}): Cluster {
      const client = new Cluster(
        cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
        {
          enableOfflineQueue: false,
          slotsRefreshTimeout: 500,
          clusterRetryStrategy: () => 100,
          redisOptions: { connectTimeout: 500, commandTimeout: 500, maxRetriesPerRequest: 1 },
          ...options,
        },
      )
      client.on('error', () => {})
      clients.push(client)
      return client
    }

    async function ready(client: Cluster): Promise<Cluster> {
      if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
      return client
    }

    async function store(options: Partial<RedisTokenBucketStoreOptions> = {}) {
      return new RedisTokenBucketStore({
        client: await ready(connect()),
        prefix: `c${prefixes++}:`,
        ...options,
      })
    }

    beforeAll(async () => {
      cluster = await startRedisCluster(3)
    }, 30_000)

    afterEach(() => {
      for (const client of clients.splice(0)) client.disconnect()
    })

    afterAll(async () => {
      await cluster?.stop()
    })

    it('accepts a Cluster client, hash-tags keys, and spreads buckets over every master', async () => {
      const redis = await store()
      expect(redis.hashTagged).toBe(true)
      const keys = Array.from({ length: 30 }, (_, i) => `client-${i}`)
      for (const key of keys) {
        const answers = []
        for (let i = 0; i < 6; i++) answers.push((await redis.take(key, 1, 0, policy)).allowed)
        expect(answers).toEqual([true, true, true, true, true, false])
      }
      // Every key is stored as prefix{key}: on the slot of the caller's key, on all three masters.
      const client = redis.client as Cluster
      const perMaster = await Promise.all(
        client.nodes('master').map(async (node) => (await node.keys(`${redis.prefix}*`)).length),
      )
      expect(perMaster.reduce((a, b) => a + b, 0)).toBe(30)
      expect(perMaster.every((count) => count > 0)).toBe(true)
      const [stored] = await client.nodes('master')[0]!.keys(`${redis.prefix}*`)
      expect(stored).toMatch(new RegExp(`^${redis.prefix}\\{client-\\d+\\}$`))
    })

    it('two instances (two Cluster clients) share each bucket', async () => {
      const prefix = `c${prefixes++}:`
      const first = new RedisTokenBucketStore({ client: await ready(connect()), prefix })
      const second = new RedisTokenBucketStore({ client: await ready(connect()), prefix })
      const allowed = []
      for (let i = 0; i < 10; i++)
        allowed.push((await (i % 2 === 0 ? first : second).take('shared', 1, 0, policy)).allowed)
      expect(allowed.filter(Boolean)).toHaveLength(5)
    })

    it('a master killed mid-run: decisions fail the configured way (reject | allow), nothing hangs', async () => {
      const rejecting = await store({ onError: 'reject' })
      const allowing = await store({ onError: 'allow', prefix: rejecting.prefix })
      // A key on the master about to die.
      const client = rejecting.client as Cluster
      const victim = cluster.nodes[1]!
      let key = ''
      for (let i = 0; key === ''; i++) {
        const slot = Number(await client.cluster('KEYSLOT', `client-${i}`))
        const owner = (await client.cluster('SLOTS')) as unknown as [number, number, [string, number]][]
        if (owner.some(([from, to, [, port]]) => slot >= from && slot <= to && port === victim.port))
          key = `client-${i}`
      }
      expect((await rejecting.take(key, 1, 0, policy)).allowed).toBe(true)

      await victim.kill()
      const outcomes: string[] = []
      const began = Date.now()
      let longest = 0
      // Keep deciding for a while after the kill, as a server under traffic would.
      while (Date.now() - began < 3000) {
        for (const [name, redis] of [
          ['reject', rejecting],
          ['allow', allowing],
        ] as const) {
          const start = Date.now()
          try {
            const answer = await redis.take(key, 1, 0, policy)
            outcomes.push(`${name}:${answer.allowed ? 'allowed' : 'denied'}`)
          } catch {
            outcomes.push(`${name}:error`)
          }
          longest = Math.max(longest, Date.now() - start)
        }
      }
      // Each decision settled, within the client's timeouts (500 ms) plus scheduling slack.
      expect(longest).toBeLessThan(2500)
      // reject: every failed take is an error, never a silent allow; allow: failures answer allowed.
      const rejectOutcomes = new Set(outcomes.filter((o) => o.startsWith('reject:')))
      const allowOutcomes = new Set(outcomes.filter((o) => o.startsWith('allow:')))
      expect(rejectOutcomes.has('reject:error')).toBe(true)
      expect(allowOutcomes.has('allow:error')).toBe(false)
      expect(allowOutcomes.has('allow:allowed')).toBe(true)
    }, 20_000)
  },
)
