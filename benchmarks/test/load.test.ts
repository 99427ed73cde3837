import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runLoad } from '../src/load.js'

// A server whose answer depends only on the order requests arrive in: every outcome the generator
// distinguishes, eight times each, so its counts must match exactly.
const KINDS = ['ok', '503-retry-after', '503-bare', '429', 'hang', 'reset'] as const
let server: http.Server
let origin: string
let arrivals = 0

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const kind = KINDS[arrivals++ % KINDS.length]!
    req.resume()
    switch (kind) {
      case 'ok':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
        break
      case '503-retry-after':
        res.writeHead(503, { 'retry-after': '7' }).end()
        break
      case '503-bare':
        res.writeHead(503).end()
        break
      case '429':
        res.writeHead(429, { 'retry-after': '3' }).end()
        break
      case 'hang':
        break
      case 'reset':
        req.socket.destroy()
        break
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(() => {
  server.closeAllConnections()
  server.close()
})

describe('open-loop load generator', () => {
  it('accounts for every request by outcome', async () => {
    arrivals = 0
    const result = await runLoad({ origin, path: '/', rate: 480, durationMs: 100, deadlineMs: 800 })
    expect(result.sent).toBe(48)
    expect(arrivals).toBe(48)
    expect(result.okInTime + result.okLate).toBe(8)
    expect(result.status503WithRetryAfter).toBe(8)
    expect(result.status503NoRetryAfter).toBe(8)
    expect(result.status429).toBe(8)
    expect(result.timeouts).toBe(8)
    expect(result.socketErrors).toBe(8)
    expect(result.otherStatus).toBe(0)
    expect(result.unanswered).toBe(0)
    expect(result.retryAfter).toEqual({ '7': 8, '3': 8 })
    const perSecond = result.perSecond.reduce((sum, s) => sum + s.sent, 0)
    expect(perSecond).toBe(48)
  })

  it('keeps to its schedule whatever the server does: a server that never answers still gets every request', async () => {
    const silent = http.createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    let seen = 0
    silent.on('request', () => seen++)
    try {
      const result = await runLoad({
        origin: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
        path: '/',
        rate: 200,
        durationMs: 100,
        deadlineMs: 300,
      })
      expect(result.sent).toBe(20)
      expect(result.timeouts).toBe(20)
      expect(seen).toBe(20)
      expect(result.unanswered).toBe(0)
    } finally {
      silent.closeAllConnections()
      silent.close()
    }
  })
})
