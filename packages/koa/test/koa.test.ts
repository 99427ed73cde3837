import { createGate, type StartedServer, serve, until } from '@backpressure/conformance'
import { BackpressureController } from '@backpressure/core'
import Router from '@koa/router'
import Koa from 'koa'
import { afterEach, describe, expect, it } from 'vitest'
import { backpressure } from '../src/index.js'

// Behaviours specific to Koa: which errors the middleware answers and which it leaves to Koa, and the
// router-level idiom for priority with a shared controller.

const servers: StartedServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

describe('@backpressure/koa', () => {
  it('answers a BackpressureError from downstream itself and lets other errors through untouched', async () => {
    const app = new Koa()
    app.silent = true
    const seen: unknown[] = []
    const gone = Object.assign(new Error('gone'), { status: 410, expose: true })
    // An upstream error middleware, as Koa apps have: it must see the route's own errors as thrown.
    app.use(async (_ctx, next) => {
      try {
        await next()
      } catch (error) {
        seen.push(error)
        throw error
      }
    })
    const limiter = backpressure({ maxConcurrency: 1, maxQueueDepth: 0, retryAfter: { min: 3, max: 3 } })
    app.use(limiter)
    app.use(async (ctx) => {
      if (ctx.path === '/gone') throw gone
      ctx.body = await limiter.controller.submit(() => 'nested')
    })
    const server = await serve(app.callback(), limiter.controller, () => limiter.close())
    servers.push(server)

    const refused = await fetch(`${server.url}/nested`)
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe('3')
    expect(refused.headers.get('cache-control')).toBe('no-store')
    expect(await refused.json()).toEqual({
      error: 'Service Unavailable',
      reason: 'queue_full',
      retryAfter: 3,
    })

    const res = await fetch(`${server.url}/gone`)
    expect(res.status).toBe(410)
    expect(await res.text()).toBe('gone')
    expect(seen).toEqual([gone])
    await until(() => limiter.controller.inFlight === 0, 'the permits')
  })

  it('gives a router its priority with a router-level layer used before the app-wide one', async () => {
    const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 10 })
    const gate = createGate()
    const order: string[] = []
    const admin = new Router({ prefix: '/admin' })
    // The admin router's layer admits its requests first (priority 10); the app-wide layer then sees
    // them as admitted already and lets them through: one admission per request.
    admin.use(backpressure({ controller, priority: 10 }))
    admin.get('/report', (ctx) => {
      order.push('admin')
      ctx.body = 'report'
    })
    const routes = new Router()
    routes.get('/hold', async (ctx) => {
      await gate.promise
      ctx.body = 'held'
    })
    routes.get('/work', (ctx) => {
      order.push('work')
      ctx.body = 'work'
    })
    const app = new Koa()
    app.use(admin.routes()).use(backpressure({ controller })).use(routes.routes())
    const server = await serve(app.callback(), controller, () => controller.close())
    servers.push(server)

    const held = fetch(`${server.url}/hold`)
    await until(() => controller.inFlight === 1, 'the held slot')
    const work = fetch(`${server.url}/work`)
    await until(() => controller.queueDepth === 1, 'work queued')
    const report = fetch(`${server.url}/admin/report`)
    await until(() => controller.queueDepth === 2, 'admin queued')
    gate.open()
    expect((await report).status).toBe(200)
    expect((await work).status).toBe(200)
    expect((await held).status).toBe(200)
    expect(order).toEqual(['admin', 'work'])
    expect(controller.stats()).toMatchObject({ requests: 3, admitted: 3 })
  })
})
