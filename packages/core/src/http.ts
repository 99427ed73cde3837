import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { BodyDeadlines, hasBody, writeBodyTimeout } from './body-deadlines.js'
import { retryAfterSeconds } from './bounds.js'
import type { CircuitBreaker } from './circuit-breaker.js'
import { type BackpressureController, type BackpressureOptions, Permit, Rejection } from './controller.js'
import { InvalidOptionError, REJECTION_REASONS, type RejectionReason } from './errors.js'
import {
  circuitBreakerOption,
  controllerOf,
  deadlineHeaderOption,
  HTTP_OPTION_KEYS,
  MAX_TIMER_MS,
  pathOption,
  timerOption,
} from './http-options.js'
import {
  type RateLimitOptions,
  type ResolvedRateLimit,
  rateLimitValue,
  resolveRateLimit,
  setRateLimitHeaders,
} from './http-rate-limit.js'
import { type MetricsOptions, MetricsRoute } from './metrics-route.js'
import { metricsJson } from './metrics-text.js'
import { attachState, clientGone, RequestState, statesOf } from './request-state.js'
import {
  type CompiledRoutes,
  checkPriority,
  compileRoutes,
  matchRoute,
  type RouteRule,
} from './route-table.js'
import { type TokenBucketResult, wholeSecondsAfter } from './token-bucket.js'
import { assertKnownKeys, assertObject, functionOption } from './validate.js'

export type { RateLimitOptions } from './http-rate-limit.js'
export type { MetricsExposition, MetricsOptions } from './metrics-route.js'
export type { RouteRule } from './route-table.js'

/** A response the HTTP layer decided on; each adapter writes it with its framework's API. */
export interface HttpResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** What a rejected request looked like, for logging. Built only when `onReject` is set. */
export interface RejectInfo {
  readonly reason: RejectionReason
  readonly status: number
  readonly retryAfterSeconds: number
  readonly method: string
  readonly path: string
  readonly priority: number
}

export interface HttpBackpressureOptions<Req> extends BackpressureOptions {
  /** Share one controller (one budget) between several apps or routers; the core options above are then not allowed. */
  readonly controller?: BackpressureController
  /** Priority of every request: a number or a function of the request. Never read from a client header unless you write that function. @default 0 */
  readonly priority?: number | ((req: Req) => number)
  /** Per-route priority and opt-out, matched on method and path. */
  readonly routes?: readonly RouteRule[]
  /** Requests for which this returns true bypass admission entirely. */
  readonly skip?: (req: Req) => boolean
  /** Health path (GET and HEAD): never queued or rejected, always 200. `false` turns it off. @default '/health' */
  readonly healthPath?: string | false
  /** Readiness path: 200, or 503 only while shutting down. `false` turns it off. @default '/ready' */
  readonly readinessPath?: string | false
  /** The metrics route: never queued. `false` turns it off. @default { path: '/metrics' } */
  readonly metrics?: MetricsOptions<Req> | false
  /** Called once per rejected request, for logging or counting; keep it cheap. */
  readonly onReject?: (info: RejectInfo, req: Req) => void
  /**
   * A request header in which callers state how many milliseconds they will still wait (as Envoy's
   * `x-envoy-expected-rq-timeout-ms` does). Work whose budget ran out while it queued is never started
   * (`deadline_exceeded`), and `req.signal` aborts when it passes. Values that are not whole
   * non-negative numbers are ignored. `@backpressure/client` sends it; `false` ignores it.
   * @default 'x-request-timeout-ms'
   */
  readonly deadlineHeader?: string | false
  /** Per-client token-bucket rate limit (429), checked before admission. Off unless set. */
  readonly rateLimit?: RateLimitOptions<Req>
  /**
   * While this breaker is open (or half-open with every trial slot taken), requests get `503`
   * (`circuit_open`) at once, before queueing, with `Retry-After` = the remaining cool-down, jittered.
   * Routes record the downstream's health by calling it through `breaker.execute(fn)`.
   */
  readonly circuitBreaker?: CircuitBreaker
  /**
   * How long an admitted request keeps its slot after its client left while its route had not ended
   * (the route still awaits its database, say). The slot goes back as soon as the route ends its
   * response or its handler settles; a route that does neither is released after this bound, counted
   * in `backpressure_abandoned_permits_total` and the `abandon` event. Releasing at the client's
   * departure instead would let work for departed clients run beyond the limit.
   * @default four times the p99 latency the controller measures, at least 1000 ms and at most
   * maxQueueWaitMs (abandoned holds are not latency samples, so they cannot raise it)
   */
  readonly abandonAfterMs?: number
  /**
   * A request whose body has not fully arrived this long after it was admitted is answered `408` and
   * its slot released, so clients that send headers and then a trickle (or nothing) cannot hold every
   * slot. Slow uploads that a route streams on purpose need a larger value, or `false`.
   * @default maxQueueWaitMs (10000)
   */
  readonly bodyTimeoutMs?: number | false
}

