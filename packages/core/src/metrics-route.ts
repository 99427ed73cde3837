import type { BackpressureController } from './controller.js'
import { InvalidOptionError } from './errors.js'
import type { HttpResponse } from './http.js'
import { prefersJson } from './metrics-accept.js'
import { metricsJson, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './metrics-text.js'
import { assertKnownKeys, assertObject, functionOption, numberOption } from './validate.js'

/**
 * The metrics route: who may read it (`guard`), which form they get (Prometheus text or JSON), who
 * renders it (core, or a registry of the user's), and how often. The route is public by default and
 * a render costs tens of microseconds against well under one for an admission, so each form's
 * rendering is served again for `cacheMs`: a flood of scrapes costs one render per interval, while a
 * scraper, which comes every few seconds at most, always gets a fresh one.
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
  /**
   * How long a rendering (of each form: the exposition, the JSON) is served again before the next is
   * made, in milliseconds of the controller's clock, so a flood of requests to the public route costs
   * one render per interval. Keep it well under the scrape interval; `0` renders every request.
   * @default 250
   */
  readonly cacheMs?: number
}

/**
 * A scrape that comes less than `cacheMs` after the last rendering gets that rendering again, so the
 * cache must stay under the scrape interval: at 1000 ms, a Prometheus scraping every second got every
 * other scrape stale (a rate() of half the real one, measured in the end-to-end test). A quarter of a
 * second is under any usual interval and still holds a flood to four renders a second.
 */
const DEFAULT_CACHE_MS = 250
/** The longest `cacheMs`: past a minute, scrapes at common intervals would read the same numbers twice. */
const MAX_CACHE_MS = 60_000

/** Every key of MetricsOptions (the compiler keeps the two in step): any other is refused. */
const METRICS_OPTION_KEYS: readonly string[] = Object.keys({
  path: true,
  guard: true,
  render: true,
  cacheMs: true,
} satisfies Record<keyof MetricsOptions<unknown>, true>)

/** A rendering and when it was made; a pending render is shared too. */
interface Cached {
  readonly at: number
  readonly response: HttpResponse | Promise<HttpResponse>
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
} as const

export class MetricsRoute<Req> {
  /** The route's path; undefined when the route is off (`metrics: false`). */
  readonly path: string | undefined
  private readonly guard: ((req: Req) => boolean) | undefined

  /** Whether a guard reads the framework's request. */
  get guarded(): boolean {
    return this.guard !== undefined
  }
  private readonly render: (() => MetricsExposition | Promise<MetricsExposition>) | undefined
  private readonly cacheMs: number
  private text: Cached | undefined = undefined
  private json: Cached | undefined = undefined
  /** The last `Accept` negotiated and its answer: a flood of scrapes mostly repeats one header. */
  private lastAccept: string | undefined = undefined
  private lastPrefersJson = false

  constructor(
    option: MetricsOptions<Req> | false | undefined,
    private readonly controller: BackpressureController,
  ) {
    if (option === false) {
      this.path = undefined
      this.guard = undefined
      this.render = undefined
      this.cacheMs = 0
      return
    }
    if (option !== undefined) {
      assertObject('metrics', option as unknown)
      assertKnownKeys('metrics', option, METRICS_OPTION_KEYS)
    }
    const path: unknown = option?.path === undefined ? '/metrics' : option.path
    if (path !== false && (typeof path !== 'string' || !path.startsWith('/'))) {
      throw new InvalidOptionError('metrics.path', "a path starting with '/', or false", path)
    }
    this.path = path === false ? undefined : path
    this.guard = functionOption('metrics.guard', option?.guard)
    this.render = functionOption('metrics.render', option?.render)
    this.cacheMs = numberOption('metrics.cacheMs', option?.cacheMs, DEFAULT_CACHE_MS, 0, MAX_CACHE_MS)
  }

  /**
   * The answer to a request for the metrics (GET or HEAD: the adapters leave the body out of HEAD):
   * 403 when the guard refuses, else the form `Accept` prefers, rendered at most once per `cacheMs`.
   */
  respond(req: Req, accept: string | undefined): HttpResponse | Promise<HttpResponse> {
    if (this.guard !== undefined && !this.guard(req)) return FORBIDDEN
    if (accept !== this.lastAccept) {
      this.lastAccept = accept
      this.lastPrefersJson = prefersJson(accept)
    }
    const json = this.lastPrefersJson
    const now = this.controller.clock.now()
    const cached = json ? this.json : this.text
    if (cached !== undefined && now - cached.at < this.cacheMs) return cached.response
    const response = json ? this.renderJson() : this.renderText()
    const entry: Cached = { at: now, response }
    if (json) this.json = entry
    else this.text = entry
    // A failed render is not served again: the next scrape tries anew.
    if (response instanceof Promise) {
      response.catch(() => {
        if (this.text === entry) this.text = undefined
      })
    }
    return response
  }

  private renderJson(): HttpResponse {
    return respond(200, JSON_HEADERS, JSON.stringify(metricsJson(this.controller.stats())))
  }

  private renderText(): HttpResponse | Promise<HttpResponse> {
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

const FORBIDDEN = respond(403, JSON_HEADERS, JSON.stringify({ error: 'Forbidden' }))
