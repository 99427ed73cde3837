import { createServer, type Server } from 'node:http'
import { AdaptiveThrottle, createFetch, RetryBudget, RetryError, ThrottledError } from '@backpressure/client'

/**
 * The downstream: an inventory service that can serve `capacity` requests at a time, each taking
 * `serviceMs`, and answers the rest with a 503 and a jittered Retry-After, as `@backpressure/core` does.
 */
export function createInventory(options: { capacity: number; serviceMs: number }): Server {
  let inFlight = 0
  return createServer((req, res) => {
    if (inFlight >= options.capacity) {
      res.writeHead(503, {
        'retry-after': String(1 + Math.floor(Math.random() * 2)),
        'cache-control': 'no-store',
      })
      res.end(JSON.stringify({ error: 'Service Unavailable', reason: 'queue_full' }))
      return
    }
    inFlight++
    setTimeout(() => {
      inFlight--
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ sku: req.url?.split('/').pop(), available: 7 }))
    }, options.serviceMs)
  })
}

/**
 * The caller: an orders service whose every call to inventory goes through one client, so one retry
 * budget and one throttle cover all of them. When inventory stays overloaded the service does not queue
 * or hammer it: it answers 503 itself and passes the wait on to its own callers.
 */
export function createOrders(options: { inventoryUrl: string; log?: (line: string) => void }): Server {
  const log = options.log ?? (() => {})
  const inventory = createFetch({
    maxAttempts: 3,
    timeoutMs: 5_000,
    budget: new RetryBudget({ ratio: 0.1 }),
    throttle: new AdaptiveThrottle(),
    onRetry: ({ attempt, status, delayMs }) =>
      log(`inventory answered ${status ?? 'network error'}, retry ${attempt} in ${delayMs} ms`),
  })

  return createServer(async (req, res) => {
    const sku = req.url?.split('/').pop() ?? ''
    try {
      const response = await inventory(`${options.inventoryUrl}/items/${encodeURIComponent(sku)}`)
      res.writeHead(response.status, { 'content-type': 'application/json' })
      res.end(await response.text())
    } catch (error) {
      if (RetryError.is(error) || ThrottledError.is(error)) {
        // Tell our caller to come back when inventory asked us to, at least a second from now.
        const seconds = RetryError.is(error) ? Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000)) : 1
        res.writeHead(503, { 'retry-after': String(seconds), 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            error: 'Service Unavailable',
            reason: 'dependency_overloaded',
            retryAfter: seconds,
          }),
        )
        return
      }
      res.writeHead(502, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'Bad Gateway' }))
    }
  })
}
