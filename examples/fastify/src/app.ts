import { type NewOrder, OrderService, type PoolOptions, SimulatedPool } from '@backpressure/example-shared'
import { backpressure, type FastifyBackpressureOptions } from '@backpressure/fastify'
import Fastify, { type FastifyInstance } from 'fastify'

export interface AppOptions {
  /** The simulated database: connections and time per query. @default { connections: 4, queryMs: 10 } */
  readonly pool?: PoolOptions
  /** Passed to the plugin. @default {} (the adaptive limit) */
  readonly backpressure?: FastifyBackpressureOptions
  /** @default false */
  readonly logger?: boolean
}

const newOrderSchema = {
  type: 'object',
  required: ['item', 'quantity'],
  additionalProperties: false,
  properties: {
    item: { type: 'string', minLength: 1, maxLength: 200 },
    quantity: { type: 'integer', minimum: 1 },
  },
} as const

/**
 * The orders API: creating an order outranks listing them, and the plugin adds /health, /ready and
 * /metrics. Admission keeps the work let in at what the database pool can do, so the pool's own
 * unbounded queue never grows.
 */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const orders = new OrderService(new SimulatedPool(options.pool))
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(backpressure, options.backpressure ?? {})

  app.post<{ Body: NewOrder }>(
    '/api/orders',
    { config: { backpressure: { priority: 10 } }, schema: { body: newOrderSchema } },
    // request.clientSignal aborts if the client leaves: the query is cancelled and its slot frees at once.
    async (request, reply) => reply.code(201).send(await orders.create(request.body, request.clientSignal)),
  )
  app.get('/api/orders', async (request) => orders.list(50, request.clientSignal))
  return app
}
