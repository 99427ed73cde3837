import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { createInventory, createOrders } from '../src/app.js'

// Keeps the example from rotting, on real servers: a call that finds inventory busy is retried after its
// Retry-After; one that cannot be is answered 503 downstream_overloaded with no code of the example's.

const servers: Server[] = []
afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    server.close()
  }
})

async function listen(server: Server): Promise<string> {
  servers.push(server.listen(0, '127.0.0.1'))
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

it('waits out a busy inventory and answers', async () => {
  const inventoryUrl = await listen(createInventory({ capacity: 1, serviceMs: 300 }))
  const lines: string[] = []
  const ordersUrl = await listen(createOrders({ inventoryUrl, log: (line) => lines.push(line) }))

  const busy = fetch(`${inventoryUrl}/items/held`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const started = performance.now()
  const response = await fetch(`${ordersUrl}/orders/sku-1`)
  expect(response.status).toBe(200)
  expect(await response.json()).toEqual({ sku: 'sku-1', available: 7 })
  expect(performance.now() - started).toBeGreaterThanOrEqual(1000)
  expect(lines[0]).toMatch(/^inventory answered 503, retry 1 in \d+ ms$/)
  expect((await busy).status).toBe(200)
})

it('answers 503 downstream_overloaded, marked retried below, when its caller cannot wait for inventory', async () => {
  const inventoryUrl = await listen(createInventory({ capacity: 1, serviceMs: 300 }))
  const ordersUrl = await listen(createOrders({ inventoryUrl }))

  const busy = fetch(`${inventoryUrl}/items/held`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  // Our caller will wait 500 ms: inventory's Retry-After (1–2 s) is past it, so orders gives up at once.
  const response = await fetch(`${ordersUrl}/orders/sku-1`, { headers: { 'x-request-timeout-ms': '500' } })
  expect(response.status).toBe(503)
  expect(response.headers.get('backpressure-retried-below')).toBe('1')
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  expect(((await response.json()) as { reason: string }).reason).toBe('downstream_overloaded')
  expect((await busy).status).toBe(200)
})
