import { Readable } from 'node:stream'
import {
  type AdapterHarness,
  type HarnessSetup,
  type RouteSpec,
  readAll,
  serve,
  withRouteTable,
} from '@backpressure/conformance'
import type { BackpressureController } from '@backpressure/core'
import Router from '@koa/router'
import Koa from 'koa'
import { type BackpressureKoaOptions, type BackpressureMiddleware, backpressure } from '../src/index.js'

function routerFor(routes: readonly RouteSpec[], controller: BackpressureController): Router {
  const router = new Router()
  for (const route of routes) {
    const method = route.method === 'GET' ? 'get' : 'post'
    router[method](route.path, async (ctx) => {
      const result = await route.handler({
        url: ctx.originalUrl,
        controller,
        signal: ctx.signal,
        readBody: () => readAll(ctx.req),
      })
      ctx.status = result.status ?? 200
      ctx.type = 'text/plain'
      // A stream body is sent by Koa after every middleware has returned.
      ctx.body = 'body' in result ? result.body : Readable.from(result.stream)
    })
  }
  return router
}

function listen(app: Koa, limiter: BackpressureMiddleware, setup?: HarnessSetup) {
  // Route errors (500s included) are part of the suite; keep Koa from logging them.
  app.silent = true
  return serve(
    app.callback(),
    limiter.controller,
    () => limiter.close(),
    setup?.attached === true ? (server) => limiter.attach(server) : undefined,
  )
}

export const harness: AdapterHarness = {
  name: 'koa',
  async start(options, routes, setup) {
    const app = new Koa()
    const stepMs = setup?.asyncStepMs
    if (stepMs !== undefined) {
      app.use(async (_ctx, next) => {
        await new Promise((resolve) => setTimeout(resolve, stepMs))
        await next()
      })
    }
    const limiter = backpressure(withRouteTable<BackpressureKoaOptions>(options, routes))
    const router = routerFor(routes, limiter.controller)
    app.use(limiter).use(router.routes())
    return listen(app, limiter, setup)
  },
  async startLayered(options, inner, routes, setup) {
    const app = new Koa()
    const outer = backpressure(withRouteTable<BackpressureKoaOptions>(options, routes))
    const router = routerFor(routes, outer.controller)
    // Router-level middleware runs for matched routes only, after the app-wide layer.
    const routed = new Router()
      .use(backpressure({ ...inner, controller: outer.controller } as BackpressureKoaOptions))
      .use(router.routes())
    app.use(outer).use(routed.routes())
    return listen(app, outer, setup)
  },
  async setup(options) {
    new Koa().use(backpressure(options as BackpressureKoaOptions))
  },
}
