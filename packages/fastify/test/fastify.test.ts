import { connect, type Socket } from 'node:net'
import { PassThrough } from 'node:stream'
import { leaveOnceStarted } from '@backpressure/conformance'
import { BackpressureController, BackpressureError } from '@backpressure/core'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { backpressure, type FastifyBackpressureOptions } from '../src/index.js'
import { gate, until } from './helpers.js'

const apps: FastifyInstance[] = []

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()))
})

// fetch may leave a connected socket with no request behind an aborted one; close it at once.
const newApp = () => Fastify({ forceCloseConnections: true })

async function makeApp(options: FastifyBackpressureOptions = {}): Promise<FastifyInstance> {
  const app = newApp()
  apps.push(app)
  await app.register(backpressure, options)
  return app
}

async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ port: 0, host: '127.0.0.1' })
}

/** An app with one slot, held by GET /hold until `held.open()`. */
async function oneSlotApp(options: FastifyBackpressureOptions = {}) {
  const held = gate()
  const app = await makeApp({ maxConcurrency: 1, retryAfter: { min: 1, max: 3 }, ...options })
  app.get('/hold', async () => {
    await held.promise
    return 'held'
  })
  return { app, held }
}

describe('@backpressure/fastify', () => {
  it('runs a queued high-priority route before a queued low-priority one (route config)', async () => {
    const { app, held } = await oneSlotApp()
    const order: string[] = []
    app.get('/low', { config: { backpressure: { priority: 1 } } }, async () => {
      order.push('low')
      return 'low'
    })
    app.get('/high', { config: { backpressure: { priority: 10 } } }, async () => {
      order.push('high')
      return 'high'
    })
    const url = await listen(app)
    const controller = app.backpressure

    const hold = fetch(`${url}/hold`)
    await until(controller, (s) => s.inFlight === 1)
    const low = fetch(`${url}/low`)
    await until(controller, (s) => s.queueDepth === 1)
    const high = fetch(`${url}/high`)
    await until(controller, (s) => s.queueDepth === 2)
    held.open()

    const responses = await Promise.all([hold, low, high])
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200])
    expect(order).toEqual(['high', 'low'])
    await until(controller, (s) => s.inFlight === 0 && s.completed === 3)
  })

  it('lets a route with config.backpressure false bypass admission', async () => {
    const { app, held } = await oneSlotApp({ maxQueueDepth: 0 })
    app.get('/free', { config: { backpressure: false } }, async () => 'free')
    app.get('/work', async () => 'work')
    const url = await listen(app)
    const controller = app.backpressure

    const hold = fetch(`${url}/hold`)
    await until(controller, (s) => s.inFlight === 1)
    expect((await fetch(`${url}/work`)).status).toBe(503)
    const free = await fetch(`${url}/free`)
    expect(free.status).toBe(200)
    expect(await free.text()).toBe('free')
    expect(controller.stats().requests).toBe(2) // /hold and /work only
    held.open()
    expect((await hold).status).toBe(200)
  })

  it('rejects an invalid per-route config when the route is registered', async () => {
    const app = await makeApp()
    const handler = async () => 'x'
    expect(() =>
      app.get('/a', { config: { backpressure: { priority: 'high' as unknown as number } } }, handler),
    ).toThrow(/Expected `config\.backpressure\.priority` to be a finite number on route GET \/a/)
    expect(() => app.get('/b', { config: { backpressure: true as unknown as false } }, handler)).toThrow(
      /Expected `config\.backpressure` to be false or \{ priority\?: number \} on route GET \/b/,
    )
    expect(() => app.get('/c', { config: { backpressure: { priorty: 5 } as never } }, handler)).toThrow(
      'Unknown option `config.backpressure.priorty`: did you mean `config.backpressure.priority`?',
    )
  })

  it('rejects an invalid per-route config registered in an encapsulated plugin', async () => {
    const app = await makeApp()
    await expect(
      app.register(async (child) => {
        child.post('/c', { config: { backpressure: { priority: Number.NaN } } }, async () => 'x')
      }),
    ).rejects.toThrow(/Expected `config\.backpressure\.priority` to be a finite number on route POST \/c/)
  })

  it('rejects invalid plugin options at register with the core message', async () => {
    const app = Fastify()
    await expect(app.register(backpressure, { maxQueueDepth: -1 })).rejects.toThrow(
      /Expected `maxQueueDepth` to be/,
    )
    await app.close()
  })

  it('decorates the instance with the controller it owns and closes it onClose', async () => {
    const app = Fastify()
    await app.register(backpressure, { maxConcurrency: 3 })
    expect(app.backpressure).toBeInstanceOf(BackpressureController)
    expect(app.backpressure.limit).toBe(3)
    await app.ready()
    await app.close()
    expect(app.backpressure.isClosed).toBe(true)
  })

  it('uses a shared controller and leaves it open onClose', async () => {
    const shared = new BackpressureController({ maxConcurrency: 2 })
    const first = Fastify()
    const second = Fastify()
    await first.register(backpressure, { controller: shared })
    await second.register(backpressure, { controller: shared })
    expect(first.backpressure).toBe(shared)
    expect(second.backpressure).toBe(shared)
    await first.close()
    await second.close()
    expect(shared.isClosed).toBe(false)
    await shared.close()
  })

  it('turns a BackpressureError thrown by a route into the 503 admission gives, freeing the permit', async () => {
    const app = await makeApp()
    app.get('/busy', async () => {
      throw new BackpressureError('queue_full', 7)
    })
    app.get('/free', { config: { backpressure: false } }, async () => {
      throw new BackpressureError('circuit_open', 2)
    })
    const url = await listen(app)
    const response = await fetch(`${url}/busy`)
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('7')
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.json()).toEqual({
      error: 'Service Unavailable',
      reason: 'queue_full',
      retryAfter: 7,
    })
    await until(app.backpressure, (s) => s.inFlight === 0 && s.completed === 1)
    const optedOut = await fetch(`${url}/free`)
    expect(optedOut.status).toBe(503)
    expect(await optedOut.json()).toMatchObject({ reason: 'circuit_open', retryAfter: 2 })
  })

  it("keeps a route's own error status and frees the permit", async () => {
    const app = await makeApp()
    app.get('/teapot', async () => {
      throw Object.assign(new Error('short and stout'), { statusCode: 418 })
    })
    const url = await listen(app)
    expect((await fetch(`${url}/teapot`)).status).toBe(418)
    await until(app.backpressure, (s) => s.inFlight === 0 && s.completed === 1)
    expect(app.backpressure.stats().rejected).toBe(0)
  })

  it("hands other errors to the user's error handlers, once, with onError hooks run once", async () => {
    const app = await makeApp()
    const seen: string[] = []
    app.addHook('onError', async (_request, _reply, error) => {
      seen.push(`onError ${error.message}`)
    })
    app.setErrorHandler(async (error: Error, _request, reply) => {
      seen.push(`app ${error.message}`)
      return reply.code(422).send({ handled: error.message })
    })
    app.get('/app', async () => {
      throw new Error('a')
    })
    app.get(
      '/route',
      {
        errorHandler: (error, _request, reply) => {
          seen.push(`route ${error.message}`)
          reply.code(409).send({ route: error.message })
        },
      },
      async () => {
        throw new Error('b')
      },
    )
    const url = await listen(app)
    const first = await fetch(`${url}/app`)
    expect(first.status).toBe(422)
    expect(await first.json()).toEqual({ handled: 'a' })
    const second = await fetch(`${url}/route`)
    expect(second.status).toBe(409)
    expect(await second.json()).toEqual({ route: 'b' })
    expect(seen).toEqual(['onError a', 'app a', 'onError b', 'route b'])
    await until(app.backpressure, (s) => s.inFlight === 0 && s.completed === 2)
  })

  it('holds the permit of a streamed reply until the stream ends', async () => {
    const app = await makeApp()
    const body = new PassThrough()
    app.get('/stream', async (_request, reply) => reply.type('text/plain').send(body))
    const url = await listen(app)
    const controller = app.backpressure

    body.write('first ')
    const response = await fetch(`${url}/stream`)
    const reader = response.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('first ')
    expect(controller.stats().inFlight).toBe(1)
    expect(controller.stats().completed).toBe(0)

    body.end('last')
    while (!(await reader.read()).done) {}
    await until(controller, (s) => s.inFlight === 0 && s.completed === 1)
  })

  it('drops a queued client that aborts: its route never runs, the queue empties at once', async () => {
    const { app, held } = await oneSlotApp()
    let ran = 0
    app.get('/work', async () => {
      ran++
      return 'work'
    })
    const url = await listen(app)
    const controller = app.backpressure

    const hold = fetch(`${url}/hold`)
    await until(controller, (s) => s.inFlight === 1)
    const abort = new AbortController()
    const queued = fetch(`${url}/work`, { signal: abort.signal }).catch((error: unknown) => error)
    await until(controller, (s) => s.queueDepth === 1)
    abort.abort()
    expect(await queued).toBeInstanceOf(Error)
    await until(controller, (s) => s.queueDepth === 0 && s.rejections.aborted === 1)
    expect(controller.stats().inFlight).toBe(1)

    held.open()
    await hold
    await until(controller, (s) => s.inFlight === 0)
    expect(ran).toBe(0)
  })

  it('answers health, readiness and metrics without routes, while every slot is held and the queue is full', async () => {
    const { app, held } = await oneSlotApp({ maxQueueDepth: 0 })
    const url = await listen(app)
    const controller = app.backpressure
    const hold = fetch(`${url}/hold`)
    await until(controller, (s) => s.inFlight === 1)
    expect((await fetch(`${url}/nothing-here`)).status).toBe(503) // 404s are admitted like any request

    const health = await fetch(`${url}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'degraded' })
    expect((await fetch(`${url}/health`, { method: 'HEAD' })).status).toBe(200)
    expect((await fetch(`${url}/ready`)).status).toBe(200)
    const metrics = await fetch(`${url}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await metrics.text()).toMatch(/backpressure_in_flight\{[^}]*\} 1/)
    const json = await fetch(`${url}/metrics`, { headers: { accept: 'application/json' } })
    expect(await json.json()).toMatchObject({ concurrency: 1, queue_depth: 0 })

    held.open()
    await hold
    await until(controller, (s) => s.inFlight === 0)
    expect((await fetch(`${url}/nothing-here`)).status).toBe(404)
  })

  it('admits a request once, before the route’s own onRequest hooks, in encapsulated plugins too', async () => {
    const app = await makeApp({ priority: 3 })
    const seen: number[] = []
    await app.register(
      async (child) => {
        child.get(
          '/item',
          {
            config: { backpressure: { priority: 7 } },
            onRequest: (_request, _reply, done) => {
              seen.push(app.backpressure.stats().admitted)
              done()
            },
          },
          async () => 'item',
        )
      },
      { prefix: '/v1' },
    )
    const url = await listen(app)
    const priorities: number[] = []
    app.backpressure.on('admit', (event) => priorities.push(event.priority))

    expect((await fetch(`${url}/v1/item`)).status).toBe(200)
    expect((await fetch(`${url}/v1/item`, { method: 'HEAD' })).status).toBe(200)
    expect(seen).toEqual([1, 2])
    expect(priorities).toEqual([7, 7])
    expect(app.backpressure.stats().requests).toBe(2)
  })
})

