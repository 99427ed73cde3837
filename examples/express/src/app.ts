import { OrderService, type PoolOptions, parseNewOrder, SimulatedPool } from '@backpressure/example-shared'
import {
  type BackpressureExpressOptions,
  type BackpressureMiddleware,
  backpressure,
} from '@backpressure/express'
import express, { type Express } from 'express'

export interface ExampleOptions {
  /** The simulated database: connections and ms per query. */
  readonly pool?: PoolOptions
  /** Overrides of the middleware's options (tests use small limits). */
  readonly backpressure?: BackpressureExpressOptions
}

export interface ExampleApp {
  readonly app: Express
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

  const app = express()
  // First, so health, readiness and metrics are answered before any other middleware runs, and a shed
  // request costs no body parsing.
  app.use(limiter)
  app.use(express.json({ limit: '10kb' }))

  app.post('/api/orders', async (req, res) => {
    const input = parseNewOrder(req.body)
    if (input === undefined) {
      res.status(400).json({ error: 'Expected a JSON body { item: string, quantity: positive integer }' })
      return
    }
    // req.signal aborts if the client leaves: the query is cancelled and its slot frees at once.
    res.status(201).json(await orders.create(input, req.signal))
  })

  app.get('/api/orders', async (req, res) => {
    res.json(await orders.list(50, req.signal))
  })

  // After the routes: a BackpressureError thrown inside one (e.g. from controller.submit) becomes the 503.
  app.use(limiter.errorHandler)
  return { app, limiter, pool, orders }
}
