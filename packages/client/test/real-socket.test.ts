import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createFetch, isNetworkError, RetryError } from '../src/index.js'

interface KeyLog {
  arrivals: number[]
  rejectedAt: number[]
  bodies: string[]
}

/**
 * A plain node:http server that answers the first `rejections` requests of each key (the path) with a
 * 503 and `Retry-After: 1`, then 200. It records, per key, when each request arrived and when each 503
 * was fully sent, by its own clock.
 */
async function overloadedServer(rejections: number) {
  const log = new Map<string, KeyLog>()
  let connections = 0
  const server = createServer((req, res) => {
    const arrived = performance.now()
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const key = req.url ?? '/'
      const entry = log.get(key) ?? { arrivals: [], rejectedAt: [], bodies: [] }
      log.set(key, entry)
      entry.arrivals.push(arrived)
      entry.bodies.push(Buffer.concat(chunks).toString())
      if (entry.arrivals.length <= rejections) {
        res.writeHead(503, {
          'retry-after': '1',
          'content-type': 'application/json',
          'cache-control': 'no-store',
        })
        res.end(JSON.stringify({ error: 'Service Unavailable', reason: 'queue_full', retryAfter: 1 }), () => {
          entry.rejectedAt.push(performance.now())
        })
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ key }))
    })
  })
  server.on('connection', () => {
    connections++
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { server, log, base: `http://127.0.0.1:${port}`, connections: () => connections }
}

let server: Server | undefined

afterEach(async () => {
  server?.closeAllConnections()
  server?.close()
  server = undefined
})

describe('against a real server', () => {
  it('gets every logical request through, never retrying before Retry-After', {
    timeout: 10_000,
  }, async () => {
    const target = await overloadedServer(2)
    server = target.server
    // The budget is not under test here: four requests alone would not earn the eight retries needed.
    const client = createFetch({ budget: false })
    const requests: [string, RequestInit][] = [
      ['/get', {}],
      ['/put', { method: 'PUT', body: 'put-body' }],
      ['/delete', { method: 'DELETE' }],
      ['/keyed-post', { method: 'POST', body: 'post-body', headers: { 'idempotency-key': 'k-1' } }],
    ]
    const responses = await Promise.all(requests.map(([path, init]) => client(target.base + path, init)))
    for (const [index, response] of responses.entries()) {
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ key: requests[index]![0] })
    }
    for (const [path, init] of requests) {
      const entry = target.log.get(path)!
      expect(entry.arrivals).toHaveLength(3)
      for (let retry = 1; retry < entry.arrivals.length; retry++) {
        // Measured from when the server finished sending the 503 to when the retry arrived.
        expect(entry.arrivals[retry]! - entry.rejectedAt[retry - 1]!).toBeGreaterThanOrEqual(1000)
      }
      if (init.body !== undefined) expect(new Set(entry.bodies)).toEqual(new Set([init.body]))
    }
    // Retried responses were drained, so their keep-alive sockets carried the retries.
    expect(target.connections()).toBeLessThanOrEqual(requests.length)
  })

  it('passes a plain POST through after a single attempt', async () => {
    const target = await overloadedServer(1)
    server = target.server
    const client = createFetch()
    const response = await client(`${target.base}/post`, { method: 'POST', body: '{}' })
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('1')
    expect(await response.json()).toMatchObject({ reason: 'queue_full' })
    expect(target.log.get('/post')!.arrivals).toHaveLength(1)
  })

  it('retries a refused connection and reports it', async () => {
    const closed = createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const { port } = closed.address() as AddressInfo
    closed.close()
    await once(closed, 'close')
    const client = createFetch({ baseDelayMs: 5, budget: false })
    const error = (await client(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)) as RetryError
    expect(error).toBeInstanceOf(RetryError)
    expect(error).toMatchObject({ reason: 'max_attempts', attempts: 3, lastStatus: undefined })
    expect(isNetworkError(error.cause)).toBe(true)
  })
})
