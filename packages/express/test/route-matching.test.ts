import { type RouteMatchingHarness, runRouteMatchingSuite, serve } from '@backpressure/conformance'
import express from 'express'
import { type BackpressureExpressOptions, backpressure } from '../src/index.js'

const harness: RouteMatchingHarness = {
  name: 'express',
  async start(options, routes) {
    const app = express()
    const limiter = backpressure(options as BackpressureExpressOptions)
    app.use(limiter)
    for (const route of routes) {
      const method = route.method.toLowerCase() as 'all' | 'head' | 'get' | 'post'
      app[method](route.path, (_req, res) => {
        res.set('x-route', route.id).type('text/plain').send(route.id)
      })
    }
    app.use(limiter.errorHandler)
    return serve(app, limiter.controller, () => limiter.close())
  },
}

runRouteMatchingSuite(harness)
