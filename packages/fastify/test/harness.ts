import { Readable } from 'node:stream'
import type { AdapterHarness, RouteSpec } from '@backpressure/conformance'
import Fastify, { type FastifyContextConfig } from 'fastify'
import { backpressure, type FastifyBackpressureOptions } from '../src/index.js'

function routeConfig(route: RouteSpec): FastifyContextConfig {
  if (route.optOut) return { backpressure: false }
  if (route.priority !== undefined) return { backpressure: { priority: route.priority } }
  return {}
}

/** The conformance suite's view of the plugin: installed the way Fastify users install it. */
export const fastifyHarness: AdapterHarness = {
  name: 'fastify',
  async start(options, routes, setup) {
    const app = Fastify({ forceCloseConnections: true })
    const stepMs = setup?.asyncStepMs
    // App-level onRequest hooks run before the plugin's route-level one.
    if (stepMs !== undefined)
      app.addHook('onRequest', (_request, _reply, done) => void setTimeout(done, stepMs))
    await app.register(backpressure, options as FastifyBackpressureOptions)
    for (const route of routes) {
      app.route({
        method: route.method,
        url: route.path,
        config: routeConfig(route),
        async handler(request, reply) {
          const result = await route.handler({
            url: request.url,
            controller: app.backpressure,
            signal: request.clientSignal,
            readBody: async () => String(request.body ?? ''),
          })
          reply.code(result.status ?? 200)
          return 'stream' in result ? reply.send(Readable.from(result.stream)) : reply.send(result.body)
        },
      })
    }
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    return { url, controller: app.backpressure, close: () => app.close() }
  },
  async setup(options) {
    const app = Fastify({ forceCloseConnections: true })
    try {
      await app.register(backpressure, options as FastifyBackpressureOptions)
    } finally {
      await app.close()
    }
  },
}