describe('@backpressure/fastify app.close()', () => {
  it('closes admission before the server drains: queued requests get 503 shutting_down, readiness 503, in-flight work finishes', async () => {
    // Fastify's default: close idle connections only, so answers in flight still reach their clients.
    const app = Fastify()
    apps.push(app)
    const held = gate()
    // Event-loop shedding off: on a starved test machine it could answer the queued requests first.
    await app.register(backpressure, { maxConcurrency: 1, eventLoopShedding: false })
    app.get('/hold', async () => {
      await held.promise
      return 'held'
    })
    const url = await listen(app)
    const inFlight = fetch(`${url}/hold`).then(async (r) => [r.status, await r.text()] as const)
    await until(app.backpressure, (stats) => stats.inFlight === 1)
    const queued = Array.from({ length: 3 }, () =>
      fetch(`${url}/hold`).then(async (r) => [r.status, await r.text()] as const),
    )
    await until(app.backpressure, (stats) => stats.queueDepth === 3)
    const closed = app.close()
    const answers = await Promise.all(queued)
    for (const [status, body] of answers) {
      expect(status).toBe(503)
      expect(JSON.parse(body).reason).toBe('shutting_down')
    }
    expect(app.backpressure.isClosed).toBe(true)
    held.open()
    expect(await inFlight).toEqual([200, 'held'])
    // fetch keeps its connections alive; nothing is left to answer on them.
    app.server.closeAllConnections()
    await closed
    apps.splice(apps.indexOf(app), 1)
  })
})

