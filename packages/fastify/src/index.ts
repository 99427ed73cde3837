import {
  assertKnownKeys,
  type BackpressureController,
  type Decision,
  HTTP_OPTION_KEYS,
  HttpBackpressure,
  type HttpBackpressureOptions,
  type HttpResponse,
  InvalidOptionError,
  linkResponse,
  PASS,
  requestSignal,
} from '@backpressure/core'
import type {
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'

// What users build options from, so one import is enough.
export {
  type AgentCheck,
  type AgentCheckOptions,
  BackpressureError,
  CircuitBreaker,
  listenAgentCheck,
  TokenBucketLimiter,
} from '@backpressure/core'

/** A route's own setting: `config: { backpressure: { priority: 10 } }`. */
export interface BackpressureRouteConfig {
  /** Priority of this route's requests; higher runs first. Wins over the `priority` option. @default the `priority` option */
  readonly priority?: number
}

/** The core's options and HTTP options; `skip`, `priority` and `metrics.guard` receive the FastifyRequest. */
export interface FastifyBackpressureOptions extends HttpBackpressureOptions<FastifyRequest> {
  /**
   * Admit once Fastify has read and parsed the body (a `preValidation` hook) instead of on arrival
   * (`onRequest`). A slow or silent body then never holds a slot (no `bodyTimeoutMs` 408 needed), but
   * every request that is then shed has had its body read and parsed first. See docs/permits.md.
   * @default false
   */
  readonly admitAfterBody?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The admission controller (stats, events, `submit` for work inside routes). */
    backpressure: BackpressureController
  }
  interface FastifyRequest {
    /**
     * Aborts when the client leaves (or the deadline it declared passes): pass it to your database
     * or `fetch`, so work nobody waits for stops and its slot frees at once. Made on first read.
     * (Fastify's own `request.signal` also aborts once a request body has been read, on 5.12.)
     */
    readonly clientSignal: AbortSignal
  }
  interface FastifyContextConfig {
    /** `{ priority }` for this route, or `false` to let it bypass admission entirely. */
    backpressure?: BackpressureRouteConfig | false
  }
}

function linkOnly(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  linkResponse(request.raw, reply.raw)
  done()
}

function send(reply: FastifyReply, response: HttpResponse): void {
  reply.code(response.status).headers(response.headers).send(response.body)
}

/**
 * The admission hook of a route, made when the route is registered with its priority bound, so a
 * request reads no route config. Callback style: admission costs no promise unless it waits.
 */
function admissionHook(http: HttpBackpressure<FastifyRequest>, routePriority: number | undefined) {
  return function backpressureOnRequest(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    linkResponse(request.raw, reply.raw)
    const decision = http.decide(request, request.method, request.url, reply.raw, routePriority)
    if (decision === PASS) done()
    else if ('status' in decision) send(reply, decision)
    else decision.then((settled: Decision) => (settled === PASS ? done() : send(reply, settled)), done)
  }
}

const ROUTE_CONFIG_KEYS: readonly string[] = Object.keys({
  priority: true,
} satisfies Record<keyof BackpressureRouteConfig, true>)

/** Reads `config.backpressure` once, at registration: a priority, `undefined` (the default) or `false`. */
function routeSetting(route: RouteOptions): number | undefined | false {
  const setting: unknown = route.config?.backpressure
  if (setting === undefined || setting === false) return setting
  const where = `on route ${String(route.method)} ${route.url}`
  if (typeof setting !== 'object' || setting === null || Array.isArray(setting)) {
    throw new InvalidOptionError('config.backpressure', `false or { priority?: number } ${where}`, setting)
  }
  assertKnownKeys('config.backpressure', setting, ROUTE_CONFIG_KEYS)
  const priority: unknown = (setting as BackpressureRouteConfig).priority
  if (priority !== undefined && (typeof priority !== 'number' || !Number.isFinite(priority))) {
    throw new InvalidOptionError('config.backpressure.priority', `a finite number ${where}`, priority)
  }
  return priority
}

/** The HTTP layer's keys and the plugin's own, so a misspelt `admitAfterBody` is named too. */
const OPTION_KEYS = [...HTTP_OPTION_KEYS, 'admitAfterBody']

// Async, so an invalid option rejects `register` (avvio does not catch a callback plugin's throw).
const plugin: FastifyPluginAsync<FastifyBackpressureOptions> = async (fastify, options) => {
  assertKnownKeys('', options, OPTION_KEYS)
  const { admitAfterBody, ...httpOptions } = options
  if (admitAfterBody !== undefined && typeof admitAfterBody !== 'boolean') {
    throw new InvalidOptionError('admitAfterBody', 'a boolean', admitAfterBody)
  }
  const stage = admitAfterBody === true ? 'preValidation' : 'onRequest'
  const http = new HttpBackpressure<FastifyRequest>(httpOptions)
  const defaultHook = admissionHook(http, undefined)

  // Routes get their own hook (first among their onRequest hooks), as @fastify/rate-limit does.
  fastify.addHook('onRoute', (route) => {
    const setting = routeSetting(route)
    // A BackpressureError thrown in a route (from `controller.submit`, say) gets the same 503 as
    // admission; any other error goes on untouched to the route's, then the app's, error handler.
    const ownErrorHandler = route.errorHandler
    route.errorHandler = function backpressureErrors(error, request, reply) {
      const response = http.errorResponse(error)
      if (response !== undefined) return send(reply, response)
      if (ownErrorHandler !== undefined) return ownErrorHandler.call(this, error, request, reply)
      throw error
    }
    if (setting === false) {
      // No admission, but `request.clientSignal` still needs the response.
      const own = route.onRequest
      route.onRequest = own === undefined ? [linkOnly] : [linkOnly, ...(Array.isArray(own) ? own : [own])]
      return
    }
    const hook = setting === undefined ? defaultHook : admissionHook(http, setting)
    const own = route[stage]
    route[stage] = own === undefined ? [hook] : [hook, ...(Array.isArray(own) ? own : [own])]
  })
  // Requests no route matches (health, readiness and metrics need no route) reach the 404 handler,
  // which runs the app's onRequest hooks; routed requests already went through their route's hook.
  fastify.addHook('onRequest', function notFoundAdmission(request, reply, next) {
    if (request.is404) defaultHook(request, reply, next)
    else next()
  })

  fastify.decorate('backpressure', http.controller)
  fastify.decorateRequest('clientSignal', {
    getter(this: FastifyRequest): AbortSignal {
      return requestSignal(this.raw)
    },
  })
  // Admission closes before the server stops listening: queued requests get 503 shutting_down and
  // readiness turns 503 while in-flight work finishes (onClose runs only after the server drained).
  let closing: Promise<void> | undefined
  fastify.addHook('preClose', (done) => {
    closing = http.close()
    done()
  })
  fastify.addHook('onClose', (_instance, closed) => {
    ;(closing ?? http.close()).then(() => closed(), closed)
  })
}

/**
 * Overload protection for the whole app: a bounded priority queue in front of a concurrency limit,
 * jittered 503s with Retry-After, health, readiness and metrics routes. Register it before your routes.
 *
 * @example
 * await app.register(backpressure, { maxConcurrency: 50 })
 * app.post('/orders', { config: { backpressure: { priority: 10 } } }, createOrder)
 */
export const backpressure = fp(plugin, { name: '@backpressure/fastify', fastify: '5.x' })
export default backpressure
