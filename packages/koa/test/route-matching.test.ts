import { type RouteMatchingHarness, runRouteMatchingSuite, serve } from '@backpressure/conformance'
import Router from '@koa/router'
import Koa from 'koa'
import { type BackpressureKoaOptions, backpressure } from '../src/index.js'

const harness: RouteMatchingHarness = {
  name: 'koa',
  async start(options, routes) {
    const app = new Koa()
    app.silent = true
    const limiter = backpressure(options as BackpressureKoaOptions)
    // @koa/router with its defaults, as the README and the conformance harness use it.
    const router = new Router()
    for (const route of routes) {
      const method = route.method.toLowerCase() as 'all' | 'head' | 'get' | 'post'
      router[method](route.path, (ctx) => {
        ctx.set('x-route', route.id)
        ctx.type = 'text/plain'
        ctx.body = route.id
      })
    }
    app.use(limiter).use(router.routes())
    return serve(app.callback(), limiter.controller, () => limiter.close())
  },
}

runRouteMatchingSuite(harness)
