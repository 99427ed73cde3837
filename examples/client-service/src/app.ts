import { createServer, type Server } from 'node:http'
import { createFetch } from '@backpressure/client'
import { backpressure } from '@backpressure/express'
import express from 'express'

/**
 * The downstream: an inventory service behind `backpressure()` that can serve `capacity` requests at a
 * time, each taking `serviceMs`, and answers the rest `503` with a jittered Retry-After of 1–2 s.
 */
export function createInventory(options: { capacity: number; serviceMs: number }): Server {
  const app = express()
  const limiter = backpressure({
    maxConcurrency: options.capacity,
    maxQueueDepth: 0,
    retryAfter: { min: 1, max: 2 },
  })
  app.use(limiter)
  app.get('/items/:sku', async (req, res) => {
    await new Promise((resolve) => setTimeout(resolve, options.serviceMs))
    res.json({ sku: req.params.sku, available: 7 })
  })
  const server = createServer(app)
  server.on('close', () => void limiter.close())
  return server
}

/**
 * The caller: an orders service on defaults. Its route calls inventory with `createFetch` and the
 * request's own `req.signal`, and has no error handling of its own for an overloaded inventory:
 *
 * - the client keeps its requests in flight to inventory within a limit it learns per origin, and fails
 *   what it could not send in time locally (`ClientLimitError`), never sent;
 * - a 503 from inventory is retried after its Retry-After, within the client's retry budget;
 * - the deadline our caller declared (`x-request-timeout-ms`) travels on, so inventory never starts
 *   work for a caller that gave up;
 * - when the call gives up, the error reaches `limiter.errorHandler`, which answers `503`
 *   `downstream_overloaded` with inventory's Retry-After and `Backpressure-Retried-Below: 1`, so a
 *   client of ours above does not retry it again.
 */
export function createOrders(options: { inventoryUrl: string; log?: (line: string) => void }): Server {
  const log = options.log ?? (() => {})
  const inventory = createFetch({
    timeoutMs: 5_000,
    onRetry: ({ attempt, status, delayMs }) =>
      log(`inventory answered ${status ?? 'network error'}, retry ${attempt} in ${delayMs} ms`),
  })
  const app = express()
  const limiter = backpressure()
  app.use(limiter)
  app.get('/orders/:sku', async (req, res) => {
    const response = await inventory(`${options.inventoryUrl}/items/${encodeURIComponent(req.params.sku)}`, {
      signal: req.signal,
    })
    res
      .status(response.status)
      .type('application/json')
      .send(await response.text())
  })
  app.use(limiter.errorHandler)
  const server = createServer(app)
  server.on('close', () => void limiter.close())
  return server
}