/** The least time a departed client's slot is kept for a route that has not ended. */
const ABANDON_FLOOR_MS = 1000

/** Returned by `decide()` when the request goes on to its route (admitted, bypassed, or admitted already). */
export const PASS = Symbol('backpressure.pass')
export type Decision = typeof PASS | HttpResponse

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
} as const

/**
 * For a request whose client left just as its turn came: nobody reads it, so it is built once and not
 * counted as a rejection (the request was admitted and released).
 */
const GONE_BODY = '{"error":"Service Unavailable","reason":"aborted","retryAfter":1}'
const GONE_RESPONSE: HttpResponse = Object.freeze({
  status: 503,
  headers: Object.freeze({ ...JSON_HEADERS, 'retry-after': '1', 'content-length': String(GONE_BODY.length) }),
  body: GONE_BODY,
})

/**
 * The framework-neutral HTTP layer: every adapter maps its request onto `decide()` and writes the
 * response it returns. All of the HTTP contract lives here, once.
 */
export class HttpBackpressure<Req> {
  readonly controller: BackpressureController
  /** True when this layer made the controller (and so closes it); false for a shared one. */
  readonly ownsController: boolean
  private readonly fixedPriority: number
  private readonly priorityFn: ((req: Req) => number) | undefined
  private readonly skip: ((req: Req) => boolean) | undefined
  private readonly healthPath: string | undefined
  private readonly readinessPath: string | undefined
  private readonly metricsRoute: MetricsRoute<Req>
  private readonly onReject: ((info: RejectInfo, req: Req) => void) | undefined
  private readonly routes: CompiledRoutes | undefined
  private readonly deadlineHeader: string | undefined
  private readonly rateLimit: ResolvedRateLimit<Req> | undefined
  private readonly breaker: CircuitBreaker | undefined
  private readonly abandonAfterMsOption: number | undefined
  private readonly bodyDeadlines: BodyDeadlines | undefined
  /** Some option calls a function of the framework's request: attach() cannot decide admission early. */
  private readonly needsFrameworkRequest: boolean
  /** Servers attach() has put admission in front of: a second call on one of them changes nothing. */
  private readonly attachedTo = new WeakSet<Server>()
  /** Rejection answers built so far, by reason, then by Retry-After seconds. */
  private readonly responses = new Map<RejectionReason, HttpResponse[]>()

  constructor(options: HttpBackpressureOptions<Req> = {}) {
    assertObject('options', options as unknown)
    assertKnownKeys('', options, HTTP_OPTION_KEYS)
    ;({ controller: this.controller, owned: this.ownsController } = controllerOf(options))
    const priority = options.priority
    this.priorityFn = typeof priority === 'function' ? priority : undefined
    this.fixedPriority = typeof priority === 'function' ? 0 : checkPriority('priority', priority ?? 0)
    this.skip = functionOption('skip', options.skip)
    this.onReject = functionOption('onReject', options.onReject)
    this.healthPath = pathOption('healthPath', options.healthPath, '/health')
    this.readinessPath = pathOption('readinessPath', options.readinessPath, '/ready')
    this.metricsRoute = new MetricsRoute(options.metrics, this.controller)
    this.routes = compileRoutes(options.routes)
    this.deadlineHeader = deadlineHeaderOption(options.deadlineHeader)
    this.rateLimit = resolveRateLimit(options.rateLimit, this.controller)
    this.breaker = circuitBreakerOption(options.circuitBreaker)
    this.abandonAfterMsOption = timerOption('abandonAfterMs', options.abandonAfterMs, undefined)
    const maxQueueWaitMs = this.controller.options.maxQueueWaitMs
    const bodyTimeoutMs =
      options.bodyTimeoutMs === false
        ? undefined
        : timerOption('bodyTimeoutMs', options.bodyTimeoutMs, Math.min(MAX_TIMER_MS, maxQueueWaitMs))
    this.bodyDeadlines =
      bodyTimeoutMs === undefined
        ? undefined
        : new BodyDeadlines(this.controller.clock, bodyTimeoutMs, (state) => {
            writeBodyTimeout(state.res)
            state.release()
            this.controller.countBodyTimeout()
          })
    this.needsFrameworkRequest =
      this.priorityFn !== undefined ||
      this.skip !== undefined ||
      this.rateLimit !== undefined ||
      this.onReject !== undefined ||
      this.metricsRoute.guarded
  }