describe('@backpressure/fastify admitAfterBody', () => {
  it('admits after the body is parsed: silent bodies hold no slot, honest clients are served at once', async () => {
    const app = await makeApp({ maxConcurrency: 4, admitAfterBody: true })
    app.post('/upload', async (request) => `got ${String(request.body).length}`)
    app.get('/work', async () => 'work')
    const url = await listen(app)
    const { port } = new URL(url)
    const sockets = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(Number(port), '127.0.0.1', () => resolve(socket))
            socket.on('error', () => {})
          }),
      ),
    )
    for (const socket of sockets) {
      socket.write(
        'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n',
      )
    }
    const honest = await fetch(`${url}/work`)
    expect(honest.status).toBe(200)
    await honest.text()
    expect(app.backpressure.stats().admitted).toBe(1)
    expect(app.backpressure.inFlight).toBe(0)
    for (const socket of sockets) socket.end('x'.repeat(1000))
    await until(app.backpressure, (stats) => stats.admitted === 5 && stats.inFlight === 0)
    for (const socket of sockets) socket.destroy()
  })

  it('rejects a non-boolean admitAfterBody at register', async () => {
    await expect(makeApp({ admitAfterBody: 'yes' as never })).rejects.toThrow(
      'Expected `admitAfterBody` to be a boolean, got `"yes"` (string)',
    )
  })

  it('rejects a misspelt admitAfterBody at register, naming it', async () => {
    await expect(makeApp({ admitAfterBdy: true } as never)).rejects.toThrow(
      'Unknown option `admitAfterBdy`: did you mean `admitAfterBody`?',
    )
  })
})

