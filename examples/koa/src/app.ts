import { OrderService, type PoolOptions, parseNewOrder, SimulatedPool } from '@backpressure/example-shared'
import { type BackpressureKoaOptions, type BackpressureMiddleware, backpressure } from '@backpressure/koa'
import Router from '@koa/router'
import Koa, { type Context } from 'koa'

export interface ExampleOptions {
  /** The simulated database: connections and ms per query. */
  readonly pool?: PoolOptions
  /** Overrides of the middleware's options (tests use small limits). */
  readonly backpressure?: BackpressureKoaOptions
}

export interface ExampleApp {
  readonly app: Koa
  /** The middleware: its `controller` for stats, `close()` for draining. */
  readonly limiter: BackpressureMiddleware
  readonly pool: SimulatedPool
  readonly orders: OrderService
}

/** The orders API: POST /api/orders (priority 10), GET /api/orders, plus /health, /ready and /metrics. */
export function createApp(options: ExampleOptions = {}): ExampleApp {
  const pool = new SimulatedPool(options.pool)
  const orders = new OrderService(pool)
  const limiter = backpressure({
    // Placing an order matters more than listing them: under overload, queued POSTs are admitted first.
    routes: [{ method: 'POST', path: '/api/orders', priority: 10 }],
    ...options.backpressure,
  })

  const router = new Router({ prefix: '/api' })
  router.post('/orders', async (ctx) => {
    const input = parseNewOrder(await readJson(ctx))
    if (input === undefined) {
      ctx.status = 400
      ctx.body = { error: 'Expected a JSON body { item: string, quantity: positive integer }' }
      return
    }
    ctx.status = 201
    // ctx.signal aborts if the client leaves: the query is cancelled and its slot frees at once.
    ctx.body = await orders.create(input, ctx.signal)
  })
  router.get('/orders', async (ctx) => {
    ctx.body = await orders.list(50, ctx.signal)
  })

  const app = new Koa()
  // First, so health, readiness and metrics are answered before any other middleware runs, and a
  // BackpressureError thrown by a route (e.g. from controller.submit) becomes the 503.
  app.use(limiter)
  app.use(router.routes()).use(router.allowedMethods())
  return { app, limiter, pool, orders }
}

/** A JSON body of at most 10 kB, without a body-parser dependency; undefined when it is not JSON. */
async function readJson(ctx: Context): Promise<unknown> {
  if (!ctx.is('application/json')) return undefined
  let text = ''
  for await (const chunk of ctx.req) {
    text += String(chunk)
    if (text.length > 10_240) ctx.throw(413, 'Body too large')
  }
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