  /**
   * Decides one request: health, readiness and metrics are answered without touching the queue; a
   * skipped or opted-out route passes; anything else is admitted (the permit is released when the
   * response closes) or rejected. `routePriority` is the framework's own per-route setting (Fastify's
   * route config), which wins over the route table and the `priority` option.
   *
   * A request that already went through any backpressure layer passes: it is admitted exactly once.
   */
  decide(
    req: Req,
    method: string,
    url: string,
    res: ServerResponse,
    routePriority?: number | false,
  ): Decision | Promise<Decision> {
    // Admitted exactly once per controller: a second layer with the same controller passes, one with
    // another controller (a stricter limit for a group of routes) admits through its own as well.
    for (let state = statesOf(res); state !== undefined; state = state.next) {
      if (state.owner.controller === this.controller) return PASS
    }
    const path = pathOf(url)

    if (
      (method === 'GET' || method === 'HEAD') &&
      this.healthPath !== undefined &&
      path === this.healthPath
    ) {
      return this.health()
    }
    if (
      (method === 'GET' || method === 'HEAD') &&
      this.readinessPath !== undefined &&
      path === this.readinessPath
    ) {
      return this.readiness()
    }
    if ((method === 'GET' || method === 'HEAD') && path === this.metricsRoute.path) {
      return this.metrics(req, (res.req as IncomingMessage | undefined)?.headers.accept)
    }
    if (routePriority === false) return PASS
    if (this.skip?.(req)) return PASS

    let priority: number
    if (routePriority !== undefined) {
      priority = routePriority
    } else {
      const rule = this.routes === undefined ? undefined : matchRoute(this.routes, method, url)
      if (rule?.backpressure === false) return PASS
      priority = rule?.priority ?? (this.priorityFn === undefined ? this.fixedPriority : this.priorityOf(req))
    }

    // The breaker first: while the downstream is out, the answer is 503 for everyone, and a client's
    // tokens are not spent on a request nobody could serve.
    if (this.breaker !== undefined) {
      const wait = this.breaker.retryAfterSeconds()
      if (wait > 0) {
        return this.rejected(
          this.controller.rejectWith('circuit_open', priority, wait),
          req,
          method,
          path,
          priority,
        )
      }
    }
    const rateLimit = this.rateLimit
    if (rateLimit !== undefined) {
      const key = rateLimit.key(req)
      if (key !== undefined) {
        const taken = rateLimit.limiter.take(
          key,
          rateLimit.costFn === undefined ? rateLimit.fixedCost : rateLimit.costFn(req),
        )
        if (!isPromise(taken)) {
          if (!taken.allowed) return this.rateLimited(taken, rateLimit, req, method, path, priority)
          if (rateLimit.headers) setRateLimitHeaders(res, taken, rateLimit)
        } else {
          return taken.then((settled) => {
            if (!settled.allowed) return this.rateLimited(settled, rateLimit, req, method, path, priority)
            // (admit() checks that the client did not leave while the store answered.)
            if (rateLimit.headers && !res.headersSent) setRateLimitHeaders(res, settled, rateLimit)
            return this.admit(res, req, method, path, priority)
          })
        }
      }
    }
    return this.admit(res, req, method, path, priority)
  }