describe('@backpressure/fastify: clients that leave (review)', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it.each(['return reply', 'callback', 'hijack'])(
    'keeps the slot of a departed client until the route (%s) ends: never two route bodies under a limit of one',
    async (style) => {
      const app = await makeApp({ maxConcurrency: 1, abandonAfterMs: 5000 })
      const bodies = { running: 0, most: 0, started: 0, ended: 0 }
      const work = (done: () => void) => {
        bodies.started++
        bodies.running++
        bodies.most = Math.max(bodies.most, bodies.running)
        setTimeout(() => {
          bodies.running--
          bodies.ended++
          done()
        }, 200)
      }
      if (style === 'return reply')
        app.get('/w', async (_request, reply) => {
          work(() => reply.send('done'))
          return reply
        })
      else if (style === 'callback') app.get('/w', (_request, reply) => work(() => reply.send('done')))
      else
        app.get('/w', async (_request, reply) => {
          reply.hijack()
          work(() => reply.raw.end('done'))
        })
      const url = await listen(app)
      await leaveOnceStarted(url, '/w', () => bodies.started === 1)
      await until(app.backpressure, () => app.backpressure.inFlight === 1)
      await sleep(50)
      // The client is gone, the route still works: its slot is still taken.
      expect(app.backpressure.inFlight).toBe(1)
      const next = fetch(`${url}/w`)
      await until(app.backpressure, () => bodies.ended === 1)
      expect((await next).status).toBe(200)
      expect(bodies.most).toBe(1)
      expect(app.backpressure.stats().abandoned).toBe(0)
    },
  )

  it('request.clientSignal on an opted-out route adds no listener per request to a kept-alive connection', async () => {
    const app = await makeApp()
    let listeners = 0
    app.get('/free', { config: { backpressure: false } }, async (request) => {
      const signal = request.clientSignal
      listeners = request.raw.socket.listenerCount('close')
      return String(signal.aborted)
    })
    const url = await listen(app)
    for (let i = 0; i < 50; i++) expect(await (await fetch(`${url}/free`)).text()).toBe('false')
    expect(listeners).toBeLessThan(5)
  })
})
