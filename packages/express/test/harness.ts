import {
  type AdapterHarness,
  type HarnessSetup,
  type RouteSpec,
  readAll,
  serve,
  withRouteTable,
} from '@backpressure/conformance'
import type { BackpressureController } from '@backpressure/core'
import express, { type Router } from 'express'
import { type BackpressureExpressOptions, type BackpressureMiddleware, backpressure } from '../src/index.js'

function mount(router: Router, routes: readonly RouteSpec[], controller: BackpressureController): void {
  for (const route of routes) {
    const method = route.method === 'GET' ? 'get' : 'post'
    router[method](route.path, async (req, res) => {
      const result = await route.handler({
        url: req.originalUrl,
        controller,
        signal: req.signal,
        readBody: () => readAll(req),
      })
      res.status(result.status ?? 200)
      if ('body' in result) {
        res.type('text/plain').send(result.body)
        return
      }
      res.type('text/plain')
      for await (const chunk of result.stream) {
        if (res.destroyed) return
        res.write(chunk)
      }
      res.end()
    })
  }
}

function listen(app: express.Express, limiter: BackpressureMiddleware, setup?: HarnessSetup) {
  // The documented setup: the error middleware after the routes turns a thrown BackpressureError into the 503.
  app.use(limiter.errorHandler)
  return serve(
    app,
    limiter.controller,
    () => limiter.close(),
    setup?.attached === true ? (server) => limiter.attach(server) : undefined,
  )
}

export const harness: AdapterHarness = {
  name: 'express',
  async start(options, routes, setup) {
    const app = express()
    const stepMs = setup?.asyncStepMs
    if (stepMs !== undefined) app.use((_req, _res, next) => void setTimeout(next, stepMs))
    const limiter = backpressure(withRouteTable<BackpressureExpressOptions>(options, routes))
    app.use(limiter)
    mount(app.router, routes, limiter.controller)
    return listen(app, limiter, setup)
  },
  async startLayered(options, inner, routes, setup) {
    const app = express()
    const outer = backpressure(withRouteTable<BackpressureExpressOptions>(options, routes))
    const router = express.Router()
    router.use(backpressure({ ...inner, controller: outer.controller } as BackpressureExpressOptions))
    mount(router, routes, outer.controller)
    app.use(outer)
    app.use(router)
    return listen(app, outer, setup)
  },
  async setup(options) {
    express().use(backpressure(options as BackpressureExpressOptions))
  },
}