  /**
   * Moves admission in front of the framework: `server`'s own `request` listener decides first, so a
   * request turned away never goes through the framework's request set-up and router (at 10× overload
   * nine requests in ten are turned away, and that path decides how much of its core the server
   * keeps). An admitted request goes on to the framework unchanged, and the middleware, seeing it was
   * admitted already, lets it through. Call it once the framework's listener is on the server
   * (`const server = app.listen(port); limiter.attach(server)`).
   *
   * Options whose functions take the framework's request (`priority`, `skip`, `rateLimit`,
   * `onReject`, `metrics.guard`) cannot be called before the framework made that request: with any of
   * them, requests are still decided by the middleware (health and readiness are answered early),
   * never decided wrongly.
   */
  attach(server: Server): void {
    if (this.attachedTo.has(server)) return
    const listeners = server.listeners('request') as RequestListener[]
    if (listeners.length === 0) {
      throw new InvalidOptionError(
        'server',
        "a node:http server with the framework's request listener on it",
        server,
      )
    }
    const framework = listeners.length === 1 ? (listeners[0] as RequestListener) : undefined
    const forward = function (this: Server, req: IncomingMessage, res: ServerResponse): void {
      if (framework !== undefined) framework.call(this, req, res)
      else for (const listener of listeners) listener.call(this, req, res)
    }
    const early = this.needsFrameworkRequest ? this.healthOnly : this.decide
    const layer = this
    this.attachedTo.add(server)
    server.removeAllListeners('request')
    server.on('request', function backpressureFirst(this: Server, req: IncomingMessage, res: ServerResponse) {
      const decision = early.call(layer, req as unknown as Req, req.method ?? 'GET', req.url ?? '/', res)
      if (decision === PASS) forward.call(this, req, res)
      else if (!(decision instanceof Promise)) writeRaw(res, decision)
      else
        decision.then(
          (settled) => (settled === PASS ? forward.call(this, req, res) : writeRaw(res, settled)),
          (error: unknown) => res.destroy(error as Error),
        )
    })
  }

  /**
   * Whether attach() decides admission itself (no option is a function of the framework's request),
   * and not only health and readiness.
   */
  get decidesBeforeFramework(): boolean {
    return !this.needsFrameworkRequest
  }

  /** attach() with options that need the framework's request: only health and readiness are answered early. */
  private healthOnly(_req: Req, method: string, url: string): Decision {
    if (method !== 'GET' && method !== 'HEAD') return PASS
    const path = pathOf(url)
    if (path === this.healthPath) return this.health()
    if (path === this.readinessPath) return this.readiness()
    return PASS
  }

  /**
   * Admission proper: a permit (held until the request's work ends: see RequestState), a wait, or a
   * rejection. A client that left already gets nothing: its `close` will not come again.
   */
  private admit(
    res: ServerResponse,
    req: Req,
    method: string,
    path: string,
    priority: number,
  ): Decision | Promise<Decision> {
    const controller = this.controller
    if (clientGone(res))
      return this.rejected(controller.rejectWith('aborted', priority), req, method, path, priority)
    const deadline = this.deadlineHeader === undefined ? undefined : this.deadlineOf(res)
    const state = new RequestState(this, res, deadline)
    // The request state is the wait's abort signal: the client leaving aborts a queued request.
    const result = controller.admit(priority, state, deadline)
    // Turned away at once (most requests under heavy overload): the response ends now, with no permit
    // to release and no wait to abort, so it needs neither the state nor a close listener.
    if (result instanceof Rejection) return this.rejected(result, req, method, path, priority)
    attachState(state)
    if (result instanceof Permit) {
      this.hold(state, result)
      return PASS
    }
    return result.then((settled) => {
      // Settled: a later departure has no wait left to abort (and must not count an abort).
      state.aborted = true
      if (settled instanceof Permit) {
        // The client may have gone between the slot being handed over and this callback: the slot
        // goes back at once and the route never runs (the answer goes nowhere, so it is not counted).
        if (state.gone || clientGone(res)) {
          settled.release()
          return GONE_RESPONSE
        }
        this.hold(state, settled)
        return PASS
      }
      return this.rejected(settled, req, method, path, priority)
    })
  }

  private hold(state: RequestState, permit: Permit): void {
    const req = state.res.req as IncomingMessage
    state.hold(permit, req.socket)
    if (this.bodyDeadlines !== undefined && !req.complete && hasBody(req)) this.bodyDeadlines.add(state)
  }

