import { connect } from 'node:net'
import type { RouteRule } from '@backpressure/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StartedServer } from './harness.js'

/**
 * The route table against the framework's own router (Express, Koa): for request targets a client can
 * choose (case, trailing slashes, HEAD, absolute-form, percent-encoding, dot segments, fragments …),
 * the priority the controller admitted the request at must be the priority of the route that actually
 * ran — or the default when no route ran. A client must never pick its priority by spelling a path the
 * router treats as the same route, or as another one.
 */

/** One route of the app, in the framework's own path syntax, registered in this order. */
export interface RouterRoute {
  /** Sent back in the `x-route` response header (HEAD included) when this route runs. */
  readonly id: string
  /** `ALL` for every method (`app.all`, `router.all`). */
  readonly method: 'GET' | 'HEAD' | 'POST' | 'ALL'
  /** Express 5 and @koa/router share path-to-regexp 8's syntax: `/orders/:id`, `/api/*splat`. */
  readonly path: string
}

export interface RouteMatchingHarness {
  /** `express`, `koa`. */
  readonly name: string
  /**
   * Starts a server on 127.0.0.1, port 0: the adapter app-wide with `options`, then `routes` in the
   * framework's default router with its default options, in order. Each route answers 200 with
   * `x-route: <id>`; anything else is the framework's own answer.
   */
  start(options: Record<string, unknown>, routes: readonly RouterRoute[]): Promise<StartedServer>
}

interface Row {
  readonly route: RouterRoute
  readonly rule: RouteRule
}

const DEFAULT_PRIORITY = 0

/** Specific routes registered before the catch-all, as an app must for them to run at all. */
const ROWS: readonly Row[] = [
  {
    route: { id: 'export', method: 'GET', path: '/api/export' },
    rule: { method: 'GET', path: '/api/export', priority: -5 },
  },
  {
    route: { id: 'item', method: 'GET', path: '/orders/:id/items/*splat' },
    // The framework's own wildcard spelling works in the table too.
    rule: { method: 'GET', path: '/orders/:id/items/*splat', priority: 4 },
  },
  {
    route: { id: 'order', method: 'GET', path: '/orders/:id' },
    rule: { method: 'GET', path: '/orders/:id', priority: 3 },
  },
  {
    route: { id: 'upload', method: 'POST', path: '/Upload' },
    rule: { method: 'POST', path: '/Upload', priority: 6 },
  },
  { route: { id: 'root', method: 'GET', path: '/' }, rule: { method: 'GET', path: '/', priority: 7 } },
  {
    route: { id: 'status-head', method: 'HEAD', path: '/status' },
    rule: { method: 'HEAD', path: '/status', priority: 1 },
  },
  {
    route: { id: 'status-get', method: 'GET', path: '/status' },
    rule: { method: 'GET', path: '/status', priority: 2 },
  },
  { route: { id: 'api', method: 'ALL', path: '/api/*splat' }, rule: { path: '/api/*', priority: 10 } },
]

const PRIORITY_OF = new Map(ROWS.map((row) => [row.route.id, row.rule.priority ?? DEFAULT_PRIORITY]))

/**
 * Request line, and the route both routers run for it (`null`: none — a 404, or the framework's own
 * OPTIONS answer). The expected route pins today's router behaviour, so a router upgrade that changes
 * it fails here rather than silently disagreeing with the table.
 */
