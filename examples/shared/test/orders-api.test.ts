import type { AddressInfo } from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { createApp as createExpressApp } from '../../express/src/app.js'
import { createApp as createKoaApp } from '../../koa/src/app.js'

// Keeps the Express and Koa examples from rotting: each starts, answers health, and takes and lists an order.

let stop: (() => Promise<void>) | undefined
afterEach(async () => {
  await stop?.()
  stop = undefined
})

const apps = {
  express: () => {
    const { app, limiter } = createExpressApp({ pool: { connections: 2, queryMs: 1 } })
    return { server: app.listen(0, '127.0.0.1'), limiter }
  },
  koa: () => {
    const { app, limiter } = createKoaApp({ pool: { connections: 2, queryMs: 1 } })
    return { server: app.listen(0, '127.0.0.1'), limiter }
  },
}

it.each(Object.keys(apps) as (keyof typeof apps)[])(
  '%s example serves health and places an order',
  async (name) => {
    const { server, limiter } = apps[name]()
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
  },
)