  /**
   * The `priority` function's answer, checked: NaN (`Number(header)` on a missing header) would make
   * a queue level per waiter and always displace someone, so a bad answer is an error the framework
   * answers 500, never a silent priority.
   */
  private priorityOf(req: Req): number {
    const priority = (this.priorityFn as (req: Req) => number)(req)
    if (typeof priority !== 'number' || !Number.isFinite(priority)) {
      throw new InvalidOptionError('priority', 'a function returning a finite number', priority)
    }
    return priority
  }

  /** @internal How long a permit stays held after its client left mid-route (RequestState). */
  abandonAfterMs(): number {
    if (this.abandonAfterMsOption !== undefined) return this.abandonAfterMsOption
    // Long streams that end normally raise the p99 too: the queue-wait bound caps what one departed
    // client can hold.
    const cap = Math.max(ABANDON_FLOOR_MS, Math.min(MAX_TIMER_MS, this.controller.options.maxQueueWaitMs))
    return Math.min(cap, Math.max(ABANDON_FLOOR_MS, 4 * this.controller.p99LatencyMs()))
  }

  /**
   * Tells the layer that the route's handler has settled (Koa: `await next()`), so a request whose
   * client left gives its slot back now rather than after a bound.
   */
  routeEnded(res: ServerResponse): void {
    for (let state = statesOf(res); state !== undefined; state = state.next) {
      if (state.owner === this) state.endRoute()
    }
  }

  /**
   * The 503 (or 429) for a rejection: jittered whole-second Retry-After, no-store, a JSON body with a
   * stable reason. Rejections come in few shapes (a reason and a whole number of seconds), so each
   * answer is built once and reused: a shed request allocates no headers or body of its own.
   */
  rejectionResponse(rejection: {
    readonly reason: RejectionReason
    readonly retryAfterSeconds: number
    readonly status: number
  }): HttpResponse {
    // A BackpressureError a route threw may carry any number: the header gets a valid one.
    const seconds = retryAfterSeconds(rejection.retryAfterSeconds)
    const built = this.responses.get(rejection.reason)?.[seconds]
    if (built !== undefined && built.status === rejection.status) return built
    const response = buildRejectionResponse(rejection.reason, rejection.status, seconds)
    if (seconds <= MAX_CACHED_SECONDS && Object.hasOwn(REJECTION_REASONS, rejection.reason)) {
      let bySeconds = this.responses.get(rejection.reason)
      if (bySeconds === undefined) {
        bySeconds = []
        this.responses.set(rejection.reason, bySeconds)
      }
      bySeconds[seconds] = response
    }
    return response
  }

  /**
   * The response for an error a route threw: the 503 for a BackpressureError (for instance from
   * `controller.submit`); the `downstream_overloaded` 503 for our client's `RetryError`,
   * `ClientLimitError` or `ThrottledError` (a downstream call that gave up), its Retry-After no shorter
   * than the downstream's and marked `Backpressure-Retried-Below` so that our client above does not
   * retry it again; undefined for anything else, which stays the route's own error.
   */
  errorResponse(error: unknown): HttpResponse | undefined {
    if (isBackpressureLike(error)) return this.rejectionResponse(error)
    if (!isDownstreamOverloaded(error)) return undefined
    const retryAfterMs = error.retryAfterMs
    return this.rejectionResponse(
      this.controller.rejectDownstream(
        typeof retryAfterMs === 'number' && retryAfterMs > 0 ? Math.ceil(retryAfterMs / 1000) : undefined,
      ),
    )
  }

  health(): HttpResponse {
    const stats = this.controller.stats()
    // `reason`: which signal sheds (queue_delay: the limit; event_loop_delay: the loop; latency; …).
    return json(200, {
      status: stats.backpressureActive ? 'degraded' : 'healthy',
      ...(stats.pressureReason === undefined ? {} : { reason: stats.pressureReason }),
      ...metricsJson(stats),
    })
  }

  readiness(): HttpResponse {
    if (this.controller.isClosed) {
      return respond(503, { ...JSON_HEADERS, 'retry-after': '5' }, '{"status":"shutting_down"}')
    }
    return json(200, { status: 'ready' })
  }

  metrics(req: Req, accept: string | undefined): HttpResponse | Promise<HttpResponse> {
    return this.metricsRoute.respond(req, accept)
  }

