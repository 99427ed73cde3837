/**
 * Every system the benchmarks compare, as one small builder each: given the route's work, it returns a
 * listening-ready `http.Server`. Runs inside the server child process (server-child.ts). A system whose
 * package is missing fails to build and the harness reports it as skipped.
 */

import http from 'node:http'
import { createRequire } from 'node:module'
import type { BackpressureController } from '@backpressure/core'
import PQueue from 'p-queue'
import { SeedBackpressureController, SeedBackpressureError } from './reference-design.js'

const require = createRequire(import.meta.url)

/** When the request reached the server (performance.now()), stamped before any framework code runs. */
export const ARRIVAL = Symbol('arrival')
type Stamped = http.IncomingMessage & { [ARRIVAL]?: number }

export interface SystemContext {
  /** The route's work for this request: CPU and/or a query on the simulated database. */
  readonly work: (req: http.IncomingMessage) => Promise<void>
  /** Pool size P and query time S, for the systems tuned to the pool. */
  readonly poolSize: number
  readonly queryMs: number
  /** The scenario's C in requests a second, for the rate gates (0 when not given). */
  readonly capacity: number
}

export interface BuiltSystem {
  readonly server: http.Server
  /** Our controller, when the system has one: sampled for its limit over time. */
  readonly controller?: BackpressureController
  readonly close?: () => void
}

export interface SystemInfo {
  readonly name: string
  readonly label: string
  readonly framework: 'node' | 'express' | 'fastify' | 'koa'
  readonly kind: 'naive' | 'peer' | 'reference' | 'ours'
  readonly build: (ctx: SystemContext) => Promise<BuiltSystem>
}

function stamp(req: Stamped): void {
  req[ARRIVAL] = performance.now()
}

export function arrivalOf(req: http.IncomingMessage): number {
  return (req as Stamped)[ARRIVAL] ?? performance.now()
}

/**
 * Takes the arrival stamp off a server: the rejection tier measures the framework's request path
 * alone, with nothing of the harness beside it.
 */
export function unstamp(server: http.Server): void {
  delete (server as { emit?: unknown }).emit
}

/**
 * The server as `app.listen()` makes it: the framework's listener its only `request` listener (our
 * Express middleware, when it is the app's first, then moves admission in front of Express, as it does
 * for users). The arrival stamp is taken as the server emits the request, before any listener runs.
 */
function serverFor(listener: http.RequestListener): http.Server {
  const server = http.createServer(listener)
  const emit = server.emit as (this: http.Server, event: string | symbol, ...args: unknown[]) => boolean
  // At most three arguments ('upgrade'), passed on without collecting them into an array.
  server.emit = function stampedEmit(
    this: http.Server,
    event: string | symbol,
    a?: unknown,
    b?: unknown,
    c?: unknown,
  ) {
    if (event === 'request') stamp(a as Stamped)
    return emit.call(this, event, a, b, c)
  } as typeof server.emit
  return server
}

/**
 * Options of ours tuned to the scenario: with a pool, the limit is the pool and the queue a few queries
 * deep; in the CPU-bound variant (no pool) the work queues in the event loop, not in front of a pool, so
 * the tuned signal is event-loop utilization, sampled every 100 ms.
 */
export function tunedOptions(ctx: { poolSize: number }) {
  if (ctx.poolSize === 0) return { maxEventLoopUtilization: 0.95, sampleIntervalMs: 100 }
  return { maxConcurrency: ctx.poolSize, maxQueueDepth: ctx.poolSize * 2 }
}

/**
 * A fixed limit as wide as the pool with a queue half as deep (`{ maxConcurrency: 4, maxQueueDepth: 2 }`
 * for P = 4): what the issue "a permit nobody can steal" measured with, in the clients-leave tier only.
 * With nothing adaptive in the way, any route body beyond P is a permit that was released too early.
 */
export function fixedOptions(ctx: { poolSize: number }) {
  return { maxConcurrency: ctx.poolSize, maxQueueDepth: Math.max(1, Math.floor(ctx.poolSize / 2)) }
}

/**
 * The options of the "default options" rows: none, unless BACKPRESSURE_BENCH_OPTIONS holds a JSON
 * object, for trying a setting against the same load before making it a default (the env reaches the
 * server processes). Results run that way say so in their `command` field.
 */
