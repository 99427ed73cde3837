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
    if (prefersJson(accept)) {
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

/**
 * A form the route can send, as negotiation sees it. The Prometheus text stands for whatever exposition
 * is rendered (`metrics.render` may give another content type, known only once rendered).
 */
interface Offer {
  readonly type: string
  readonly subtype: string
  readonly params: Readonly<Record<string, string>>
}

const TEXT_OFFER: Offer = { type: 'text', subtype: 'plain', params: { version: '0.0.4', charset: 'utf-8' } }
const JSON_OFFER: Offer = { type: 'application', subtype: 'json', params: { charset: 'utf-8' } }

/** One media range of an `Accept` header. */
interface MediaRange {
  readonly type: string
  readonly subtype: string
  readonly params: Readonly<Record<string, string>>
  readonly q: number
}

/** What a header grants one form: the weight of the most specific range matching it. */
interface Grant {
  q: number
  /** 4 for the type, 2 for the subtype, 1 for parameters; -1 when no range matches. */
  specificity: number
}

/**
 * Whether `Accept` prefers the JSON form to the Prometheus text (RFC 9110 §12.5.1). Each form gets the
 * weight of the most specific range that matches it (of equally specific ones, the highest); q=0 refuses
 * it. JSON is sent only when it is preferred: a higher weight, or the same weight from a more specific
 * range (`application/json` beside the any-type wildcard). Anything else gets the text, the form Prometheus asks for: a tie
 * (`application/json, text/plain`: the order of ranges means nothing), no header, and a header that
 * accepts neither form (a scraper asking for `application/openmetrics-text` alone takes the text, as
 * Prometheus does when the OpenMetrics it prefers is not offered) rather than a 406.
 */
function prefersJson(accept: string | undefined): boolean {
  if (accept === undefined) return false
  const text: Grant = { q: 0, specificity: -1 }
  const json: Grant = { q: 0, specificity: -1 }
  for (const range of parseAccept(accept)) {
    grant(text, range, TEXT_OFFER)
    grant(json, range, JSON_OFFER)
  }
  if (json.q === 0) return false
  return json.q > text.q || (json.q === text.q && json.specificity > text.specificity)
}

function grant(to: Grant, range: MediaRange, offer: Offer): void {
  let specificity = 0
  if (range.type === offer.type) specificity += 4
  else if (range.type !== '*') return
  if (range.subtype === offer.subtype) specificity += 2
  else if (range.subtype !== '*') return
  let hasParams = false
  for (const key in range.params) {
    if (offer.params[key] !== range.params[key]) return
    hasParams = true
  }
  if (hasParams) specificity += 1
  if (specificity > to.specificity || (specificity === to.specificity && range.q > to.q)) {
    to.specificity = specificity
    to.q = range.q
  }
}

/** A weight: 0 to 1 with at most three decimals (RFC 9110 §12.4.2). */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * The media ranges of an `Accept` header: types, subtypes and parameter values lowercased (our forms'
 * values are all case-insensitive tokens), quoted values unquoted, commas and semicolons inside quotes
 * kept. A member without a `/` is no media range; one whose weight is not a valid q-value is dropped
 * rather than guessed at; what follows the weight is not a media-type parameter and is ignored.
 */
function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = []
  for (const member of splitOutsideQuotes(header, ',')) {
    const [mediaType = '', ...rawParams] = splitOutsideQuotes(member, ';')
    const name = mediaType.trim().toLowerCase()
    const slash = name.indexOf('/')
    if (slash <= 0 || slash === name.length - 1) continue
    const params: Record<string, string> = {}
    let q = 1
    let valid = true
    for (const raw of rawParams) {
      const eq = raw.indexOf('=')
      if (eq === -1) continue
      const key = raw.slice(0, eq).trim().toLowerCase()
      const value = unquote(raw.slice(eq + 1).trim()).toLowerCase()
      if (key === 'q') {
        valid = QVALUE.test(value)
        q = Number(value)
        break
      }
      // The first of a repeated parameter counts.
      if (key !== '' && !(key in params)) params[key] = value
    }
    if (!valid) continue
    ranges.push({ type: name.slice(0, slash), subtype: name.slice(slash + 1), params, q })
  }
  return ranges
}

/** Splits on `separator` except inside a quoted string (where a backslash escapes the next character). */
function splitOutsideQuotes(text: string, separator: ',' | ';'): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (quoted) {
      if (char === '\\') i++
      else if (char === '"') quoted = false
    } else if (char === '"') {
      quoted = true
    } else if (char === separator) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

function unquote(value: string): string {
  if (value.length < 2 || value[0] !== '"' || value[value.length - 1] !== '"') return value
  return value.slice(1, -1).replace(/\\(.)/g, '$1')
}
