import { InvalidOptionError } from './errors.js'
import { assertObject } from './validate.js'

/**
 * The route table: how Express and Koa users give routes their priority or opt them out, matched on
 * method and path without allocating per request.
 */

/** A row of the route table: the way Express and Koa users give routes their priority. */
export interface RouteRule {
  /** HTTP method, or any method when omitted. */
  readonly method?: string
  /**
   * An exact path (`/api/orders`), a pattern with `:name` segments (`/api/orders/:id`, one non-empty
   * segment each), or either ending in `/*` for everything below it (`/static/*`).
   */
  readonly path: string
  /** Priority of matching requests; higher runs first. */
  readonly priority?: number
  /** `false` lets matching requests bypass admission entirely. */
  readonly backpressure?: false
}

interface PatternRoute {
  readonly method: string
  /** Segments after the leading '/'; `undefined` stands for a `:param`. */
  readonly segments: readonly (string | undefined)[]
  /** True for a trailing `/*`: more segments may follow. */
  readonly open: boolean
  readonly rule: RouteRule
}

/** Exact paths are one map lookup; patterns (usually few) are walked segment by segment without allocating. */
export interface CompiledRoutes {
  readonly exact: Map<string, RouteRule>
  readonly patterns: readonly PatternRoute[]
}

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
  const exact = new Map<string, RouteRule>()
  const patterns: PatternRoute[] = []
  rules.forEach((rule: unknown, i) => {
    assertObject(`routes[${i}]`, rule)
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
    const key = method === undefined ? '*' : method.toUpperCase()
    const frozen: RouteRule = Object.freeze({ ...(rule as unknown as RouteRule) })
    const open = path.endsWith('/*')
    const body = open ? path.slice(0, -2) : path
    if (!open && !body.includes('/:')) {
      exact.set(`${key} ${path}`, frozen)
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

export function matchRoute(routes: CompiledRoutes, method: string, path: string): RouteRule | undefined {
  const exact = routes.exact.get(`${method} ${path}`) ?? routes.exact.get(`* ${path}`)
  if (exact !== undefined) return exact
  for (const pattern of routes.patterns) {
    if ((pattern.method === '*' || pattern.method === method) && matchSegments(pattern, path))
      return pattern.rule
  }
  return undefined
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
  // Closed patterns must consume the whole path (a trailing slash is tolerated); open ones need more below.
  return pattern.open ? start < path.length : start >= path.length
}
