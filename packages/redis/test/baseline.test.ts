import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Decision, HttpBackpressure, PASS, type SharedBaseline } from '@backpressure/core'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisSharedBaseline } from '../src/index.js'
import { useRedisWithServers } from './harness.js'
import { type RedisCluster, startRedisCluster } from './redis-cluster.js'
import { freePort, redisAvailable, SKIP_MESSAGE } from './redis-server.js'

describe.skipIf(!redisAvailable)(
  `RedisSharedBaseline against a real Redis${redisAvailable ? '' : ` (${SKIP_MESSAGE})`}`,
  () => {
    const { servers, layers, connect } = useRedisWithServers()
    let keys = 0

    it("answers the median of the fleet's fresh baselines, one per instance", async () => {
      const key = `bl${keys++}`
      const [a, b, c] = [0, 1, 2].map(() => new RedisSharedBaseline({ client: connect(), key }))
      expect(await a!.refresh()).toBeUndefined()
      expect(a!.current()).toBeUndefined()
      await a!.publish(10)
      expect(await c!.refresh()).toBe(10)
      expect(c!.current()).toBe(10)
      await b!.publish(12.5)
      expect(await c!.refresh()).toBe(11.25)
      await c!.publish(30)
      expect(await a!.refresh()).toBe(12.5)
      // An instance's later baseline replaces its earlier one: one field each.
      await c!.publish(11)
      expect(await a!.refresh()).toBe(11)
      const stored = await connect().hgetall(key)
      expect(Object.keys(stored).sort()).toEqual([a!.id, b!.id, c!.id].sort())
      expect(stored[b!.id]).toMatch(/^12\.5:\d{13}$/)
      // Nonsense is never written.
      for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) await a!.publish(bad)
      expect(await b!.refresh()).toBe(11)
    })

    it('forgets baselines older than ttl (Redis time), and the key expires with the last of them', async () => {
      const key = `bl${keys++}`
      const old = new RedisSharedBaseline({ client: connect(), key, ttl: 1000 })
      await old.publish(10)
      await sleep(500)
      const recent = new RedisSharedBaseline({ client: connect(), key, ttl: 1000 })
      await recent.publish(20)
      expect(await recent.refresh()).toBe(15)
      await sleep(700) // the old one is 1.2 s old, the recent one 0.7 s
      expect(await recent.refresh()).toBe(20)
      const left = await connect().hgetall(key)
      expect(Object.keys(left)).toEqual([recent.id])
      await sleep(1100)
      expect(await recent.refresh()).toBeUndefined()
      expect(await connect().exists(key)).toBe(0)
    })

    it('current() answers at once from its last read, and the share reads again every refreshInterval', async () => {
      const key = `bl${keys++}`
      const writer = new RedisSharedBaseline({ client: connect(), key })
      // Created long before its limit first asks (an instance the balancer has not sent traffic yet).
      const share = new RedisSharedBaseline({ client: connect(), key, refreshInterval: 1000 })
      expect(await share.refresh()).toBeUndefined()
      await writer.publish(10)
      expect(share.current()).toBeUndefined() // what it read last, at once
      for (let i = 0; i < 150 && share.current() === undefined; i++) await sleep(20)
      expect(share.current()).toBe(10)
      await writer.publish(30) // the writer's one field: the fleet's baseline is now 30
      for (let i = 0; i < 150 && share.current() === 10; i++) await sleep(20)
      expect(share.current()).toBe(30)
      // Closed, it reads no more.
      await share.close()
      await writer.publish(40)
      await sleep(1200)
      expect(share.current()).toBe(30)
      await writer.close()
    })

    it("close() removes this instance's baseline, and it writes nothing after", async () => {
      const key = `bl${keys++}`
      const [a, b] = [0, 1].map(() => new RedisSharedBaseline({ client: connect(), key }))
      await a!.publish(10)
      const late = b!.publish(20) // sent, not yet answered: close() waits for it
      await b!.close()
      await late
      expect(await a!.refresh()).toBe(10)
      // A probe that ends while the server drains publishes nothing.
      await b!.publish(30)
      expect(await a!.refresh()).toBe(10)
      expect(Object.keys(await connect().hgetall(key))).toEqual([a!.id])
    })

    it('with Redis down: current() knows nothing, publish() does not throw, every failure is reported', async () => {
      const errors: unknown[] = []
      const down = connect({
        port: await freePort(),
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      })
      const share = new RedisSharedBaseline({ client: down, reportError: (e) => errors.push(e) })
      expect(await share.refresh()).toBeUndefined()
      expect(share.current()).toBeUndefined()
      await share.publish(10)
      await share.close()
      await sleep(20)
      expect(errors.length).toBeGreaterThanOrEqual(3)
      for (const error of errors) expect(error).toBeInstanceOf(Error)
      // A reporter that throws is contained too.
      const throwing = new RedisSharedBaseline({
        client: down,
        reportError: () => {
          throw new Error('reporter')
        },
      })
      expect(await throwing.refresh()).toBeUndefined()
    })

    it('a value it read stops counting once older than ttl, if Redis stops answering', async () => {
      const key = `bl${keys++}`
      const client = connect({ enableOfflineQueue: false, maxRetriesPerRequest: 0 })
      if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
      const writer = new RedisSharedBaseline({ client: connect(), key })
      await writer.publish(10)
      const share = new RedisSharedBaseline({ client, key, ttl: 600, refreshInterval: 10 })
      expect(await share.refresh()).toBe(10)
      client.disconnect()
      expect(share.current()).toBe(10)
      await sleep(800)
      expect(share.current()).toBeUndefined()
    })

    it('refuses invalid options, naming them', () => {
      const client = connect()
      expect(() => new RedisSharedBaseline({ client: {} as never })).toThrow(/`client`/)
      expect(() => new RedisSharedBaseline({ client, key: '' })).toThrow(/`key`/)
      expect(() => new RedisSharedBaseline({ client, ttl: 0 })).toThrow(/`ttl`.*0/)
      expect(() => new RedisSharedBaseline({ client, refreshInterval: 1.5 })).toThrow(/`refreshInterval`/)
      // Past what a Node timer takes (it would fire every millisecond).
      expect(() => new RedisSharedBaseline({ client, refreshInterval: 2 ** 31 })).toThrow(
        /`refreshInterval`.*2147483647/,
      )
      expect(() => new RedisSharedBaseline({ client, reportError: 'log' as never })).toThrow(/`reportError`/)
      expect(() => new RedisSharedBaseline({ client, ttL: 5 } as never)).toThrow(/`ttl`/)
    })

    /**
     * Two servers over real sockets in front of one simulated pool (2 connections × 20 ms), each with
     * its own Redis connection: the first, alone under 2× load, probes and publishes its baseline; the
     * second, joining while the pool is queued, starts from that baseline, then publishes its own.
     */
    it('a server joining a loaded fleet over HTTP starts from the baseline its sibling published', async () => {
      const key = `bl${keys++}`
      const pool = { busy: 0, waiting: [] as (() => void)[] }
      const query = () =>
        new Promise<void>((resolve) => {
          const run = () => {
            pool.busy++
            setTimeout(() => {
              pool.busy--
              pool.waiting.shift()?.()
              resolve()
            }, 20)
          }
          if (pool.busy < 2) run()
          else pool.waiting.push(run)
        })
      const readBy: (number | undefined)[][] = []
      const publishedBy: number[][] = []
      /** Each server's limit's baseline just after each read (its update takes the answer synchronously). */
      const baselineAfterReadBy: number[][] = []
      /** A server whose limit shares `key`'s baseline, recording what it reads and publishes. */
      const instance = async () => {
        const share = new RedisSharedBaseline({ client: connect(), key })
        const mine: number[] = []
        const reads: (number | undefined)[] = []
        const baselines: number[] = []
        publishedBy.push(mine)
        readBy.push(reads)
        baselineAfterReadBy.push(baselines)
        // The limit's baseline is not public; read here to see what the read did to it.
        const limitBaseline = () =>
          (http.controller as unknown as { limiter: { baselineMs: number } }).limiter.baselineMs
        const shared: SharedBaseline = {
          current: () => {
            const value = share.current()
            reads.push(value)
            queueMicrotask(() => baselines.push(limitBaseline()))
            return value
          },
          publish: (ms) => {
            mine.push(ms)
            void share.publish(ms)
          },
        }
        const http = new HttpBackpressure<IncomingMessage>({
          maxConcurrency: { probeIntervalMs: 2000, sharedBaseline: shared },
        })
        layers.push(http)
        const server = createServer((req, res) => {
          const write = (decision: Decision) => {
            if (decision !== PASS) res.writeHead(decision.status, decision.headers).end(decision.body)
            else void query().then(() => res.end('ok'))
          }
          const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
          if (decision instanceof Promise) decision.then(write, () => res.writeHead(500).end())
          else write(decision)
        })
        servers.push(server)
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
        return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
      }
      /** Open-loop load: `perTick` requests every 10 ms, spread over `urls`, until `ms` have passed. */
      const load = async (urls: string[], perTick: number, ms: number) => {
        const sent: Promise<unknown>[] = []
        let turn = 0
        const end = performance.now() + ms
        while (performance.now() < end) {
          for (let i = 0; i < perTick; i++)
            sent.push(
              fetch(urls[turn++ % urls.length]!).then(
                (r) => r.arrayBuffer(),
                () => undefined,
              ),
            )
          await sleep(10)
        }
        await Promise.all(sent)
      }
      const redisView = connect()
      const stored = async () =>
        Object.values(await redisView.hgetall(key)).map((entry) => Number(entry.split(':')[0]))

      const first = await instance()
      // Twice the pool's 100 requests a second, until the first server's probes have published.
      for (let i = 0; i < 10 && (await stored()).length === 0; i++) await load([first], 2, 500)
      const firstServer = publishedBy[0]!
      expect(firstServer.length).toBeGreaterThan(0)
      // A 20 ms query is never measured faster (how much slower depends on this machine's load).
      for (const ms of firstServer) expect(ms).toBeGreaterThanOrEqual(19)
      // It asked at its first update (again after one its event loop stalled in), when the fleet
      // knew none: then it measured its own.
      expect(readBy[0]!.length).toBeGreaterThan(0)
      for (const value of readBy[0]!) expect(value).toBeUndefined()

      const second = await instance()
      for (let i = 0; i < 10 && (await stored()).length < 2; i++) await load([first, second], 2, 500)
      // Its first update asked the fleet, before it had probed itself, and got the first server's.
      // ... and stopped asking once it had the answer: the last thing it read.
      expect(firstServer).toContain(readBy[1]!.at(-1))
      // ... and its limit took it as its baseline then.
      expect(baselineAfterReadBy[1]!.at(-1)).toBe(readBy[1]!.at(-1))
      expect(publishedBy[1]!.length).toBeGreaterThan(0)
      // Both servers' latest baselines reach Redis, one field each.
      const latest = () => [firstServer.at(-1), publishedBy[1]!.at(-1)].sort()
      for (let i = 0; i < 100 && JSON.stringify((await stored()).sort()) !== JSON.stringify(latest()); i++)
        await sleep(20)
      expect((await stored()).sort()).toEqual(latest())
    }, 30_000)
  },
)

describe.skipIf(!redisAvailable)(
  `RedisSharedBaseline against a real Redis Cluster${redisAvailable ? '' : ` (${SKIP_MESSAGE})`}`,
  () => {
    let cluster: RedisCluster
    const clients: Cluster[] = []
    beforeAll(async () => {
      cluster = await startRedisCluster(3)
    }, 30_000)
    afterAll(async () => {
      for (const client of clients) client.disconnect()
      await cluster?.stop()
    })

    it('shares one key, on one slot, between two Cluster clients', async () => {
      const connect = async () => {
        const client = new Cluster(cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })))
        client.on('error', () => {})
        clients.push(client)
        if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
        return client
      }
      const a = new RedisSharedBaseline({ client: await connect(), key: 'bp:baseline:orders' })
      const b = new RedisSharedBaseline({ client: await connect(), key: 'bp:baseline:orders' })
      await a.publish(10)
      await b.publish(14)
      expect(await a.refresh()).toBe(12)
      expect(await b.refresh()).toBe(12)
    })
  },
)