const VARIANTS: readonly (readonly [method: string, target: string, route: string | null])[] = [
  ['GET', '/api/export', 'export'],
  ['GET', '/api/export/', 'export'],
  ['GET', '/api/export//', 'api'],
  ['GET', '/API/Export', 'export'],
  ['GET', '/api/EXPORT/', 'export'],
  ['GET', '/api/export?format=csv', 'export'],
  ['GET', '/api/export/?next=/api', 'export'],
  ['GET', '/api/export#top', 'export'],
  ['GET', '/api/export?x#y', 'export'],
  // Routers match the raw path: percent-encoding is not decoded before matching.
  ['GET', '/api/%65xport', 'api'],
  ['GET', '/api/export%2F', 'api'],
  ['GET', '/api/export;v=1', 'api'],
  // Nor are dot segments resolved.
  ['GET', '/api/./export', 'api'],
  ['GET', '/api/../orders/5', 'api'],
  ['GET', '/orders/../api/export', null],
  ['GET', '//api/export', null],
  // A backslash is a path character, unless the target goes through the legacy URL parser (here for
  // its fragment), which turns it into a slash.
  ['GET', '/api\\export', null],
  ['GET', '/api\\export#x', 'export'],
  // Absolute-form targets: the path after the authority.
  ['GET', 'http://x/api/export', 'export'],
  ['GET', 'HTTP://X/API/EXPORT/', 'export'],
  ['GET', 'http://user@x:8080/api/export?x=1', 'export'],
  ['GET', 'http://x/api\\export', 'export'],
  ['GET', 'foo://x/api/export', 'export'],
  ['GET', 'http://x//api/export', null],
  ['GET', 'http://x%41/api/export', null],
  ['GET', 'http://x', 'root'],
  ['GET', 'http://x?a=/api/export', 'root'],
  ['GET', '/api', null],
  ['GET', '/api/', null],
  ['GET', '/api//', 'api'],
  ['GET', '/api/a/b/', 'api'],
  ['GET', '/orders/5', 'order'],
  ['GET', '/orders/5/', 'order'],
  ['GET', '/ORDERS/abc', 'order'],
  ['GET', '/orders/5//', null],
  ['GET', '/orders/', null],
  ['GET', '/orders', null],
  ['GET', '/orders/%2F', 'order'],
  ['GET', 'http://x/orders/5?y', 'order'],
  ['GET', '/orders/5/items/1', 'item'],
  ['GET', '/Orders/5/ITEMS/1/2/', 'item'],
  ['GET', '/orders/5/items/', null],
  ['GET', '/orders/5/items//', 'item'],
  ['GET', '/orders//items/1', null],
  ['GET', '/', 'root'],
  ['GET', '//', 'root'],
  ['GET', '/?', 'root'],
  ['GET', '/upload', null],
  ['GET', '/status', 'status-get'],
  // HEAD runs the GET route unless a HEAD route comes first.
  ['HEAD', '/api/export', 'export'],
  ['HEAD', '/API/export/', 'export'],
  ['HEAD', 'http://x/api/export', 'export'],
  ['HEAD', '/orders/5', 'order'],
  ['HEAD', '/api/other', 'api'],
  ['HEAD', '/status', 'status-head'],
  ['HEAD', '/STATUS/', 'status-head'],
  ['HEAD', '/upload', null],
  ['POST', '/api/export', 'api'],
  ['POST', '/api/export/', 'api'],
  ['POST', '/upload', 'upload'],
  ['POST', '/UPLOAD/', 'upload'],
  ['POST', 'http://x/Upload', 'upload'],
  ['POST', '/orders/5', null],
  ['DELETE', '/API/x', 'api'],
  ['OPTIONS', '/api/export', 'api'],
  ['OPTIONS', '/orders/5', null],
  ['OPTIONS', '*', null],
]

interface RawResponse {
  readonly status: number
  readonly route: string | undefined
}

/** Sends one request line as written (no client normalises it) and reads the status and `x-route`. */
function sendRaw(url: string, method: string, target: string): Promise<RawResponse> {
  const { port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const head = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')[0] ?? ''
      const [statusLine = '', ...headers] = head.split('\r\n')
      const route = headers.find((line) => line.toLowerCase().startsWith('x-route:'))
      resolve({ status: Number(statusLine.split(' ')[1]), route: route?.slice('x-route:'.length).trim() })
    })
    socket.end(
      `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      'latin1',
    )
  })
}

/**
 * Registers the route-matching table for one adapter whose idiom is the route table. Call it at the top
 * level of a test file.
 */
export function runRouteMatchingSuite(harness: RouteMatchingHarness): void {
  describe(`route table matches the router: ${harness.name}`, () => {
    let server: StartedServer
    const admitted: number[] = []

    beforeAll(async () => {
      server = await harness.start(
        { priority: DEFAULT_PRIORITY, routes: ROWS.map((row) => row.rule) },
        ROWS.map((row) => row.route),
      )
      server.controller.on('admit', (event) => admitted.push(event.priority))
    })
    afterAll(() => server.close())

    it.each(VARIANTS)('%s %s', async (method, target, expected) => {
      admitted.length = 0
      const response = await sendRaw(server.url, method, target)
      expect(response.route ?? null, `the route ${harness.name} ran (status ${response.status})`).toBe(
        expected,
      )
      const priority = response.route === undefined ? DEFAULT_PRIORITY : PRIORITY_OF.get(response.route)
      expect(admitted, 'priorities admitted').toEqual([priority])
    })
  })
}