function defaultOptions(): object {
  const json = process.env.BACKPRESSURE_BENCH_OPTIONS
  return json === undefined || json === '' ? {} : (JSON.parse(json) as object)
}

/** The bound of the hand-written p-queue guard: a quarter second of the pool's work. */
export function pqueueBound(ctx: { poolSize: number; queryMs: number }): number {
  return ctx.poolSize > 0 ? Math.round((ctx.poolSize * 250) / ctx.queryMs) : 100
}

// --- frameworks, bare ---------------------------------------------------------------------------

async function expressApp(
  ctx: SystemContext,
  before: ((app: import('express').Express) => void) | undefined,
  route?: import('express').RequestHandler,
): Promise<http.Server> {
  const { default: express } = await import('express')
  const app = express()
  before?.(app)
  app.get(
    '/work',
    route ??
      (async (req, res) => {
        try {
          await ctx.work(req)
          res.json({ ok: true })
        } catch {
          res.status(500).end()
        }
      }),
  )
  app.get('/hello', (_req, res) => {
    res.send('hello world')
  })
  return serverFor(app)
}

async function fastifyApp(
  ctx: SystemContext,
  before?: (app: import('fastify').FastifyInstance) => Promise<void>,
): Promise<{ server: http.Server; app: import('fastify').FastifyInstance }> {
  const { default: Fastify } = await import('fastify')
  let server: http.Server | undefined
  const app = Fastify({
    logger: false,
    serverFactory: (handler) => {
      server = serverFor(handler)
      return server
    },
  })
  await before?.(app)
  app.get('/work', async (req) => {
    await ctx.work(req.raw)
    return { ok: true }
  })
  app.get('/hello', async () => 'hello world')
  await app.ready()
  return { server: server!, app }
}

async function koaApp(ctx: SystemContext, before?: (app: import('koa')) => void): Promise<http.Server> {
  const { default: Koa } = await import('koa')
  const app = new Koa()
  before?.(app)
  app.use(async (kctx) => {
    if (kctx.path === '/work') {
      await ctx.work(kctx.req)
      kctx.body = { ok: true }
    } else if (kctx.path === '/hello') {
      kctx.body = 'hello world'
    }
  })
  return serverFor(app.callback())
}

// --- ours ---------------------------------------------------------------------------------------

type MiddlewareWithController<T> = T & {
  controller: BackpressureController
  attach?: (server: http.Server) => void
}

/** `limiter.attach(server)` as the README has it, after the framework's listener is on the server. */
function attach(server: http.Server, middleware: MiddlewareWithController<unknown>): void {
  if (middleware.attach === undefined) throw new Error('this adapter has no attach()')
  middleware.attach(server)
}

/**
 * Our Express middleware as the app's first (`app.use(limiter)` then `app.listen()`: after the first
 * request it moves admission in front of Express itself), attached by hand, or behind another
 * middleware, where it stays inside Express and every decision pays Express's request path.
 */
async function oursExpress(
  ctx: SystemContext,
  options: object,
  place: 'first' | 'attached' | 'inside' = 'first',
): Promise<BuiltSystem> {
  const { backpressure } = (await import('@backpressure/express')) as {
    backpressure: (o: object) => MiddlewareWithController<import('express').RequestHandler>
  }
  const middleware = backpressure(options)
  const server = await expressApp(ctx, (app) => {
    if (place === 'inside') app.use((_req, _res, next) => next())
    app.use(middleware)
  })
  if (place === 'attached') attach(server, middleware)
  return { server, controller: middleware.controller }
}

async function oursFastify(ctx: SystemContext, options: object): Promise<BuiltSystem> {
  const mod = (await import('@backpressure/fastify')) as {
    default: import('fastify').FastifyPluginAsync<object>
  }
  const { server, app } = await fastifyApp(ctx, async (a) => {
    await a.register(mod.default, options)
  })
  const controller = (app as unknown as { backpressure?: BackpressureController }).backpressure
  return controller === undefined ? { server } : { server, controller }
}

async function oursKoa(ctx: SystemContext, options: object, attached = false): Promise<BuiltSystem> {
  const { backpressure } = (await import('@backpressure/koa')) as {
    backpressure: (o: object) => MiddlewareWithController<import('koa').Middleware>
  }
  const middleware = backpressure(options)
  const server = await koaApp(ctx, (app) => app.use(middleware))
  if (attached) attach(server, middleware)
  return { server, controller: middleware.controller }
}

