import { connect } from 'node:net'
import { PROMETHEUS_CONTENT_TYPE } from '@backpressure/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { AdapterHarness, RouteSpec, StartedServer } from './harness.js'

/** What came back on the wire: the status line's code, the headers, and every byte after them. */
interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly rest: string
}

/**
 * One request on its own connection (`Connection: close`), read to the end of the stream: a body sent
 * where none may be (HEAD) shows up as bytes after the headers, which a client library would hide.
 */
function rawRequest(url: string, method: string, path: string, accept?: string): Promise<RawResponse> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const chunks: Buffer[] = []
    socket.setTimeout(5000, () => socket.destroy(new Error(`${method} ${path}: no end of stream in 5 s`)))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1)
        return reject(new Error(`${method} ${path}: no complete head in ${JSON.stringify(text)}`))
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, rest: text.slice(end + 4) })
    })
    const acceptLine = accept === undefined ? '' : `Accept: ${accept}\r\n`
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\n${acceptLine}Connection: close\r\n\r\n`)
  })
}

const JSON_TYPE = /^application\/json/

/** Accept headers real clients send, and the form each must get. */
const NEGOTIATION: readonly [accept: string, form: 'text' | 'json'][] = [
  ['application/json', 'json'],
  ['text/plain, application/json;q=0', 'text'],
  ['application/jsonx', 'text'],
  ['application/json;q=0.9, text/plain;q=0.5', 'json'],
  ['application/json, text/plain, */*', 'text'],
  [
    'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    'text',
  ],
  ['application/openmetrics-text', 'text'],
]

/**
 * The `/metrics` route over a real socket, for one adapter: HEAD answered like GET without a body, and
 * the form chosen by real `Accept` negotiation. Call it at the top level of a test file.
 */
export function runMetricsConformance(harness: AdapterHarness): void {
  describe(`metrics conformance: ${harness.name}`, () => {
    const servers: StartedServer[] = []
    afterEach(async () => {
      await Promise.all(servers.splice(0).map((server) => server.close()))
    })
    const routes: RouteSpec[] = [{ method: 'GET', path: '/work', handler: async () => ({ body: 'work' }) }]
    const start = async (options: Record<string, unknown>) => {
      const server = await harness.start(options, routes)
      servers.push(server)
      return server
    }

    it('answers HEAD /metrics with 200, the content type and length, and no body', async () => {
      const server = await start({})
      const get = await rawRequest(server.url, 'GET', '/metrics')
      expect(get.status).toBe(200)
      expect(get.headers['content-type']).toBe(PROMETHEUS_CONTENT_TYPE)
      expect(get.rest).toContain('# TYPE backpressure_requests_total counter')
      expect(get.rest.length).toBe(Number(get.headers['content-length']))

      const head = await rawRequest(server.url, 'HEAD', '/metrics')
      expect(head.status).toBe(200)
      expect(head.headers['content-type']).toBe(PROMETHEUS_CONTENT_TYPE)
      expect(Number(head.headers['content-length'])).toBeGreaterThan(0)
      expect(head.rest).toBe('')

      const json = await rawRequest(server.url, 'HEAD', '/metrics', 'application/json')
      expect(json.status).toBe(200)
      expect(json.headers['content-type']).toMatch(JSON_TYPE)
      expect(json.rest).toBe('')
      // Neither is an admission attempt.
      expect(server.controller.stats().requests).toBe(0)
    })

    it('answers HEAD on a custom metrics path, and the guard refuses HEAD as it refuses GET', async () => {
      const custom = await start({ metrics: { path: '/internal/metrics' } })
      const head = await rawRequest(custom.url, 'HEAD', '/internal/metrics')
      expect(head.status).toBe(200)
      expect(head.headers['content-type']).toBe(PROMETHEUS_CONTENT_TYPE)
      expect(head.rest).toBe('')
      const guarded = await start({ metrics: { guard: () => false } })
      const refused = await rawRequest(guarded.url, 'HEAD', '/metrics')
      expect(refused.status).toBe(403)
      expect(refused.rest).toBe('')
    })

    it('keeps /health healthy while clients send deadlines already spent (x-request-timeout-ms: 0)', async () => {
      // Fifty requests at once on a machine busy with the rest of the suite can stall the loop past
      // its target: event-loop shedding would then answer some of them first, for its own reason.
      const server = await start({
        deadlineHeader: 'x-request-timeout-ms',
        maxConcurrency: 4,
        eventLoopShedding: false,
      })
      const spent = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const response = await fetch(`${server.url}/work`, { headers: { 'x-request-timeout-ms': '0' } })
          return { status: response.status, body: (await response.json()) as { reason: string } }
        }),
      )
      for (const { status, body } of spent) {
        expect(status).toBe(503)
        expect(body.reason).toBe('deadline_exceeded')
      }
      const health = await fetch(`${server.url}/health`)
      expect(health.status).toBe(200)
      expect(await health.json()).toMatchObject({
        status: 'healthy',
        backpressure_active: false,
        rejection_rate: 0,
        rejections: { deadline_exceeded: 50 },
      })
      const exposition = await (await fetch(`${server.url}/metrics`)).text()
      expect(exposition).toMatch(/^backpressure_active\{controller="default"\} 0$/m)
      expect(exposition).toMatch(/^backpressure_rejections_total\{[^}]*reason="deadline_exceeded"\} 50$/m)
      const served = await fetch(`${server.url}/work`, { headers: { 'x-request-timeout-ms': '5000' } })
      expect(served.status).toBe(200)
      await served.text()
    })

    it.each(NEGOTIATION)('negotiates Accept %j to the %s form', async (accept, form) => {
      const server = await start({})
      const response = await fetch(`${server.url}/metrics`, { headers: { accept } })
      expect(response.status).toBe(200)
      const body = await response.text()
      if (form === 'json') {
        expect(response.headers.get('content-type')).toMatch(JSON_TYPE)
        expect(JSON.parse(body)).toMatchObject({ controller: 'default', queue_depth: 0 })
      } else {
        expect(response.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE)
        expect(body).toContain('# TYPE backpressure_requests_total counter')
      }
    })
  })
}
