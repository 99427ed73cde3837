import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CircuitBreaker,
  HttpBackpressure,
  type HttpBackpressureOptions,
  InvalidOptionError,
  ManualClock,
  MemoryTokenBucketStore,
  PASS,
  seededRandom,
  type TokenBucketStore,
} from '../src/index.js'

/** Rate limiting and the circuit breaker through the HTTP layer on a bare node:http server. */
let server: Server | undefined
let layer: HttpBackpressure<IncomingMessage> | undefined
afterEach(async () => {
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
  await layer?.close()
  server = undefined
  layer = undefined
})

async function start(options: HttpBackpressureOptions<IncomingMessage>) {
  const http = new HttpBackpressure<IncomingMessage>({ maxConcurrency: 10, ...options })
  layer = http
  server = createServer((req, res) => {
    const write = (decision: Awaited<ReturnType<typeof http.decide>>) => {
      if (decision !== PASS) res.writeHead(decision.status, decision.headers).end(decision.body)
      else if (!res.destroyed) res.end('ok')
    }
    const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
    if (decision instanceof Promise) void decision.then(write)
    else write(decision)
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { http, url: `http://127.0.0.1:${port}` }
}

/** Parses one Structured Field item with integer parameters: `"name";a=1;b=2`. */
function parseItem(value: string | null): { name: string; params: Record<string, number> } {
  const match = /^"([^"\\]*)"((?:;[a-z][a-z0-9_-]*=\d+)*)$/.exec(value ?? '')
  if (match === null) throw new Error(`not a Structured Field item with integer parameters: ${value}`)
  const params: Record<string, number> = {}
  for (const pair of match[2]!.split(';').slice(1)) {
    const [key, n] = pair.split('=')
    params[key!] = Number(n)
  }
  return { name: match[1]!, params }
}

const byClient = (req: IncomingMessage) => req.headers['x-client'] as string | undefined

