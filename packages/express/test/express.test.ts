import { createServer } from 'node:http'
import { createGate, leaveOnceStarted, type StartedServer, serve, until } from '@backpressure/conformance'
import { BackpressureController, Rejection } from '@backpressure/core'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { backpressure } from '../src/index.js'

// Behaviours specific to Express: what its default error handler does with a BackpressureError, and
// the router-level idiom for priority with a shared controller.

const servers: StartedServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

type Limiter = ReturnType<typeof backpressure>
type Place = (app: express.Express, limiter: Limiter) => void

/**
 * An app with a fixed limit of one and no queue, the limiter put where `place` puts it, and routes
 * `/hold` (holds the only slot until the gate opens) and `/work`, also under `/api`; served as
 * `app.listen()` serves it, plus `limiter.attach(server)` when `attach`.
 */
async function heldApp(place: Place, options: Parameters<typeof backpressure>[0] = {}, attach = false) {
  const app = express()
  const limiter = backpressure({ maxConcurrency: 1, maxQueueDepth: 0, ...options })
  place(app, limiter)
  const gate = createGate()
  let routes = 0
  app.get(['/hold', '/api/hold'], async (_req, res) => {
    routes++
    await gate.promise
    res.send('held')
  })
  app.get(['/work', '/api/work'], (_req, res) => {
    routes++
    res.send('work')
  })
  const server = await serve(
    app,
    limiter.controller,
    () => limiter.close(),
    attach ? (s) => limiter.attach(s) : undefined,
  )
  servers.push(server)
  return { server, gate, limiter, routes: () => routes }
}

describe('@backpressure/express', () => {
  it('answers a thrown BackpressureError with 503 and Retry-After even without errorHandler', async () => {
    const app = express()
    const limiter = backpressure({ maxConcurrency: 1, maxQueueDepth: 0, retryAfter: 7 })
    app.use(limiter)
    app.get('/nested', async (_req, res) => {
      const attempt = limiter.controller.tryAcquire()
      if (attempt instanceof Rejection) throw attempt.toError()
      attempt.release()
      res.send('unexpected')
    })
    const server = await serve(app, limiter.controller, () => limiter.close())
    servers.push(server)
    const res = await fetch(`${server.url}/nested`)
    // Express 5's final handler takes the status and headers from the error (err.status, err.headers).
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    await res.text()
    await until(() => limiter.controller.inFlight === 0, 'the permit')
  })

  it('passes errors other than BackpressureError on from errorHandler', async () => {
    const app = express()
    const limiter = backpressure()
    app.use(limiter)
    app.get('/gone', () => {
      throw Object.assign(new Error('gone'), { status: 410 })
    })
    app.use(limiter.errorHandler)
    const server = await serve(app, limiter.controller, () => limiter.close())
    servers.push(server)
    const res = await fetch(`${server.url}/gone`)
    expect(res.status).toBe(410)
    await res.text()
  })

  it('gives a router its priority with a router-level layer mounted before the app-wide one', async () => {
    const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 10 })
    const gate = createGate()
    const order: string[] = []
    const admin = express.Router()
    admin.get('/report', (_req, res) => {
      order.push('admin')
      res.send('report')
    })
    const app = express()
    // The admin router's own layer admits its requests first (priority 10); the app-wide layer then
    // sees them as admitted already and lets them through: one admission per request.
    app.use('/admin', backpressure({ controller, priority: 10 }), admin)
    app.use(backpressure({ controller }))
    app.get('/hold', async (_req, res) => {
      await gate.promise
      res.send('held')
    })
    app.get('/work', (_req, res) => {
      order.push('work')
      res.send('work')
    })
    const server = await serve(app, controller, () => controller.close())
    servers.push(server)

    const held = fetch(`${server.url}/hold`)
    await until(() => controller.inFlight === 1, 'the held slot')
    const work = fetch(`${server.url}/work`)
    await until(() => controller.queueDepth === 1, 'work queued')
    const report = fetch(`${server.url}/admin/report`)
    await until(() => controller.queueDepth === 2, 'admin queued')
    gate.open()
    expect((await report).status).toBe(200)
    expect((await work).status).toBe(200)
    expect((await held).status).toBe(200)
    expect(order).toEqual(['admin', 'work'])
    expect(controller.stats()).toMatchObject({ requests: 3, admitted: 3 })
  })
})

describe('@backpressure/express attach(server)', () => {
  /** Counts the requests that reach Express at all, with one route that holds the only slot. */
  async function countingApp(options: Parameters<typeof backpressure>[0], attach: boolean) {
    const seen = { count: 0 }
    const place: Place = (app, limiter) => {
      app.use((_req, _res, next) => {
        seen.count++
        next()
      })
      app.use(limiter)
    }
    const { server, gate } = await heldApp(place, options, attach)
    return { server, seen, gate }
  }

  it.each([
    ['middleware only', false, {}, 11],
    ['attached', true, {}, 1],
    ['attached, but a priority function needs the Express request', true, { priority: () => 1 }, 11],
  ] as const)('%s: rejected requests reach Express %#', async (_name, attach, options, reachExpress) => {
    const { server, seen, gate } = await countingApp(options, attach)
    const held = fetch(`${server.url}/hold`)
    await until(() => server.controller.inFlight === 1, 'the held slot')
    for (let i = 0; i < 10; i++) {
      const refused = await fetch(`${server.url}/work`)
      expect(refused.status).toBe(503)
      await refused.text()
    }
    const health = await fetch(`${server.url}/health`)
    expect(health.status).toBe(200)
    await health.text()
    // Health is answered before Express when attached, by the middleware otherwise.
    expect(seen.count).toBe(reachExpress + (attach ? 0 : 1))
    gate.open()
    expect(await (await held).text()).toBe('held')
    const work = await fetch(`${server.url}/work`)
    expect(await work.text()).toBe('work')
  })

  it('refuses a server with no request listener yet', () => {
    const limiter = backpressure()
    expect(() => limiter.attach(createServer())).toThrow('Expected `server` to be')
  })
})