// --- bare 503s (the rejection tier) ------------------------------------------------------------

/**
 * The answer every bare 503 of the rejection tier gives: the bytes of our own rejection (the same
 * headers, a body of the same shape), written the way the adapter for that framework writes ours, so
 * a difference between a bare 503 and ours is the framework's path to the answer plus our decision,
 * not a different response.
 */
const BODY_503 = '{"error":"Service Unavailable","reason":"queue_full","retryAfter":1}'
const HEADERS_503 = Object.freeze({
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'retry-after': '1',
  'content-length': String(BODY_503.length),
})

/** node:http alone: its request listener writes the fixed 503, nothing else runs. */
async function raw503(): Promise<BuiltSystem> {
  return {
    server: serverFor((_req, res) => {
      res.writeHead(503, HEADERS_503).end(BODY_503)
    }),
  }
}

/** Express with a first middleware that answers every request 503. */
async function express503(ctx: SystemContext): Promise<BuiltSystem> {
  const server = await expressApp(ctx, (app) =>
    app.use((_req, res) => {
      res.writeHead(503, HEADERS_503).end(BODY_503)
    }),
  )
  return { server }
}

/** Koa with a first middleware that answers every request 503. */
async function koa503(ctx: SystemContext): Promise<BuiltSystem> {
  const server = await koaApp(ctx, (app) =>
    app.use((kctx) => {
      kctx.status = 503
      kctx.set(HEADERS_503)
      kctx.body = BODY_503
    }),
  )
  return { server }
}

/** Fastify with an onRequest hook that answers every request 503 (where our plugin's hook runs). */
async function fastify503(ctx: SystemContext): Promise<BuiltSystem> {
  const { server } = await fastifyApp(ctx, async (app) => {
    app.addHook('onRequest', (_request, reply, _done) => {
      reply.code(503).headers(HEADERS_503).send(BODY_503)
    })
  })
  return { server }
}

// --- peers --------------------------------------------------------------------------------------

async function underPressure(ctx: SystemContext, options: object): Promise<BuiltSystem> {
  const { default: plugin } = await import('@fastify/under-pressure')
  const { server } = await fastifyApp(ctx, async (app) => {
    await app.register(plugin, options)
  })
  return { server }
}

async function overloadProtection(ctx: SystemContext): Promise<BuiltSystem> {
  const protect = require('overload-protection') as (
    framework: string,
    options: object,
  ) => import('express').RequestHandler & { stop(): void }
  // Its defaults (event-loop delay over 42 ms), with the production flag so it answers like it would in production.
  const middleware = protect('express', { production: true })
  const server = await expressApp(ctx, (app) => app.use(middleware))
  return { server, close: () => middleware.stop() }
}

async function toobusy(ctx: SystemContext): Promise<BuiltSystem> {
  const busy = require('toobusy-js') as (() => boolean) & { shutdown(): void }
  // The middleware its README shows, with its defaults (70 ms lag high-water mark).
  const server = await expressApp(ctx, (app) =>
    app.use((_req, res, next) => {
      if (busy()) res.status(503).send("I'm busy right now, sorry.")
      else next()
    }),
  )
  return { server, close: () => busy.shutdown() }
}

async function pqueueGuard(ctx: SystemContext): Promise<BuiltSystem> {
  // What a careful user writes by hand: a p-queue as wide as the pool, 503 once its queue passes a bound.
  const queue = new PQueue({ concurrency: Math.max(1, ctx.poolSize) })
  const bound = pqueueBound(ctx)
  const server = await expressApp(ctx, undefined, async (req, res) => {
    if (queue.size >= bound) {
      res.status(503).set('Retry-After', '5').json({ error: 'Service Unavailable' })
      return
    }
    try {
      await queue.add(() => ctx.work(req))
      res.json({ ok: true })
    } catch {
      res.status(500).end()
    }
  })
  return { server }
}

