import { once } from 'node:events'
import { createServer, type RequestListener, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { backpressure as expressBackpressure } from '@backpressure/express'
import fastifyBackpressure from '@backpressure/fastify'
import { backpressure as koaBackpressure } from '@backpressure/koa'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { describe, it } from 'vitest'
import { createFetch, RetryBudget, type RetryEvent } from '../src/index.js'

// The client against our own servers, one per adapter, overloaded for real: every logical request
// must get through eventually, and no retry may reach the server before the Retry-After its previous
// attempt was given. Only that ordering is asserted, never how fast anything was.

/** Small on purpose: 2 in flight and 2 waiting, so a burst of 20 is mostly answered 503. */
const SERVER_OPTIONS = { maxConcurrency: 2, maxQueueDepth: 2, retryAfter: { min: 1, max: 2 } }
const ROUTE_MS = 50
const BURST = 20
/**
 * 4 requests are admitted out of the first 20 and the other 16 come back 1–2.4 s later (Retry-After
 * plus the client's spread), about as fast as the server serves them (2 per 50 ms), so a few are
 * turned away again. Five attempts leave room for that without letting an unlucky request run past
 * the test's time bound (each round costs 1–2.4 s).
 */
const MAX_ATTEMPTS = 5
/**
 * Server and client share one process and one clock (`performance.now()`); the slack only covers
 * the order in which the event loop runs the server's `finish` callback and the client's handling of
 * the same response, and timer granularity.
 */
const TOLERANCE_MS = 20

interface Attempt {
  arrivedAt: number
  status?: number
  /** When the server finished sending the response (`finish`). */
  sentAt?: number
  /** Retry-After the server sent, in seconds. */
  retryAfter?: number
}

interface Target {
  url: string
  server: Server
  close(): Promise<void>
}

/** The header's value in a `writeHead` argument: a header object, or a flat raw-headers array. */
function retryAfterIn(arg: unknown): string | undefined {
  if (Array.isArray(arg)) {
    for (let i = 0; i + 1 < arg.length; i += 2) {
      if (String(arg[i]).toLowerCase() === 'retry-after') return String(arg[i + 1])
    }
    return undefined
  }
  if (typeof arg !== 'object' || arg === null) return undefined
  for (const [name, value] of Object.entries(arg)) {
    if (name.toLowerCase() === 'retry-after') return String(value)
  }
  return undefined
}

/**
 * Records, ahead of the framework's own listener, when each attempt of each logical request (its
 * `x-request-id`) arrived, and how and when it was answered. Fastify passes its headers to
 * `writeHead` rather than `setHeader`, so `writeHead` is watched too.
 */
function recordAttempts(server: Server): Map<string, Attempt[]> {
  const log = new Map<string, Attempt[]>()
  server.prependListener('request', (req, res: ServerResponse) => {
    const arrivedAt = performance.now()
    const id = req.headers['x-request-id']
    if (typeof id !== 'string') return
    const attempt: Attempt = { arrivedAt }
    log.set(id, [...(log.get(id) ?? []), attempt])
    let written: string | undefined
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse
    res.writeHead = ((...args: unknown[]) => {
      for (const arg of args) written ??= retryAfterIn(arg)
      return writeHead(...args)
    }) as ServerResponse['writeHead']
    res.on('finish', () => {
      attempt.sentAt = performance.now()
      attempt.status = res.statusCode
      const header = res.getHeader('retry-after') ?? written
      if (header !== undefined) attempt.retryAfter = Number(header)
    })
  })
  return log
}

async function listen(handler: RequestListener, close: () => Promise<void>): Promise<Target> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    async close() {
      server.closeAllConnections()
      server.close()
      await close()
    },
  }
}

