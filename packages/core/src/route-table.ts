import { parse } from 'node:url'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject } from './validate.js'

/**
 * The route table: how Express and Koa users give routes their priority or opt them out, matched on
 * method and path without allocating per request.
 *
 * It must match exactly where the framework's router does, or a client picks its own priority by how it
 * spells the path. So it follows what Express 5 (router 2, path-to-regexp 8) and @koa/router share by
 * default: the path is parseurl's pathname of the raw request target (the path of an absolute-form
 * target, no fragment), matched undecoded (`%65` is not `e`, `..` is not resolved), ASCII
 * case-insensitively, with one trailing slash optional; HEAD is served by a GET rule.
 */

/** A row of the route table: the way Express and Koa users give routes their priority. */
export interface RouteRule {
  /** HTTP method, or any method when omitted. A `GET` rule also covers `HEAD` (unless a `HEAD` rule does). */
  readonly method?: string
  /**
   * An exact path (`/api/orders`), a pattern with `:name` segments (`/api/orders/:id`, one non-empty
   * segment each), or either ending in `/*` (or Express's `/*splat`) for everything below it
   * (`/static/*`). Matched as the router matches: case-insensitive, a trailing slash optional.
   */
  readonly path: string
  /** Priority of matching requests; higher runs first. */
  readonly priority?: number
  /** `false` lets matching requests bypass admission entirely. */
  readonly backpressure?: false
}

const ROUTE_RULE_KEYS: readonly string[] = Object.keys({
  method: true,
  path: true,
  priority: true,
  backpressure: true,
} satisfies Record<keyof RouteRule, true>)

interface PatternRoute {
  readonly method: string
  /** Lowercased segments after the leading '/'; `undefined` stands for a `:param`. */
  readonly segments: readonly (string | undefined)[]
  /** True for a trailing `/*`: more segments may follow. */
  readonly open: boolean
  readonly rule: RouteRule
}

/**
 * Exact paths are one lookup per method (by method, then by lowercased path without its trailing
 * slash, so no key is built per request); patterns (usually few) are walked segment by segment.
 */
export interface CompiledRoutes {
  readonly exact: Map<string, Map<string, RouteRule>>
  readonly patterns: readonly PatternRoute[]
}

const ANY = '*'
const SLASH = 0x2f
/** What makes parseurl leave its fast path for the legacy parser (besides not starting with '/'). */
const LEGACY_PARSED = /[\t\n\f\r #\u00a0\ufeff]/
/** A final segment `*` or `*name` (path-to-regexp's wildcard): everything below. */
const WILDCARD = /\/\*[A-Za-z_$][\w$]*$|\/\*$/
const TRAILING_SLASHES = /\/+$/
const ASCII_UPPER = /[A-Z]+/g

export function checkPriority(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidOptionError(name, 'a finite number or a function', value)
  }
  return value
}

export function compileRoutes(rules: unknown): CompiledRoutes | undefined {
  if (rules === undefined) return undefined
  if (!Array.isArray(rules))
    throw new InvalidOptionError('routes', 'an array of { method?, path, priority?, backpressure? }', rules)
  const exact = new Map<string, Map<string, RouteRule>>()
  const patterns: PatternRoute[] = []
  rules.forEach((rule: unknown, i) => {
    assertObject(`routes[${i}]`, rule)
    assertKnownKeys(`routes[${i}]`, rule, ROUTE_RULE_KEYS)
    const { method, path, priority, backpressure } = rule as Partial<RouteRule>
    if (method !== undefined && (typeof method !== 'string' || method.length === 0)) {
      throw new InvalidOptionError(`routes[${i}].method`, 'an HTTP method such as "GET"', method)
    }
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw new InvalidOptionError(`routes[${i}].path`, "a path starting with '/'", path)
    }
    if (priority !== undefined) checkPriority(`routes[${i}].priority`, priority)
    if (backpressure !== undefined && backpressure !== false) {
      throw new InvalidOptionError(`routes[${i}].backpressure`, 'false or unset', backpressure)
    }
    const key = method === undefined ? ANY : method.toUpperCase()
    const frozen: RouteRule = Object.freeze({ ...(rule as unknown as RouteRule) })
    // Only ASCII letters fold, as in the router's case-insensitive (non-unicode) regular expressions:
    // requests are ASCII, and `'\u212A'.toLowerCase()` would turn a Kelvin sign into a `k`.
    const lower = path.replace(ASCII_UPPER, (letters) => letters.toLowerCase())
    const wildcard = WILDCARD.exec(lower)
    const open = wildcard !== null
    // Express ignores trailing slashes in a route's path; a closed rule then matches with or without one.
    const body = open ? lower.slice(0, wildcard.index) : lower.replace(TRAILING_SLASHES, '') || '/'
    if (!open && !body.includes('/:')) {
      const paths = exact.get(key) ?? new Map<string, RouteRule>()
      exact.set(key, paths.set(body, frozen))
      return
    }
    const segments = body === '' ? [] : body.slice(1).split('/')
    patterns.push({
      method: key,
      segments: segments.map((segment) => (segment.startsWith(':') ? undefined : segment)),
      open,
      rule: frozen,
    })
  })
  // The most specific first: more literal segments, then closed before open; ties keep their order.
  const literals = (p: PatternRoute) => p.segments.filter((segment) => segment !== undefined).length
  patterns.sort(
    (a, b) =>
      b.segments.length - a.segments.length || literals(b) - literals(a) || Number(a.open) - Number(b.open),
  )
  return { exact, patterns }
}

