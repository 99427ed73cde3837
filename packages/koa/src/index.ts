import type { Server } from 'node:http'
import {
  type BackpressureController,
  defineSignalGetter,
  HttpBackpressure,
  type HttpBackpressureOptions,
  type HttpResponse,
  PASS,
} from '@backpressure/core'
import type { Context, Middleware } from 'koa'

export type {
  BackpressureOptions,
  BackpressureStats,
  MetricsOptions,
  RejectInfo,
  RouteRule,
} from '@backpressure/core'
// What users build options from, so one import is enough.
export {
  type AgentCheck,
  type AgentCheckOptions,
  BackpressureController,
  BackpressureError,
  CircuitBreaker,
  listenAgentCheck,
  TokenBucketLimiter,
} from '@backpressure/core'

/** The core options, plus the HTTP options whose functions (`priority`, `skip`, …) receive Koa's `ctx`. */
export type BackpressureKoaOptions = HttpBackpressureOptions<Context>

export interface BackpressureMiddleware extends Middleware {
  /** The controller this middleware admits through: read its `stats()`, or share it with `{ controller }`. */
  readonly controller: BackpressureController
  /**
   * Moves admission in front of the framework, into `server`'s own request listener: a request
   * turned away never reaches the framework, which makes shedding several times cheaper. Call it
   * after `app.listen()` (or `createServer(app)`); keep the middleware in place too. With `priority`,
   * `skip`, `rateLimit`, `onReject` or `metrics.guard` (functions of the framework's request), the
   * middleware still decides. See the README's "Attach to the server".
   * @example
   * const server = app.listen(3000)
   * limiter.attach(server)
   */
  attach(server: Server): void
  /** Closes the controller if this middleware made it (not a shared one): queued requests get 503. */
  close(): Promise<void>
}

/**
 * Overload protection for Koa 3: admits each request through a bounded priority queue, answers 503
 * with a jittered `Retry-After` when overloaded, and serves `/health`, `/ready` and `/metrics` without
 * queueing. A `BackpressureError` thrown downstream (from `controller.submit`, say) becomes the same
 * 503; every other error goes on to Koa untouched.
 *
 * @example
 * app.use(backpressure({ routes: [{ method: 'POST', path: '/api/orders', priority: 10 }] }))
 */
export function backpressure(options: BackpressureKoaOptions = {}): BackpressureMiddleware {
  const http = new HttpBackpressure<Context>(options)

  const middleware = async (ctx: Context, next: () => Promise<unknown>): Promise<void> => {
    // `ctx.signal`: a getter on the app's context prototype, defined once.
    defineSignalGetter(ctx, responseOf)
    // originalUrl: a mounted sub-app or router prefix rewrites ctx.path, but the route table, health
    // and metrics paths are written as the client sees them.
    const decided = http.decide(ctx, ctx.method, ctx.originalUrl, ctx.res)
    // Only a queued request pays for an await; the common case stays synchronous.
    const decision = decided instanceof Promise ? await decided : decided
    if (decision !== PASS) return respond(ctx, decision)
    try {
      await next()
    } catch (error) {
      const response = http.errorResponse(error)
      // Once the body has started there is nothing left to replace; Koa's own handling takes over.
      if (response === undefined || ctx.headerSent) throw error
      respond(ctx, response)
    } finally {
      // The downstream work has ended. The permit stays held while a body streams to a client that is
      // still there (released when the response finishes); for a client that left, it goes back now.
      http.routeEnded(ctx.res)
    }
  }

  return Object.assign(middleware, {
    controller: http.controller,
    attach: (server: Server) => http.attach(server),
    close: () => http.close(),
  })
}

declare module 'koa' {
  interface ExtendableContext {
    /**
     * Aborts when the client leaves (or the deadline it declared passes): pass it to your database
     * or `fetch`, so work nobody waits for stops and its slot frees at once. Made on first read.
     */
    readonly signal: AbortSignal
  }
}

function responseOf(self: Context) {
  return self.res
}

function respond(ctx: Context, response: HttpResponse): void {
  // Status and headers first: a content type already set keeps Koa from guessing one from the body.
  ctx.status = response.status
  ctx.set(response.headers)
  ctx.body = response.body
}

export default backpressure
