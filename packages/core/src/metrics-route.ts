import type { BackpressureController } from './controller.js'
import { InvalidOptionError } from './errors.js'
import type { HttpResponse } from './http.js'
import { metricsJson, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './metrics-text.js'
import { assertObject, functionOption } from './validate.js'

/**
 * The metrics route: who may read it (`guard`), which form they get (Prometheus text or JSON), and
 * who renders it (core, or a registry of the user's).
 */

/** What `metrics.render` returns: the exposition of a registry of the user's, for example. */
export interface MetricsExposition {
  readonly contentType: string
  readonly body: string
}

export interface MetricsOptions<Req> {
  /** @default '/metrics' */
  readonly path?: string
  /** Answer only when this returns true (403 otherwise), e.g. to allow scrapers' addresses only. */
  readonly guard?: (req: Req) => boolean
  /**
   * Renders the Prometheus text. By default, the controller's own metrics; `@backpressure/prometheus`
   * gives a renderer over a prom-client registry that holds yours too.
   */
  readonly render?: () => MetricsExposition | Promise<MetricsExposition>
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
} as const

export class MetricsRoute<Req> {
  /** The route's path; undefined when the route is off (`metrics: false`). */
  readonly path: string | undefined
  private readonly guard: ((req: Req) => boolean) | undefined
  private readonly render: (() => MetricsExposition | Promise<MetricsExposition>) | undefined

  constructor(
    option: MetricsOptions<Req> | false | undefined,
    private readonly controller: BackpressureController,
  ) {
    if (option === false) {
      this.path = undefined
      this.guard = undefined
      this.render = undefined
      return
    }
    if (option !== undefined) assertObject('metrics', option as unknown)
    const path: unknown = option?.path === undefined ? '/metrics' : option.path
    if (path !== false && (typeof path !== 'string' || !path.startsWith('/'))) {
      throw new InvalidOptionError('metrics.path', "a path starting with '/', or false", path)
    }
    this.path = path === false ? undefined : path
    this.guard = functionOption('metrics.guard', option?.guard)
    this.render = functionOption('metrics.render', option?.render)
  }

  /** The answer to a request for the metrics: 403 when the guard refuses, else the metrics. */
  respond(req: Req, accept: string | undefined): HttpResponse | Promise<HttpResponse> {
    if (this.guard !== undefined && !this.guard(req)) {
      return respond(403, JSON_HEADERS, JSON.stringify({ error: 'Forbidden' }))
    }
    if (accept?.includes('application/json')) {
      return respond(200, JSON_HEADERS, JSON.stringify(metricsJson(this.controller.stats())))
    }
    if (this.render === undefined) {
      return respond(
        200,
        { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' },
        renderPrometheus([this.controller.stats()]),
      )
    }
    return Promise.resolve(this.render()).then(
      (exposition): HttpResponse =>
        respond(
          200,
          { 'content-type': exposition.contentType, 'cache-control': 'no-store' },
          exposition.body,
        ),
    )
  }
}

/** As the HTTP layer's: every answer states its length, so no adapter falls back to chunked encoding. */
function respond(status: number, headers: Readonly<Record<string, string>>, body: string): HttpResponse {
  return { status, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, body }
}
