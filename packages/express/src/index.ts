import { Server } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import {
  type BackpressureController,
  defineSignalGetter,
  HttpBackpressure,
  type HttpBackpressureOptions,
  type HttpResponse,
  PASS,
} from '@backpressure/core'
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express'

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

/** The core options, plus the HTTP options whose functions (`priority`, `skip`, …) receive Express's `req`. */
export type BackpressureExpressOptions = HttpBackpressureOptions<Request>

export interface BackpressureMiddleware extends RequestHandler {
  /** The controller this middleware admits through: read its `stats()`, or share it with `{ controller }`. */
  readonly controller: BackpressureController
  /**
   * Error middleware to add after your routes: answers a `BackpressureError` a route threw (from
   * `controller.submit`, say) with the same JSON 503 the middleware sends, and passes anything else on.
   */
  readonly errorHandler: ErrorRequestHandler
  /**
   * Moves admission in front of the framework, into `server`'s own request listener: a request
   * turned away never reaches the framework, which makes shedding several times cheaper. Call it
   * after `app.listen()` (or `createServer(app)`); keep the middleware in place too. With `priority`,
   * `skip`, `rateLimit`, `onReject` or `metrics.guard` (functions of the framework's request), the
   * middleware still decides. As the app's first middleware, on a server whose only request listener
   * is the app, the middleware attaches itself on its first request; calling this as well changes
   * nothing. See the README's "Attach to the server".
   * @example
   * const server = app.listen(3000)
   * limiter.attach(server)
   */
  attach(server: Server): void
  /** Closes the controller if this middleware made it (not a shared one): queued requests get 503. */
  close(): Promise<void>
}

/**
 * Overload protection for Express 5: admits each request through a bounded priority queue, answers
 * 503 with a jittered `Retry-After` when overloaded, and serves `/health`, `/ready` and `/metrics`
 * without queueing.
 *
 * @example
 * const limiter = backpressure({ routes: [{ method: 'POST', path: '/api/orders', priority: 10 }] })
 * app.use(limiter)
 * app.post('/api/orders', createOrder)
 * app.use(limiter.errorHandler)
 */
export function backpressure(options: BackpressureExpressOptions = {}): BackpressureMiddleware {
  const http = new HttpBackpressure<Request>(options)

  let firstRequest = true
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    if (firstRequest) {
      firstRequest = false
      const server = http.decidesBeforeFramework ? serverIfFirst(req, middleware) : undefined
      if (server !== undefined) http.attach(server)
    }
    // `req.signal`: a getter on the app's request prototype, defined once.
    defineSignalGetter(req, responseOf)
    // originalUrl, not url: under `router.use()` the mount path is stripped from url, but the route
    // table, health and metrics paths are written as the client sees them.
    const decision = http.decide(req, req.method, req.originalUrl, res)
    if (decision === PASS) next()
    else if (!(decision instanceof Promise)) write(res, decision)
    else decision.then((settled) => (settled === PASS ? next() : write(res, settled)), next)
  }

  const errorHandler: ErrorRequestHandler = (error, _req, res, next) => {
    // The route has ended (with an error): a client that left no longer needs its slot kept.
    http.routeEnded(res)
    const response = http.errorResponse(error)
    // Once the route has started its response there is nothing left to replace; Express ends it.
    if (response === undefined || res.headersSent) next(error)
    else write(res, response)
  }

  return Object.assign(middleware, {
    controller: http.controller,
    errorHandler,
    attach: (server: Server) => http.attach(server),
    close: () => http.close(),
  })
}

declare global {
  namespace Express {
    interface Request {
      /**
       * Aborts when the client leaves (or the deadline it declared passes): pass it to your database
       * or `fetch`, so work nobody waits for stops and its slot frees at once. Made on first read.
       */
      readonly signal: AbortSignal
    }
  }
}

/**
 * The server, when this middleware is the first thing that runs for every request it receives: the
 * app's first middleware, at its root, and the app the server's only request listener. Attaching
 * admission in front of Express (see attach()) then decides exactly what the middleware would, and a
 * request turned away skips Express's request set-up and router: about four times less CPU per
 * rejection (docs/benchmarks.md, rejection tier), which at 5× overload of a CPU-bound route took the
 * default from 20-48% to 68-84% of capacity served (docs/adaptive-limit.md). Anything in front of it (another
 * middleware, a mount path, a second listener such as a WebSocket server's) keeps admission where the
 * app put it.
 */
function serverIfFirst(req: Request, middleware: RequestHandler): Server | undefined {
  const server: unknown = (req.socket as { server?: unknown } | null)?.server
  // An https server's request listener is the same as an http one's.
  if (!(server instanceof Server || server instanceof HttpsServer)) return undefined
  const listeners = server.listeners('request')
  const stack = (req.app as { router?: { stack?: readonly { handle?: unknown }[] } }).router?.stack
  const first =
    listeners.length === 1 &&
    listeners[0] === req.app &&
    req.baseUrl === '' &&
    stack?.[0]?.handle === middleware
  return first ? (server as Server) : undefined
}

function responseOf(self: Request) {
  return self.res as Response
}

// Node's own writeHead/end rather than res.send(): no ETag or charset rewriting, and the Prometheus
// content type goes out exactly as given. Node leaves the body out for HEAD.
function write(res: Response, response: HttpResponse): void {
  res.writeHead(response.status, response.headers).end(response.body)
}

export default backpressure