async function referenceDesign(ctx: SystemContext): Promise<BuiltSystem> {
  // The reference design's Express middleware around its controller, with its own defaults.
  const controller = new SeedBackpressureController({
    maxQueueDepth: 1000,
    maxConcurrency: 100,
    latencyThresholdMs: 1000,
    adaptiveRejection: true,
    retryAfterSeconds: 5,
  })
  const server = await expressApp(ctx, undefined, async (req, res, next) => {
    try {
      await controller.submit(async () => {
        await ctx.work(req)
        res.json({ ok: true })
      })
    } catch (error) {
      if (error instanceof SeedBackpressureError) {
        res.status(503).header('Retry-After', error.retryAfterSeconds.toString()).json({
          error: 'Service temporarily unavailable',
          reason: error.reason,
          retryAfter: error.retryAfterSeconds,
        })
      } else if (!res.headersSent) {
        next(error)
      }
    }
  })
  return { server, close: () => controller.stop() }
}

export const SYSTEMS: readonly SystemInfo[] = [
  {
    name: 'express',
    label: 'Express, unprotected',
    framework: 'express',
    kind: 'naive',
    build: async (ctx) => ({ server: await expressApp(ctx, undefined) }),
  },
  {
    name: 'fastify',
    label: 'Fastify, unprotected',
    framework: 'fastify',
    kind: 'naive',
    build: async (ctx) => ({ server: (await fastifyApp(ctx)).server }),
  },
  {
    name: 'koa',
    label: 'Koa, unprotected',
    framework: 'koa',
    kind: 'naive',
    build: async (ctx) => ({ server: await koaApp(ctx) }),
  },
  {
    name: 'under-pressure',
    label: '@fastify/under-pressure, defaults',
    framework: 'fastify',
    kind: 'peer',
    build: (ctx) => underPressure(ctx, {}),
  },
  {
    name: 'under-pressure-elu',
    label: '@fastify/under-pressure, ELU 0.98',
    framework: 'fastify',
    kind: 'peer',
    build: (ctx) => underPressure(ctx, { maxEventLoopUtilization: 0.98 }),
  },
  {
    name: 'overload-protection',
    label: 'overload-protection (Express)',
    framework: 'express',
    kind: 'peer',
    build: overloadProtection,
  },
  { name: 'toobusy-js', label: 'toobusy-js (Express)', framework: 'express', kind: 'peer', build: toobusy },
  {
    name: 'p-queue-guard',
    label: 'p-queue guard sized to the pool (Express)',
    framework: 'express',
    kind: 'peer',
    build: pqueueGuard,
  },
  {
    name: 'reference-design',
    label: 'reference design: bounded queue, setImmediate polling (Express)',
    framework: 'express',
    kind: 'reference',
    build: referenceDesign,
  },
  {
    name: 'ours-express',
    label: 'ours, Express, default options',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, defaultOptions()),
  },
  {
    name: 'ours-express-tuned',
    label: 'ours, Express, tuned to the pool',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, tunedOptions(ctx)),
  },
  {
    name: 'ours-express-attached',
    label: 'ours, Express, attached, default options',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, defaultOptions(), 'attached'),
  },
  {
    name: 'ours-fastify',
    label: 'ours, Fastify, default options',
    framework: 'fastify',
    kind: 'ours',
    build: (ctx) => oursFastify(ctx, defaultOptions()),
  },
  {
    name: 'ours-fastify-tuned',
    label: 'ours, Fastify, tuned to the pool',
    framework: 'fastify',
    kind: 'ours',
    build: (ctx) => oursFastify(ctx, tunedOptions(ctx)),
  },
  {
    name: 'ours-koa',
    label: 'ours, Koa, default options',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, defaultOptions()),
  },
  {
    name: 'ours-koa-tuned',
    label: 'ours, Koa, tuned to the pool',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, tunedOptions(ctx)),
  },
  {
    name: 'ours-koa-attached',
    label: 'ours, Koa, attached, default options',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, defaultOptions(), true),
  },
]

/** Ours with the fixed limit, one per adapter: the clients-leave tier's systems, not in the overload matrix. */
export const FIXED_SYSTEMS: readonly SystemInfo[] = [
  {
    name: 'ours-express-fixed',
    label: 'ours, Express, fixed limit P, queue P/2',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, fixedOptions(ctx)),
  },
  {
    name: 'ours-fastify-fixed',
    label: 'ours, Fastify, fixed limit P, queue P/2',
    framework: 'fastify',
    kind: 'ours',
    build: (ctx) => oursFastify(ctx, fixedOptions(ctx)),
  },
  {
    name: 'ours-koa-fixed',
    label: 'ours, Koa, fixed limit P, queue P/2',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, fixedOptions(ctx)),
  },
]

