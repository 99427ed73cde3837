import type { AddressInfo } from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { createApp } from '../src/app.js'

// Keeps the example from rotting: it starts, answers health, and takes and lists an order.

let stop: (() => Promise<void>) | undefined
afterEach(async () => {
  await stop?.()
  stop = undefined
})

it('serves health and places an order', async () => {
  const { app, limiter } = createApp({ pool: { connections: 2, queryMs: 1 } })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  stop = async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await limiter.close()
  }
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const health = await fetch(`${url}/health`)
  expect(health.status).toBe(200)
  expect(await health.json()).toMatchObject({ status: 'healthy' })

  const created = await fetch(`${url}/api/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item: 'coffee', quantity: 2 }),
  })
  expect(created.status).toBe(201)
  expect(await created.json()).toMatchObject({ id: 1, item: 'coffee', quantity: 2 })

  const bad = await fetch(`${url}/api/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"item":""}',
  })
  expect(bad.status).toBe(400)
  await bad.text()

  const list = await fetch(`${url}/api/orders`)
  expect(await list.json()).toHaveLength(1)

  const metrics = await fetch(`${url}/metrics`)
  expect(await metrics.text()).toContain('backpressure_requests_total')
})
