import { describe, expect, it } from 'vitest'
import { type CompiledRoutes, compileRoutes, matchRoute, type RouteRule } from '../src/route-table.js'

/**
 * The table's normalisation on its own. That it agrees with the real routers is proven against Express
 * and Koa by the route-matching conformance suite (packages/conformance/src/route-matching.ts).
 */

const RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/export', priority: -5 },
  { path: '/api/*', priority: 10 },
  { method: 'GET', path: '/orders/:id', priority: 3 },
  { method: 'POST', path: '/Upload', priority: 6 },
  { method: 'HEAD', path: '/status', priority: 1 },
  { method: 'GET', path: '/status', priority: 2 },
  { method: 'GET', path: '/', priority: 7 },
]

function priorityOf(routes: CompiledRoutes, method: string, url: string): number | undefined {
  return matchRoute(routes, method, url)?.priority
}

describe('route table', () => {
  const routes = compileRoutes(RULES)!
  const at = (method: string, url: string) => priorityOf(routes, method, url)

  it('makes one trailing slash optional for exact rules, as for :param rules', () => {
    expect(at('GET', '/api/export/')).toBe(-5)
    expect(at('GET', '/orders/5/')).toBe(3)
    expect(at('GET', '/')).toBe(7)
    expect(at('GET', '//')).toBe(7)
    // Two slashes are another path: the router sends it to the wildcard, and so does the table.
    expect(at('GET', '/api/export//')).toBe(10)
    expect(at('GET', '/orders/5//')).toBeUndefined()
  })

  it('matches paths case-insensitively, whichever side has the capitals', () => {
    expect(at('GET', '/API/Export')).toBe(-5)
    expect(at('GET', '/ORDERS/5')).toBe(3)
    expect(at('POST', '/upload')).toBe(6)
    expect(at('POST', '/UPLOAD/')).toBe(6)
    expect(at('DELETE', '/Api/x')).toBe(10)
  })

  it('folds ASCII letters only, as the routers do', () => {
    // U+212A KELVIN SIGN lowercases to "k", but a case-insensitive non-unicode RegExp does not fold it.
    const kelvin = compileRoutes([{ path: '/\u212Aey', priority: 1 }])!
    expect(priorityOf(kelvin, 'GET', '/key')).toBeUndefined()
  })

  it('covers HEAD with a GET rule, unless a HEAD rule matches', () => {
    expect(at('HEAD', '/api/export')).toBe(-5)
    expect(at('HEAD', '/orders/5')).toBe(3)
    expect(at('HEAD', '/status')).toBe(1)
    expect(at('GET', '/status')).toBe(2)
    // Not the other way round, and not for other methods.
    expect(at('POST', '/orders/5')).toBeUndefined()
    expect(at('HEAD', '/upload')).toBeUndefined()
  })

  it('takes the path of an absolute-form target', () => {
    expect(at('GET', 'http://x/api/export')).toBe(-5)
    expect(at('GET', 'HTTP://X/API/EXPORT/?a=1')).toBe(-5)
    expect(at('GET', 'http://user@x:8080/orders/5')).toBe(3)
    expect(at('GET', 'foo://x/api/export')).toBe(-5)
    expect(at('GET', 'http://x')).toBe(7)
    expect(at('GET', 'http://x?next=/api/export')).toBe(7)
    expect(at('GET', 'http://x//api/export')).toBeUndefined()
    expect(at('OPTIONS', '*')).toBeUndefined()
  })

  it('cuts the query and the fragment, like parseurl', () => {
    expect(at('GET', '/api/export?format=csv')).toBe(-5)
    expect(at('GET', '/api/export/?next=/orders/5')).toBe(-5)
    expect(at('GET', '/api/export#top')).toBe(-5)
    expect(at('GET', '/api/export?a#b')).toBe(-5)
    // A backslash is a path character, except where parseurl hands the target to the legacy parser.
    expect(at('GET', '/api\\export')).toBeUndefined()
    expect(at('GET', '/api\\export#x')).toBe(-5)
    expect(at('GET', 'http://x/api\\export')).toBe(-5)
  })

  it('matches the raw path: no percent-decoding, no dot segments resolved', () => {
    expect(at('GET', '/api/%65xport')).toBe(10)
    expect(at('GET', '/api/export%2F')).toBe(10)
    expect(at('GET', '/api/./export')).toBe(10)
    expect(at('GET', '/orders/../api/export')).toBeUndefined()
    expect(at('GET', '//api/export')).toBeUndefined()
    expect(at('GET', '/orders/%2F')).toBe(3)
  })

  it('needs at least one character below a wildcard, as path-to-regexp does', () => {
    expect(at('GET', '/api')).toBeUndefined()
    expect(at('GET', '/api/')).toBeUndefined()
    expect(at('GET', '/api//')).toBe(10)
    expect(at('GET', '/api/a/b/')).toBe(10)
  })

  it('reads rule paths as the router reads route paths', () => {
    const table = compileRoutes([
      { path: '/Reports/', priority: 1 },
      { path: '/files/*splat', priority: 2 },
      { path: '/Orders/:id/Items/', priority: 3 },
      { path: '/*', priority: 4 },
    ])!
    const atTable = (url: string) => priorityOf(table, 'GET', url)
    expect(atTable('/reports')).toBe(1)
    expect(atTable('/REPORTS/')).toBe(1)
    expect(atTable('/files/a/b')).toBe(2)
    expect(atTable('/files')).toBe(4)
    expect(atTable('/orders/5/items')).toBe(3)
    expect(atTable('/x')).toBe(4)
    expect(atTable('/')).toBeUndefined()
    // What the legacy parser leaves of these is no path a route can match, not even `/*`.
    expect(atTable('http://x%41/api')).toBeUndefined()
    expect(atTable('*')).toBeUndefined()
  })
})