describe('rate limiting over HTTP', () => {
  it('answers 429 with Retry-After, RateLimit-Policy and RateLimit once a key spent its tokens', async () => {
    const clock = new ManualClock(0)
    const { http, url } = await start({
      clock,
      rateLimit: { key: byClient, capacity: 2, refillPerSecond: 0.5 },
    })
    const rejected: string[] = []
    http.controller.on('reject', (event) => rejected.push(event.reason))
    const get = () => fetch(`${url}/api`, { headers: { 'x-client': 'alice' } })

    const first = await get()
    expect(first.status).toBe(200)
    expect(parseItem(first.headers.get('ratelimit-policy'))).toEqual({
      name: 'default',
      params: { q: 2, w: 4 },
    })
    expect(parseItem(first.headers.get('ratelimit'))).toEqual({ name: 'default', params: { r: 1, t: 2 } })
    await first.text()
    const second = await get()
    expect(parseItem(second.headers.get('ratelimit'))).toEqual({ name: 'default', params: { r: 0, t: 4 } })
    await second.text()

    clock.advance(500) // a quarter of a token back: the next one is 1.5 s away
    const limited = await get()
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('2') // 1.5 s rounded up, never earlier
    expect(limited.headers.get('cache-control')).toBe('no-store')
    expect(limited.headers.get('content-type')).toMatch(/^application\/json/)
    expect(parseItem(limited.headers.get('ratelimit-policy'))).toEqual({
      name: 'default',
      params: { q: 2, w: 4 },
    })
    // t equals Retry-After, so Retry-After never points before the end of the effective window.
    expect(parseItem(limited.headers.get('ratelimit'))).toEqual({ name: 'default', params: { r: 0, t: 2 } })
    expect(await limited.json()).toEqual({
      error: 'Too Many Requests',
      reason: 'rate_limited',
      retryAfter: 2,
    })

    // Counted like every rejection: stats, metrics, events.
    const stats = http.controller.stats()
    expect(stats.rejections.rate_limited).toBe(1)
    expect(stats.requests).toBe(3)
    expect(rejected).toEqual(['rate_limited'])
    // A rate limit is per client, not the server's state.
    expect(stats.backpressureActive).toBe(false)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/backpressure_rejections_total\{[^}]*reason="rate_limited"[^}]*\} 1/)

    // Other clients are untouched; alice is served again once the advertised time has passed.
    expect((await fetch(`${url}/api`, { headers: { 'x-client': 'bob' } })).status).toBe(200)
    clock.advance(2000)
    expect((await get()).status).toBe(200)
  })

  it('leaves requests without a key, health, readiness, metrics and skipped requests alone', async () => {
    const { url } = await start({
      clock: new ManualClock(0),
      skip: (req) => req.url === '/skipped',
      rateLimit: { key: byClient, capacity: 1, refillPerSecond: 1 },
    })
    const alice = { headers: { 'x-client': 'alice' } }
    expect((await fetch(`${url}/api`, alice)).status).toBe(200)
    for (const path of ['/health', '/ready', '/metrics', '/skipped']) {
      const response = await fetch(`${url}${path}`, alice)
      expect(response.status).toBe(200)
      expect(response.headers.get('ratelimit')).toBeNull()
    }
    const anonymous = await fetch(`${url}/api`)
    expect(anonymous.status).toBe(200)
    expect(anonymous.headers.get('ratelimit')).toBeNull()
    expect((await fetch(`${url}/api`, alice)).status).toBe(429)
  })

  it('with headers: false, sends the RateLimit headers on 429s only', async () => {
    const { url } = await start({
      clock: new ManualClock(0),
      rateLimit: {
        key: () => 'everyone',
        capacity: 1,
        refillPerSecond: 1,
        headers: false,
        policyName: 'per-ip',
      },
    })
    const ok = await fetch(url)
    expect(ok.status).toBe(200)
    expect(ok.headers.get('ratelimit')).toBeNull()
    expect(ok.headers.get('ratelimit-policy')).toBeNull()
    const limited = await fetch(url)
    expect(limited.status).toBe(429)
    expect(parseItem(limited.headers.get('ratelimit-policy')).name).toBe('per-ip')
    expect(parseItem(limited.headers.get('ratelimit'))).toEqual({ name: 'per-ip', params: { r: 0, t: 1 } })
  })

  it('charges the cost a function gives and waits for all of it', async () => {
    const { url } = await start({
      clock: new ManualClock(0),
      rateLimit: {
        key: () => 'k',
        capacity: 10,
        refillPerSecond: 1,
        cost: (req) => (req.url === '/export' ? 8 : 1),
      },
    })
    expect((await fetch(`${url}/export`)).status).toBe(200)
    const limited = await fetch(`${url}/export`)
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('6') // 2 tokens left, 8 needed, 1/s
    expect(parseItem(limited.headers.get('ratelimit')).params).toEqual({ r: 2, t: 6 })
    expect((await fetch(`${url}/cheap`)).status).toBe(200)
  })

  it('keeps every header number valid when the refill is extremely slow', async () => {
    const { url } = await start({
      clock: new ManualClock(0),
      rateLimit: { key: () => 'k', capacity: 1, refillPerSecond: 1e-19 },
    })
    const ok = await fetch(url)
    expect(ok.status).toBe(200)
    expect(parseItem(ok.headers.get('ratelimit-policy')).params).toEqual({ q: 1, w: 999_999_999_999_999 })
    expect(parseItem(ok.headers.get('ratelimit')).params).toEqual({ r: 0, t: 999_999_999_999_999 })
    const limited = await fetch(url)
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('86400')
    expect(parseItem(limited.headers.get('ratelimit')).params).toEqual({ r: 0, t: 86_400 })
    expect(await limited.json()).toMatchObject({ retryAfter: 86_400 })
  })

  it('keeps header numbers valid whatever a store answers', async () => {
    const answers = [
      { allowed: true, remaining: Number.NaN, retryAfterMs: 0, resetMs: Number.POSITIVE_INFINITY },
      { allowed: true, remaining: 2.7, retryAfterMs: 0, resetMs: -5 },
      { allowed: false, remaining: -1, retryAfterMs: Number.NaN, resetMs: Number.NaN },
    ]
    const store: TokenBucketStore = { take: () => answers.shift()! }
    const { url } = await start({
      clock: new ManualClock(0),
      rateLimit: { key: () => 'k', capacity: 5, refillPerSecond: 1, store },
    })
    expect(parseItem((await fetch(url)).headers.get('ratelimit')).params).toEqual({
      r: 0,
      t: 999_999_999_999_999,
    })
    expect(parseItem((await fetch(url)).headers.get('ratelimit')).params).toEqual({ r: 2, t: 0 })
    const limited = await fetch(url)
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('1')
    expect(parseItem(limited.headers.get('ratelimit')).params).toEqual({ r: 0, t: 1 })
  })

  it.each([
    [0.25, '1'],
    [Number.POSITIVE_INFINITY, '86400'],
    [1e22, '86400'],
  ])('keeps Retry-After a valid header when a duck-typed breaker asks for %s s', async (wait, header) => {
    const { url } = await start({
      clock: new ManualClock(0),
      circuitBreaker: { retryAfterSeconds: () => wait } as never,
    })
    const refused = await fetch(url)
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe(header)
    expect(((await refused.json()) as { retryAfter: number }).retryAfter).toBe(Number(header))
  })

  it('works with an asynchronous store', async () => {
    const memory = new MemoryTokenBucketStore()
    const store: TokenBucketStore = {
      take: async (key, cost, now, policy) => memory.take(key, cost, now, policy),
    }
    const { http, url } = await start({
      clock: new ManualClock(0),
      rateLimit: { key: () => 'k', capacity: 1, refillPerSecond: 1, store },
    })
    const ok = await fetch(url)
    expect(ok.status).toBe(200)
    expect(parseItem(ok.headers.get('ratelimit')).params).toEqual({ r: 0, t: 1 })
    expect((await fetch(url)).status).toBe(429)
    expect(http.controller.stats().rejections.rate_limited).toBe(1)
  })

  it('lets a request through when the store does not answer within rateLimit.timeoutMs', async () => {
    const clock = new ManualClock(0)
    let calls = 0
    const store: TokenBucketStore = {
      take: () => {
        calls++
        return new Promise(() => {})
      },
    }
    const { url } = await start({
      clock,
      rateLimit: { key: () => 'k', capacity: 2, refillPerSecond: 1, store, timeoutMs: 100 },
    })
    const response = fetch(url)
    while (calls === 0) await new Promise((resolve) => setImmediate(resolve))
    clock.advance(100)
    const ok = await response
    expect(ok.status).toBe(200)
    expect(parseItem(ok.headers.get('ratelimit')).params).toEqual({ r: 1, t: 1 })
  })

  it('validates its options with the one message shape', () => {
    const cases: [unknown, string][] = [
      [
        { capacity: 1, refillPerSecond: 1 },
        'Expected `rateLimit.key` to be a function of the request, got `undefined`',
      ],
      [
        { key: () => 'k', refillPerSecond: 1 },
        'Expected `rateLimit.capacity` to be an integer from 1 and up',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: -1 },
        'Expected `rateLimit.refillPerSecond` to be a finite number above 0',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: 1, maxKeys: 0 },
        'Expected `rateLimit.maxKeys` to be an integer',
      ],
      [
        { key: () => 'k', capacity: 2, refillPerSecond: 1, cost: 3 },
        'Expected `rateLimit.cost` to be a number from 0 to rateLimit.capacity (2) or a function, got `3` (number)',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: 1, policyName: 'a"b' },
        'Expected `rateLimit.policyName` to be a non-empty string of printable ASCII',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: 1, timeoutMs: -1 },
        'Expected `rateLimit.timeoutMs` to be a number above 0 and at most 2147483647, got `-1` (number)',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: 1, maxPending: 1.5 },
        'Expected `rateLimit.maxPending` to be an integer from 1 and up, got `1.5` (number)',
      ],
      [
        { key: () => 'k', capacity: 1, refillPerSecond: 1, headers: 'yes' },
        'Expected `rateLimit.headers` to be a boolean',
      ],
      ['20/s', 'Expected `rateLimit` to be an object'],
    ]
    for (const [rateLimit, message] of cases) {
      const build = () => new HttpBackpressure({ rateLimit: rateLimit as never })
      expect(build).toThrow(InvalidOptionError)
      expect(build).toThrow(message)
    }
    expect(() => new HttpBackpressure({ circuitBreaker: {} as never })).toThrow(
      'Expected `circuitBreaker` to be a CircuitBreaker, got (object)',
    )
  })
})