describe("@backpressure/express as the app's first middleware", () => {
  /**
   * The app of heldApp(): its first request served, one held, `count` more turned away; their
   * X-Powered-By headers. Express marks everything it answers with it: a 503 without it was answered
   * before Express.
   */
  async function app(place: Place, options: Parameters<typeof backpressure>[0] = {}, attach = false) {
    const { server, gate, limiter, routes } = await heldApp(place, options, attach)
    const refusals = async (prefix: string, count: number) => {
      expect(await (await fetch(`${server.url}${prefix}/work`)).text()).toBe('work')
      const held = fetch(`${server.url}${prefix}/hold`)
      await until(() => server.controller.inFlight === 1, 'the held slot')
      const poweredBy: (string | null)[] = []
      for (let i = 0; i < count; i++) {
        const refused = await fetch(`${server.url}${prefix}/work`)
        expect(refused.status).toBe(503)
        expect(refused.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
        poweredBy.push(refused.headers.get('x-powered-by'))
        await refused.text()
      }
      gate.open()
      expect(await (await held).text()).toBe('held')
      expect(await (await fetch(`${server.url}${prefix}/work`)).text()).toBe('work')
      return poweredBy
    }
    return { limiter, refusals, routes }
  }

  it('moves admission in front of Express by itself after the first request: rejections skip Express', async () => {
    const { limiter, refusals, routes } = await app((a, l) => a.use(l))
    expect(await refusals('', 5)).toEqual([null, null, null, null, null])
    const stats = limiter.controller.stats()
    // Each request decided once: 3 served, 5 turned away.
    expect(stats.requests).toBe(8)
    expect(stats.rejected).toBe(5)
    expect(routes()).toBe(3)
  })

  it('decides each request once when attach() is called as well', async () => {
    const { limiter, refusals } = await app((a, l) => a.use(l), {}, true)
    expect(await refusals('', 3)).toEqual([null, null, null])
    expect(limiter.controller.stats().requests).toBe(6)
  })

  it.each([
    [
      'behind another middleware',
      (a: express.Express, l: Limiter) => {
        a.use((_req, _res, next) => next())
        a.use(l)
      },
      {},
      '',
    ],
    ['mounted at a path', (a: express.Express, l: Limiter) => a.use('/api', l), {}, '/api'],
    [
      "with a priority function of Express's request",
      (a: express.Express, l: Limiter) => a.use(l),
      { priority: () => 1 },
      '',
    ],
  ] as const)('keeps admission inside Express %s', async (_name, place, options, prefix) => {
    const { refusals } = await app(place, options)
    expect(await refusals(prefix, 3)).toEqual(['Express', 'Express', 'Express'])
  })

  it('keeps admission inside Express when the server has another request listener', async () => {
    const appWithSibling = express()
    const limiter = backpressure({ maxConcurrency: 1, maxQueueDepth: 0 })
    appWithSibling.use(limiter)
    appWithSibling.get('/work', (_req, res) => {
      res.send('work')
    })
    const server = createServer(appWithSibling)
    // A second listener (as a WebSocket library's request hook may be) that answers nothing itself.
    server.on('request', () => {})
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as { port: number }
      expect(await (await fetch(`http://127.0.0.1:${port}/work`)).text()).toBe('work')
      expect(server.listeners('request')[0]).toBe(appWithSibling)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await limiter.close()
    }
  })
})

describe('@backpressure/express: clients that leave (review)', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it('keeps a wrapper of res.end (compression, sessions) that was there before the client left', async () => {
    const app = express()
    const limiter = backpressure({ maxConcurrency: 1, abandonAfterMs: 5000 })
    const calls: string[] = []
    let started = false
    app.use(limiter)
    app.use((_req, res, next) => {
      const end = res.end
      res.end = function (this: typeof res, ...args: unknown[]) {
        calls.push('wrapper')
        return (end as (...a: unknown[]) => typeof res).apply(this, args)
      } as typeof res.end
      next()
    })
    app.get('/slow', async (_req, res) => {
      started = true
      await sleep(150)
      res.send('late')
    })
    const server = await serve(app, limiter.controller, () => limiter.close())
    servers.push(server)
    await leaveOnceStarted(server.url, '/slow', () => started)
    await until(() => server.controller.inFlight === 0, 'the route to end', 3000)
    expect(calls).toEqual(['wrapper'])
    expect(server.controller.stats().abandoned).toBe(0)
  })

  it('frees at once the slot of a response already under way (SSE) when its client leaves', async () => {
    const app = express()
    const limiter = backpressure({ maxConcurrency: 1, abandonAfterMs: 5000 })
    let started = false
    app.use(limiter)
    app.get('/events', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: hello\n\n')
      started = true
      const timer = setInterval(() => res.write('data: tick\n\n'), 20)
      req.on('close', () => clearInterval(timer))
    })
    const server = await serve(app, limiter.controller, () => limiter.close())
    servers.push(server)
    await leaveOnceStarted(server.url, '/events', () => started)
    await until(() => server.controller.inFlight === 0, 'the slot back', 1000)
    expect(server.controller.stats().abandoned).toBe(0)
  })
})