const frameworks: [string, () => Promise<Target>][] = [
  [
    'Express 5',
    async () => {
      const app = express()
      const limiter = expressBackpressure(SERVER_OPTIONS)
      app.use(limiter)
      app.get('/work', async (req, res) => {
        await sleep(ROUTE_MS)
        res.json({ id: req.get('x-request-id') })
      })
      return listen(app, () => limiter.close())
    },
  ],
  [
    'Koa 3',
    async () => {
      const app = new Koa()
      const limiter = koaBackpressure(SERVER_OPTIONS)
      app.use(limiter)
      app.use(async (ctx) => {
        if (ctx.path !== '/work') return
        await sleep(ROUTE_MS)
        ctx.body = { id: ctx.get('x-request-id') }
      })
      return listen(app.callback(), () => limiter.close())
    },
  ],
  [
    'Fastify 5',
    async () => {
      const app = Fastify({ forceCloseConnections: true })
      await app.register(fastifyBackpressure, SERVER_OPTIONS)
      app.get('/work', async (request) => {
        await sleep(ROUTE_MS)
        return { id: request.headers['x-request-id'] }
      })
      const url = await app.listen({ port: 0, host: '127.0.0.1' })
      return { url, server: app.server, close: () => app.close() }
    },
  ],
]

// Concurrent: each case spends most of its time waiting out Retry-After, so the three overlap well.
describe.concurrent('createFetch against each adapter under overload', () => {
  it.for(frameworks)(
    '%s: every logical request succeeds and no retry comes before its Retry-After',
    {
      timeout: 15_000,
    },
    async ([, start], { expect, onTestFinished }) => {
      const target = await start()
      onTestFinished(() => target.close())
      const log = recordAttempts(target.server)
      const retries: RetryEvent[] = []
      const client = createFetch({
        maxAttempts: MAX_ATTEMPTS,
        // Not the budget under test (budget.test.ts does that on the manual clock). The default 10 %
        // would allow 20 × 0.1 + 1 = 3 retries for this burst while 16 requests need one, so the burst
        // could never all succeed; a ratio of maxAttempts − 1 never binds, even if every request used
        // all its attempts, which leaves Retry-After as the only thing deciding when a retry is sent.
        budget: new RetryBudget({ ratio: MAX_ATTEMPTS - 1 }),
        onRetry: (event) => retries.push(event),
      })

      const ids = Array.from({ length: BURST }, (_, index) => `req-${index}`)
      const responses = await Promise.all(
        ids.map((id) => client(`${target.url}/work`, { headers: { 'x-request-id': id } })),
      )

      // Every logical request eventually succeeded.
      for (const [index, response] of responses.entries()) {
        expect(response.status).toBe(200)
        expect(await response.json()).toEqual({ id: ids[index] })
      }

      // The server was overloaded: at least one 503 was received and retried.
      const rejected = [...log.values()].flat().filter((attempt) => attempt.status === 503)
      expect(rejected.length).toBeGreaterThan(0)
      expect(retries.length).toBe(rejected.length)
      expect(retries.every((event) => event.status === 503 && event.retryAfterMs !== undefined)).toBe(true)

      for (const id of ids) {
        const attempts = log.get(id)!
        expect(attempts.length).toBeGreaterThanOrEqual(1)
        expect(attempts.at(-1)!.status).toBe(200)
        for (let retry = 1; retry < attempts.length; retry++) {
          const previous = attempts[retry - 1]!
          expect(previous.status).toBe(503)
          expect(previous.retryAfter).toBeGreaterThanOrEqual(SERVER_OPTIONS.retryAfter.min)
          expect(previous.retryAfter).toBeLessThanOrEqual(SERVER_OPTIONS.retryAfter.max)
          // The retry arrived no earlier than the 503 was sent plus the Retry-After it carried.
          const earliest = previous.sentAt! + previous.retryAfter! * 1000 - TOLERANCE_MS
          expect(attempts[retry]!.arrivedAt, `${id}, attempt ${retry + 1}`).toBeGreaterThanOrEqual(earliest)
        }
      }
    },
  )
})