describe('circuit breaker over HTTP', () => {
  it('answers 503 circuit_open at once while open, with Retry-After = remaining cool-down, jittered', async () => {
    const clock = new ManualClock(0)
    const breaker = new CircuitBreaker({ clock, random: seededRandom(3), minimumCalls: 2, coolDownMs: 8000 })
    const { http, url } = await start({ clock, circuitBreaker: breaker })
    expect((await fetch(url)).status).toBe(200)

    for (let i = 0; i < 2; i++)
      await breaker.execute(() => Promise.reject(new Error('db down'))).catch(() => {})
    expect(breaker.state).toBe('open')
    clock.advance(2500) // 5.5 s of cool-down left: Retry-After in [6, 9]
    const rejected = await fetch(url)
    expect(rejected.status).toBe(503)
    const seconds = Number(rejected.headers.get('retry-after'))
    expect(seconds).toBeGreaterThanOrEqual(6)
    expect(seconds).toBeLessThanOrEqual(9)
    expect(rejected.headers.get('cache-control')).toBe('no-store')
    expect(await rejected.json()).toEqual({
      error: 'Service Unavailable',
      reason: 'circuit_open',
      retryAfter: seconds,
    })
    const stats = http.controller.stats()
    expect(stats.rejections.circuit_open).toBe(1)
    expect(stats.admitted).toBe(1) // never reached the queue
    // Health stays 200 for the load balancer.
    expect((await fetch(`${url}/health`)).status).toBe(200)

    clock.advance(5500) // half-open: requests go through again, so a route can run the trial call
    expect((await fetch(url)).status).toBe(200)
    await breaker.execute(() => 'ok')
    expect(breaker.state).toBe('closed')
  })

  it('answers before spending a client its tokens', async () => {
    const clock = new ManualClock(0)
    const breaker = new CircuitBreaker({ clock, minimumCalls: 1, coolDownMs: 1000 })
    const { url } = await start({
      clock,
      circuitBreaker: breaker,
      rateLimit: { key: () => 'k', capacity: 1, refillPerSecond: 0.001 },
    })
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {})
    expect((await fetch(url)).status).toBe(503)
    clock.advance(1000)
    expect((await fetch(url)).status).toBe(200)
  })
})
