import { Readable } from 'node:stream'
import { type AdapterHarness, type RouteSpec, serve, withRouteTable } from '@backpressure/conformance'
import type { BackpressureController } from '@backpressure/core'
import Router from '@koa/router'
import Koa from 'koa'
import { type BackpressureKoaOptions, type BackpressureMiddleware, backpressure } from '../src/index.js'

function routerFor(routes: readonly RouteSpec[], controller: BackpressureController): Router {
  const router = new Router()
  for (const route of routes) {
    const method = route.method === 'GET' ? 'get' : 'post'
    router[method](route.path, async (ctx) => {
      const result = await route.handler({ url: ctx.originalUrl, controller })
      ctx.status = result.status ?? 200
      ctx.type = 'text/plain'
      // A stream body is sent by Koa after every middleware has returned.
      ctx.body = 'body' in result ? result.body : Readable.from(result.stream)
    })
  }
  return router
}

function listen(app: Koa, limiter: BackpressureMiddleware) {
  // Route errors (500s included) are part of the suite; keep Koa from logging them.
  app.silent = true
  return serve(app.callback(), limiter.controller, () => limiter.close())
}

/** The conformance suites' view of the middleware: installed the way Koa users install it. */
export const koaHarness: AdapterHarness = {
  name: 'koa',
  async start(options, routes) {
    const app = new Koa()
    const limiter = backpressure(withRouteTable<BackpressureKoaOptions>(options, routes))
    const router = routerFor(routes, limiter.controller)
    app.use(limiter).use(router.routes())
    return listen(app, limiter)
  },
  async startLayered(options, inner, routes) {
    const app = new Koa()
    const outer = backpressure(withRouteTable<BackpressureKoaOptions>(options, routes))
    const router = routerFor(routes, outer.controller)
    // Router-level middleware runs for matched routes only, after the app-wide layer.
    const routed = new Router()
      .use(backpressure({ ...inner, controller: outer.controller } as BackpressureKoaOptions))
      .use(router.routes())
    app.use(outer).use(routed.routes())
    return listen(app, outer)
  },
  async setup(options) {
    new Koa().use(backpressure(options as BackpressureKoaOptions))
  },
}
