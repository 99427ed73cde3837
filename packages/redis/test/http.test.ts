import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Decision, HttpBackpressure, PASS } from '@backpressure/core'
import type { RedisOptions } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { RedisTokenBucketStore, type RedisTokenBucketStoreOptions } from '../src/index.js'
import { useRedisWithServers } from './harness.js'
import { freePort, redisAvailable, SKIP_MESSAGE } from './redis-server.js'

/** Through core's HTTP layer on bare node:http servers: two "instances" limited by one Redis. */
describe.skipIf(!redisAvailable)(
  `rate limiting over HTTP with the Redis store${redisAvailable ? '' : ` (${SKIP_MESSAGE})`}`,
  () => {
    const { servers, layers, connect } = useRedisWithServers()
    let prefixes = 0

    /** One server instance: its own HTTP layer, its own Redis connection, the given store options. */
    async function instance(store: RedisTokenBucketStoreOptions, capacity = 2, refillPerSecond = 0.5) {
      const http = new HttpBackpressure<IncomingMessage>({
        maxConcurrency: 10,
        rateLimit: {
          key: (req) => req.headers['x-client'] as string | undefined,
          capacity,
          refillPerSecond,
          store: new RedisTokenBucketStore(store),
        },
      })
      layers.push(http)
      const server = createServer((req, res) => {
        const write = (decision: Decision) => {
          if (decision !== PASS) res.writeHead(decision.status, decision.headers).end(decision.body)
          else if (!res.destroyed) res.end('ok')
        }
        // What a framework's error handling does with a failed store: a 500 for this request.
        const fail = () => res.writeHead(500).end('store failed')
        try {
          const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
          if (decision instanceof Promise) decision.then(write, fail)
          else write(decision)
        } catch {
          fail()
        }
      })
      servers.push(server)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    }

    it('answers 429 with Retry-After and RateLimit headers once a key spent its tokens on any instance', async () => {
      const prefix = `http${prefixes++}:`
      const first = await instance({ client: connect(), prefix })
      const second = await instance({ client: connect(), prefix })
      const get = (url: string, client = 'alice') => fetch(`${url}/api`, { headers: { 'x-client': client } })

      const a = await get(first)
      expect(a.status).toBe(200)
      expect(a.headers.get('ratelimit-policy')).toBe('"default";q=2;w=4')
      expect(a.headers.get('ratelimit')).toBe('"default";r=1;t=2')
      await a.text()
      // The second instance sees the token the first one spent.
      const b = await get(second)
      expect(b.status).toBe(200)
      expect(b.headers.get('ratelimit')).toBe('"default";r=0;t=4')
      await b.text()

      for (const url of [first, second]) {
        const limited = await get(url)
        expect(limited.status).toBe(429)
        // The next token is just under 2 s away (one every 2 s): rounded up, never earlier.
        expect(limited.headers.get('retry-after')).toBe('2')
        expect(limited.headers.get('cache-control')).toBe('no-store')
        expect(limited.headers.get('ratelimit-policy')).toBe('"default";q=2;w=4')
        expect(limited.headers.get('ratelimit')).toBe('"default";r=0;t=2')
        expect(await limited.json()).toEqual({
          error: 'Too Many Requests',
          reason: 'rate_limited',
          retryAfter: 2,
        })
      }
      // Another client has its own bucket.
      expect((await get(first, 'bob')).status).toBe(200)
      expect(layers[0]!.controller.stats().rejections.rate_limited).toBe(1)
      expect(layers[1]!.controller.stats().rejections.rate_limited).toBe(1)
    })

    it('fails the request when Redis is down, or lets it through with onError: allow', async () => {
      const closed = await freePort()
      const down: RedisOptions = {
        port: closed,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      }
      const strict = await instance({ client: connect(down) })
      const open = await instance({ client: connect(down), onError: 'allow' })
      const headers = { 'x-client': 'alice' }
      expect((await fetch(strict, { headers })).status).toBe(500)
      const allowed = await fetch(open, { headers })
      expect(allowed.status).toBe(200)
      expect(allowed.headers.get('ratelimit')).toBe('"default";r=1;t=2')
      // Requests without a key never reach the store.
      expect((await fetch(strict)).status).toBe(200)
    })
  },
)