/** The rule for a request, given its method and raw request target (`req.url`, query and all). */
export function matchRoute(routes: CompiledRoutes, method: string, url: string): RouteRule | undefined {
  const raw = routePath(url)
  // No path, or not one a route can match (`*`, or what the legacy parser leaves of an odd authority).
  if (raw === undefined || raw.charCodeAt(0) !== SLASH) return undefined
  // The target is ASCII (Node refuses anything else), so this folds what the routers fold; V8 returns
  // the same string, unallocated, when there is nothing to lower.
  const path = raw.toLowerCase()
  // One trailing slash is optional, as path-to-regexp's `trailing` makes it (`/a//` is not `/a`).
  const key = path.length > 1 && path.charCodeAt(path.length - 1) === SLASH ? path.slice(0, -1) : path
  const head = method === 'HEAD'
  const exact =
    routes.exact.get(method)?.get(key) ??
    (head ? routes.exact.get('GET')?.get(key) : undefined) ??
    routes.exact.get(ANY)?.get(key)
  if (exact !== undefined) return exact
  for (const pattern of routes.patterns) {
    const covers = pattern.method === ANY || pattern.method === method || (head && pattern.method === 'GET')
    if (covers && matchSegments(pattern, path)) return pattern.rule
  }
  return undefined
}

/**
 * parseurl's pathname, which Express's router and Koa's `ctx.path` match on: up to the `?` for an
 * ordinary origin-form target; anything else (absolute-form, a fragment, whitespace) goes through the
 * legacy URL parser exactly as parseurl sends it — which takes the path after the authority, drops the
 * fragment and turns backslashes into slashes. Undefined when there is no path (the router answers 404).
 */
function routePath(url: string): string | undefined {
  if (url.charCodeAt(0) !== SLASH || LEGACY_PARSED.test(url)) return legacyPathname(url)
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/**
 * The legacy parser on purpose: it is the one parseurl calls, so odd targets get the same path the
 * router sees. WHATWG URL would not do: it resolves `..` and percent-encodes other characters, so its path is not the one the router matched.
 */
function legacyPathname(url: string): string | undefined {
  try {
    return parse(url).pathname ?? undefined
  } catch {
    // parseurl throws too: Express finds no route, Koa fails the request.
    return undefined
  }
}

function matchSegments(pattern: PatternRoute, path: string): boolean {
  let start = 1
  for (const expected of pattern.segments) {
    if (start > path.length) return false
    let end = path.indexOf('/', start)
    if (end === -1) end = path.length
    if (end === start) return false
    if (expected !== undefined && (end - start !== expected.length || !path.startsWith(expected, start)))
      return false
    start = end + 1
  }
  // Closed patterns must consume the whole path (one trailing slash is tolerated); open ones need at
  // least one more character below (`/api//` is below `/api/*`, `/api/` is not).
  return pattern.open ? start < path.length : start >= path.length
}
