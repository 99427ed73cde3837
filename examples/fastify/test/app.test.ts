import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../src/app.js'

let app: FastifyInstance | undefined

afterEach(async () => {
  await app?.close()
  app = undefined
})

async function start(options: Parameters<typeof buildApp>[0] = {}): Promise<string> {
  app = await buildApp(options)
  return app.listen({ port: 0, host: '127.0.0.1' })
}

describe('example: orders API on Fastify', () => {
  it('creates and lists orders, and serves health and metrics', async () => {
    const url = await start()
    const created = await fetch(`${url}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: 'coffee', quantity: 2 }),
    })
    expect(created.status).toBe(201)
    expect(await created.json()).toMatchObject({ id: 1, item: 'coffee', quantity: 2 })

    const list = await fetch(`${url}/api/orders`)
    expect(await list.json()).toMatchObject([{ id: 1, item: 'coffee' }])

    const invalid = await fetch(`${url}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: '', quantity: 0 }),
    })
    expect(invalid.status).toBe(400)

    const health = await fetch(`${url}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'healthy' })
    const metrics = await fetch(`${url}/metrics`)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await metrics.text()).toContain('backpressure_requests_total')
  })

  it('sheds what the pool cannot take with 503 and Retry-After, never failing health', async () => {
    const url = await start({
      pool: { connections: 1, queryMs: 50 },
      backpressure: { maxConcurrency: 1, maxQueueDepth: 1, retryAfter: { min: 1, max: 2 } },
    })
    const responses = await Promise.all(Array.from({ length: 6 }, () => fetch(`${url}/api/orders`)))
    const statuses = responses.map((response) => response.status).sort()
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(2)
    const shed = responses.filter((response) => response.status === 503)
    expect(shed.length).toBeGreaterThanOrEqual(1)
    for (const response of shed) expect(['1', '2']).toContain(response.headers.get('retry-after'))
    expect((await fetch(`${url}/health`)).status).toBe(200)
    await Promise.all(responses.map((response) => response.arrayBuffer()))
  })
})
