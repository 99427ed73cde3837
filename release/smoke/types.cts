// Type-checked in the scratch project as CommonJS: every package's `require` types (index.d.cts) resolve,
// and they are real types, not `any` (each @ts-expect-error fails the check if the error it expects is gone).
// The same as types.mts but for the module system.
import { AmqpConsumer } from '@backpressure/amqp'
import { BackpressureWorker } from '@backpressure/bullmq'
import { type ClientOptions, createFetch, RetryError } from '@backpressure/client'
import { BackpressureController, type BackpressureStats } from '@backpressure/core'
import { type BackpressureMiddleware, backpressure as expressBackpressure } from '@backpressure/express'
import fastifyBackpressure from '@backpressure/fastify'
import { backpressure as koaBackpressure } from '@backpressure/koa'
import { type BackpressureMetrics, registerBackpressureMetrics } from '@backpressure/prometheus'
import { RedisSharedBaseline, RedisTokenBucketStore } from '@backpressure/redis'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'

const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
const answer: Promise<number> = controller.submit(async () => 42, { priority: 1 })
const stats: BackpressureStats = controller.stats()
// @ts-expect-error maxQueueDepth is a number
new BackpressureController({ maxQueueDepth: 'deep' })

const middleware: BackpressureMiddleware = expressBackpressure({ maxQueueDepth: 10 })
const shared: BackpressureController = middleware.controller
koaBackpressure({ maxConcurrency: 4 })
// @ts-expect-error an unknown option
koaBackpressure({ maxConcurency: 4 })

const app = Fastify()
void app.register(fastifyBackpressure, { maxQueueDepth: 10 })
app.get('/orders', { config: { backpressure: { priority: 10 } } }, async () => 'ok')
const decorated: BackpressureController = app.backpressure

const options: ClientOptions = { maxAttempts: 2 }
const fetchWithRetry: typeof fetch = createFetch(options)
const gaveUp = (error: unknown): number | undefined =>
  error instanceof RetryError ? error.lastStatus : undefined

const metrics: BackpressureMetrics = registerBackpressureMetrics(controller, { registry: new Registry() })

const store = new RedisTokenBucketStore({ client: new Redis({ lazyConnect: true }) })
// @ts-expect-error the client must be an ioredis client
new RedisTokenBucketStore({ client: 'redis://127.0.0.1' })
const fleetBaseline = new RedisSharedBaseline({
  client: new Redis({ lazyConnect: true }),
  key: 'bp:baseline:db',
})
koaBackpressure({ maxConcurrency: { sharedBaseline: fleetBaseline } })
// @ts-expect-error a shared baseline has current() and publish()
koaBackpressure({ maxConcurrency: { sharedBaseline: 10 } })

const worker = new BackpressureWorker('jobs', async (job) => job.id, {
  controller,
  worker: { connection: { host: '127.0.0.1' }, autorun: false },
})
// @ts-expect-error the controller sets the concurrency
new BackpressureWorker('jobs', async () => 1, { controller, worker: { connection: {}, concurrency: 5 } })
const consumer = (connection: import('amqplib').ChannelModel): AmqpConsumer =>
  new AmqpConsumer(async (message) => message.content.length, { controller, connection, queue: 'orders' })

export { answer, consumer, decorated, fetchWithRetry, gaveUp, metrics, shared, stats, store, worker }