/**
 * The ceiling of this harness, not a product: node:http with no framework, a fixed in-flight cap of
 * P + 2 (the pool full and two queries waiting in its FIFO, so a freed connection never idles for the
 * event loop) and the bare 503 for the rest. Nothing adaptive, no queue of its own, the cheapest
 * answer node:http allows: whatever goodput it misses is lost to the machine (the loop reading
 * database answers late while it writes 503s), not to an admission policy.
 */
async function rawGate(ctx: SystemContext): Promise<BuiltSystem> {
  const cap = ctx.poolSize + 2
  let inFlight = 0
  const server = serverFor((req, res) => {
    if (inFlight >= cap) {
      res.writeHead(503, HEADERS_503).end(BODY_503)
      return
    }
    inFlight++
    ctx.work(req).then(
      () => {
        inFlight--
        res.end('ok')
      },
      () => {
        inFlight--
        res.statusCode = 500
        res.end()
      },
    )
  })
  return { server }
}

/** The framework's request listeners, taken off the server for a gate to call after deciding. */
function takeRequestListeners(server: http.Server): http.RequestListener[] {
  const inner = server.listeners('request') as http.RequestListener[]
  for (const listener of inner) server.removeListener('request', listener)
  return inner
}

/**
 * The same gate in front of a framework: the framework's own listener serves what the gate admits, so
 * what this misses beside raw-gate is the framework's cost per served request, which no admission
 * control can take away from a user of that framework. Decided in the server's request listener before
 * the framework sees the request (as `attach` does), released when the response closes.
 */
function gateFramework(server: http.Server, cap: number): BuiltSystem {
  const inner = takeRequestListeners(server)
  let inFlight = 0
  const release = (): void => {
    inFlight--
  }
  server.on('request', (req, res) => {
    if (inFlight >= cap) {
      res.writeHead(503, HEADERS_503).end(BODY_503)
      return
    }
    inFlight++
    res.once('close', release)
    for (const listener of inner) listener(req, res)
  })
  return { server }
}

/**
 * The CPU-bound counterpart of gateFramework: where the bottleneck is the event loop, an in-flight cap
 * means nothing (a request's work is one synchronous run), so the gate admits a fixed rate instead,
 * `share` of C, from a token bucket holding 30 ms of it (a loop turn under load reads that many
 * arrivals at once), decided in the server's request listener with a prebuilt 503. The rate known in
 * advance is what an adaptive controller has to find (cpu-ceiling.ts: what these gates showed).
 */
function rateGateFramework(server: http.Server, ratePerSecond: number): BuiltSystem {
  if (!(ratePerSecond > 0)) throw new Error("a rate gate needs the scenario's capacity")
  const inner = takeRequestListeners(server)
  const perMs = ratePerSecond / 1000
  const burst = Math.max(1, perMs * 30)
  let tokens = burst
  let last = performance.now()
  server.on('request', (req, res) => {
    const now = performance.now()
    tokens = Math.min(burst, tokens + (now - last) * perMs)
    last = now
    if (tokens < 1) {
      res.writeHead(503, HEADERS_503).end(BODY_503)
      return
    }
    tokens--
    for (const listener of inner) listener(req, res)
  })
  return { server }
}

/** The rate gates' shares of C, in percent: from below an Express server's capacity here to above C. */
export const RATE_GATE_SHARES = [70, 80, 90, 100, 110] as const

