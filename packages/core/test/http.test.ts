import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpBackpressure, type HttpBackpressureOptions, PASS } from '../src/index.js'

/** The HTTP layer on a bare node:http server: what every adapter builds on. */
let server: Server | undefined
afterEach(async () => {
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
  server = undefined
})

async function start(options: HttpBackpressureOptions<unknown>, hold: Promise<void>) {
  const http = new HttpBackpressure<unknown>(options)
  server = createServer((req, res) => {
    const write = (decision: Awaited<ReturnType<typeof http.decide>>) => {
      if (decision !== PASS) res.writeHead(decision.status, decision.headers).end(decision.body)
      else if (!res.destroyed) {
        if (req.url === '/hold') void hold.then(() => res.end('held'))
        else res.end('ok')
      }
    }
    const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
    if (decision instanceof Promise) void decision.then(write)
    else write(decision)
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { http, url: `http://127.0.0.1:${port}` }
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10))
  expect(condition()).toBe(true)
}

describe('route table', () => {
  it('matches exact paths, :param segments and /* prefixes, most specific first', async () => {
    let release!: () => void
    const hold = new Promise<void>((r) => (release = r))
    const { http, url } = await start(
      {
        maxConcurrency: 1,
        maxQueueDepth: 0,
        routes: [
          { path: '/static/*', backpressure: false },
          { method: 'GET', path: '/api/orders/:id', backpressure: false },
          { method: 'GET', path: '/api/orders/:id/items/*', backpressure: false },
          { method: 'GET', path: '/api/orders/special', priority: 3 },
        ],
      },
      hold,
    )
    const held = fetch(`${url}/hold`)
    await until(() => http.controller.inFlight === 1)
    const status = async (method: string, path: string) => (await fetch(`${url}${path}`, { method })).status
    // Opted out: they run although every slot is held.
    expect(await status('GET', '/static/app.js')).toBe(200)
    expect(await status('GET', '/static/css/site.css')).toBe(200)
    expect(await status('GET', '/api/orders/42')).toBe(200)
    expect(await status('GET', '/api/orders/42/items/7')).toBe(200)
    // Not opted out: the wrong method, an empty segment, a deeper path, an exact rule that wins, no rule.
    expect(await status('POST', '/api/orders/42')).toBe(503)
    expect(await status('GET', '/api/orders/')).toBe(503)
    expect(await status('GET', '/api/orders/42/other')).toBe(503)
    expect(await status('GET', '/api/orders/special')).toBe(503)
    expect(await status('GET', '/static')).toBe(503)
    expect(await status('GET', '/elsewhere')).toBe(503)
    // Every answer of the layer states its length: no chunked encoding, whatever the adapter.
    const rejected = await fetch(`${url}/elsewhere`)
    const body = await rejected.text()
    expect(rejected.headers.get('content-length')).toBe(String(Buffer.byteLength(body)))
    expect(rejected.headers.get('transfer-encoding')).toBeNull()
    release()
    expect(await (await held).text()).toBe('held')
  })
})

describe('deadline header', () => {
  it('never starts work whose stated budget ran out while it queued', async () => {
    let release!: () => void
    const hold = new Promise<void>((r) => (release = r))
    const { http, url } = await start(
      { maxConcurrency: 1, maxQueueDepth: 10, deadlineHeader: 'X-Request-Timeout-Ms' },
      hold,
    )
    const held = fetch(`${url}/hold`)
    await until(() => http.controller.inFlight === 1)
    const impatient = fetch(`${url}/work`, { headers: { 'x-request-timeout-ms': '50' } })
    const patient = fetch(`${url}/work`, { headers: { 'x-request-timeout-ms': '60000' } })
    const malformed = fetch(`${url}/work`, { headers: { 'x-request-timeout-ms': 'soon' } })
    await until(() => http.controller.queueDepth === 3)
    await new Promise((r) => setTimeout(r, 80))
    release()
    const [a, b, c] = await Promise.all([impatient, patient, malformed])
    expect(a.status).toBe(503)
    expect(await a.json()).toMatchObject({ reason: 'deadline_exceeded' })
    expect(b.status).toBe(200)
    expect(c.status).toBe(200)
    await held
    // Already spent on arrival: refused at once.
    const spent = await fetch(`${url}/work`, { headers: { 'x-request-timeout-ms': '0' } })
    expect(spent.status).toBe(503)
    expect(http.controller.stats().rejections.deadline_exceeded).toBe(2)
  })

  it('rejects a bad header option', () => {
    expect(() => new HttpBackpressure({ deadlineHeader: '' })).toThrow(
      /Expected `deadlineHeader` to be a header name or false/,
    )
  })
})

describe('layers and priority functions', () => {
  it('a second layer with another controller admits through its own as well; each permit comes back', async () => {
    const outer = new HttpBackpressure<unknown>({ maxConcurrency: 10 })
    const inner = new HttpBackpressure<unknown>({ maxConcurrency: 1, maxQueueDepth: 0 })
    let release!: () => void
    const hold = new Promise<void>((r) => (release = r))
    server = createServer(async (req, res) => {
      for (const layer of [outer, inner, outer]) {
        const decided = layer.decide(req, req.method ?? 'GET', req.url ?? '/', res)
        const decision = decided instanceof Promise ? await decided : decided
        if (decision !== PASS) {
          res.writeHead(decision.status, decision.headers).end(decision.body)
          return
        }
      }
      await hold
      res.end('ok')
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const first = fetch(url)
    await until(() => inner.controller.inFlight === 1)
    // The inner limit of one holds; the outer layer, seen twice, admitted once.
    expect(outer.controller.inFlight).toBe(1)
    const second = await fetch(url)
    expect(second.status).toBe(503)
    expect(((await second.json()) as { reason: string }).reason).toBe('queue_full')
    release()
    expect((await first).status).toBe(200)
    await until(() => outer.controller.inFlight === 0 && inner.controller.inFlight === 0)
    expect(outer.controller.stats().admitted).toBe(2)
    expect(inner.controller.stats().admitted).toBe(1)
  })

  it('a priority function answering NaN is an error the framework answers, never a queue level', async () => {
    const http = new HttpBackpressure<{ headers: Record<string, string | undefined> }>({
      priority: (req) => Number(req.headers['x-priority']),
    })
    const res = { on() {}, destroyed: false, req: { socket: { destroyed: false }, headers: {} } } as never
    expect(() => http.decide({ headers: {} }, 'GET', '/', res)).toThrow(
      'Expected `priority` to be a function returning a finite number, got `NaN` (number)',
    )
    expect(http.controller.stats().requests).toBe(0)
    expect(http.decide({ headers: { 'x-priority': '5' } }, 'GET', '/', res)).toBe(PASS)
    expect(http.controller.stats().admitted).toBe(1)
  })
})

describe('body timeout', () => {
  it('leaves alone a request that was answered and released before its body finished', async () => {
    const http = new HttpBackpressure<unknown>({ maxConcurrency: 2, bodyTimeoutMs: 100 })
    server = createServer((req, res) => {
      const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
      if (decision === PASS) res.end('ok')
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const socket = connect(port, '127.0.0.1')
    let received = ''
    let closed = false
    socket.on('data', (chunk) => (received += String(chunk)))
    socket.on('close', () => (closed = true))
    socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345')
    await until(() => received.includes('ok'))
    await until(() => http.controller.inFlight === 0)
    await new Promise((resolve) => setTimeout(resolve, 250))
    expect(http.controller.stats().bodyTimeouts).toBe(0)
    expect(closed).toBe(false)
    expect(received).not.toContain('408')
    socket.destroy()
  })
})