  private deadlineOf(res: ServerResponse): number | undefined {
    const raw = (res.req as IncomingMessage | undefined)?.headers[this.deadlineHeader as string]
    if (typeof raw !== 'string' || !/^\d{1,10}$/.test(raw)) return undefined
    return this.controller.clock.now() + Number(raw)
  }

  /** Closes the controller if this layer made it. */
  close(): Promise<void> {
    return this.ownsController ? this.controller.close() : Promise.resolve()
  }

  /** The 429: counted through the controller (stats, metrics, events), with the IETF RateLimit headers. */
  private rateLimited(
    result: TokenBucketResult,
    rateLimit: ResolvedRateLimit<Req>,
    req: Req,
    method: string,
    path: string,
    priority: number,
  ): HttpResponse {
    const seconds = wholeSecondsAfter(result.retryAfterMs)
    const response = this.rejected(
      this.controller.rejectWith('rate_limited', priority, seconds),
      req,
      method,
      path,
      priority,
    )
    return {
      status: response.status,
      // t is the Retry-After itself, so Retry-After never points before the end of the effective
      // window (draft-ietf-httpapi-ratelimit-headers-11, section 6).
      headers: {
        ...response.headers,
        'ratelimit-policy': rateLimit.policy,
        ratelimit: rateLimitValue(rateLimit.quotedName, result.remaining, seconds),
      },
      body: response.body,
    }
  }

  private rejected(
    rejection: Rejection,
    req: Req,
    method: string,
    path: string,
    priority: number,
  ): HttpResponse {
    if (this.onReject !== undefined) {
      this.onReject(
        {
          reason: rejection.reason,
          status: rejection.status,
          retryAfterSeconds: rejection.retryAfterSeconds,
          method,
          path,
          priority,
        },
        req,
      )
    }
    return this.rejectionResponse(rejection)
  }
}

/** Retry-After values up to an hour are cached (a few per reason in practice); longer ones are built each time. */
const MAX_CACHED_SECONDS = 3600

/**
 * Marks a 503 answered because a downstream call already gave up retrying: a client of ours above does
 * not retry it again (but within its retry budget, once), so only the layer next to the overloaded
 * service retries. docs/errors.md and docs/call-chains.md.
 */
export const RETRIED_BELOW_HEADER = 'backpressure-retried-below'

function buildRejectionResponse(reason: RejectionReason, status: number, seconds: number): HttpResponse {
  // The body is ASCII, so its length is its byte count.
  const body = `{"error":"${status === 429 ? 'Too Many Requests' : 'Service Unavailable'}","reason":"${reason}","retryAfter":${seconds}}`
  const headers: Record<string, string> = {
    ...JSON_HEADERS,
    'retry-after': String(seconds),
    'content-length': String(body.length),
  }
  if (reason === 'downstream_overloaded') headers[RETRIED_BELOW_HEADER] = '1'
  return Object.freeze({ status, headers: Object.freeze(headers), body })
}

// Brands of @backpressure/client's RetryError, ClientLimitError and ThrottledError (no dependency
// between the packages): a downstream call that gave up.
const kDownstreamOverloaded = Symbol.for('backpressure.downstream-overloaded')

function isDownstreamOverloaded(error: unknown): error is { retryAfterMs?: unknown } {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as Record<symbol, unknown>)[kDownstreamOverloaded] === true
  )
}

/** Node's own writeHead/end: one write, the headers object as built, the body left out for HEAD. */
function writeRaw(res: ServerResponse, response: HttpResponse): void {
  res.writeHead(response.status, response.headers).end(response.body)
}

function isBackpressureLike(
  error: unknown,
): error is { reason: RejectionReason; retryAfterSeconds: number; status: number } {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as Record<symbol, unknown>)[Symbol.for('backpressure.error')] === true
  )
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

function json(status: number, body: unknown): HttpResponse {
  return respond(status, JSON_HEADERS, JSON.stringify(body))
}

/**
 * Every response states its length, so no adapter falls back to chunked encoding (Express's
 * writeHead + end would) and a client can reuse the connection as soon as the body is read.
 */
function respond(status: number, headers: Readonly<Record<string, string>>, body: string): HttpResponse {
  return { status, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, body }
}

function pathOf(url: string): string {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}