/** Reference bounds, run by name only (`--systems raw-gate`): not in the overload matrix. */
export const BOUND_SYSTEMS: readonly SystemInfo[] = [
  {
    name: 'raw-gate',
    label: 'node:http, fixed cap P + 2 (harness ceiling)',
    framework: 'node',
    kind: 'naive',
    build: rawGate,
  },
  {
    name: 'express-gate',
    label: 'Express behind a fixed cap P + 2 (its ceiling)',
    framework: 'express',
    kind: 'naive',
    build: async (ctx) => gateFramework(await expressApp(ctx, undefined), ctx.poolSize + 2),
  },
  {
    name: 'fastify-gate',
    label: 'Fastify behind a fixed cap P + 2 (its ceiling)',
    framework: 'fastify',
    kind: 'naive',
    build: async (ctx) => gateFramework((await fastifyApp(ctx)).server, ctx.poolSize + 2),
  },
  {
    name: 'koa-gate',
    label: 'Koa behind a fixed cap P + 2 (its ceiling)',
    framework: 'koa',
    kind: 'naive',
    build: async (ctx) => gateFramework(await koaApp(ctx), ctx.poolSize + 2),
  },
  ...RATE_GATE_SHARES.flatMap((share): SystemInfo[] => [
    {
      name: `express-rate-gate-${share}`,
      label: `Express behind a fixed rate of ${share}% of C`,
      framework: 'express',
      kind: 'naive',
      build: async (ctx) => rateGateFramework(await expressApp(ctx, undefined), (ctx.capacity * share) / 100),
    },
    {
      name: `fastify-rate-gate-${share}`,
      label: `Fastify behind a fixed rate of ${share}% of C`,
      framework: 'fastify',
      kind: 'naive',
      build: async (ctx) => rateGateFramework((await fastifyApp(ctx)).server, (ctx.capacity * share) / 100),
    },
    {
      name: `koa-rate-gate-${share}`,
      label: `Koa behind a fixed rate of ${share}% of C`,
      framework: 'koa',
      kind: 'naive',
      build: async (ctx) => rateGateFramework(await koaApp(ctx), (ctx.capacity * share) / 100),
    },
  ]),
]

/**
 * The rejection tier's limit: one slot, no queue. One request holds the slot for the whole tier, so
 * every other request is turned away the moment it is decided.
 */
export const HELD_OPTIONS = Object.freeze({ maxConcurrency: 1, maxQueueDepth: 0 })

/**
 * The rejection tier's systems, in the order each round runs them: per framework, the bare 503 first,
 * then ours. Not in the overload matrix.
 */
export const REJECTION_SYSTEMS: readonly SystemInfo[] = [
  { name: 'raw-503', label: 'node:http, fixed 503', framework: 'node', kind: 'naive', build: raw503 },
  {
    name: 'express-503',
    label: 'Express, first middleware answers 503',
    framework: 'express',
    kind: 'naive',
    build: express503,
  },
  {
    name: 'ours-express-held',
    label: 'ours, Express middleware, behind another (decided inside Express)',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, HELD_OPTIONS, 'inside'),
  },
  {
    name: 'ours-express-attached-held',
    label: 'ours, Express, attached',
    framework: 'express',
    kind: 'ours',
    build: (ctx) => oursExpress(ctx, HELD_OPTIONS, 'attached'),
  },
  {
    name: 'koa-503',
    label: 'Koa, first middleware answers 503',
    framework: 'koa',
    kind: 'naive',
    build: koa503,
  },
  {
    name: 'ours-koa-held',
    label: 'ours, Koa middleware',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, HELD_OPTIONS),
  },
  {
    name: 'ours-koa-attached-held',
    label: 'ours, Koa, attached',
    framework: 'koa',
    kind: 'ours',
    build: (ctx) => oursKoa(ctx, HELD_OPTIONS, true),
  },
  {
    name: 'fastify-503',
    label: 'Fastify, onRequest hook answers 503',
    framework: 'fastify',
    kind: 'naive',
    build: fastify503,
  },
  {
    name: 'ours-fastify-held',
    label: 'ours, Fastify plugin',
    framework: 'fastify',
    kind: 'ours',
    build: (ctx) => oursFastify(ctx, HELD_OPTIONS),
  },
]

export function systemByName(name: string): SystemInfo {
  const system =
    SYSTEMS.find((s) => s.name === name) ??
    FIXED_SYSTEMS.find((s) => s.name === name) ??
    REJECTION_SYSTEMS.find((s) => s.name === name) ??
    BOUND_SYSTEMS.find((s) => s.name === name)
  if (system === undefined) throw new Error(`unknown system ${name}`)
  return system
}

/** A system's label for reports; an unknown name (from an older results file) as it is. */
export function labelOf(name: string): string {
  try {
    return systemByName(name).label
  } catch {
    return name
  }
}
