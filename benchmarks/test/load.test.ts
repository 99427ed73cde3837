import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runClosedLoop, runLoad } from '../src/load.js'

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

interface Served {
  readonly origin: string
  /** Sockets accepted. */
  sockets(): number
  close(): void
}

/** An HTTP server (or, given `raw`, a bare TCP one writing its own bytes) on a free loopback port. */
async function serve(handler: http.RequestListener): Promise<Served>
async function serve(handler: (socket: net.Socket) => void, raw: true): Promise<Served>
async function serve(handler: (a: never, b: never) => void, raw = false): Promise<Served> {
  let sockets = 0
  const server = raw
    ? net.createServer(handler as (socket: net.Socket) => void)
    : http.createServer(handler as http.RequestListener)
  server.on('connection', () => sockets++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets: () => sockets,
    close: () => {
      if (server instanceof http.Server) server.closeAllConnections()
      server.close()
    },
  }
}

describe('HTTP/1.1 framing', () => {
  it('reads chunked bodies (several chunks, trailers) and keeps the socket alive', async () => {
    let n = 0
    const server = await serve((req, res) => {
      req.resume()
      const shed = n++ % 2 === 1
      res.writeHead(shed ? 503 : 200, shed ? { 'retry-after': '4' } : {})
      res.write('a')
      res.write('b'.repeat(300))
      if (!shed) res.addTrailers({ 'x-trailer': 'yes' })
      setTimeout(() => res.end('c'), 1)
    })
    try {
      const result = await runLoad({ origin: server.origin, path: '/', rate: 400, durationMs: 100 })
      expect(result.sent).toBe(40)
      expect(result.okInTime).toBe(20)
      expect(result.status503WithRetryAfter).toBe(20)
      expect(result.retryAfter).toEqual({ '4': 20 })
      expect(result.socketErrors + result.timeouts + result.otherStatus + result.unanswered).toBe(0)
      // Reused: with one request per socket and no reuse there would be 40 (a loaded machine needs more than 20).
      expect(server.sockets()).toBeLessThan(40)
    } finally {
      server.close()
    }
  })

  it('reconnects when the server closes the connection after each response', async () => {
    let n = 0
    const server = await serve((req, res) => {
      req.resume()
      if (n++ % 2 === 0) res.writeHead(200, { connection: 'close' }).end('ok')
      else res.writeHead(503, { connection: 'close', 'retry-after': '2' }).end()
    })
    try {
      const result = await runLoad({ origin: server.origin, path: '/', rate: 400, durationMs: 100 })
      expect(result.sent).toBe(40)
      expect(result.okInTime).toBe(20)
      expect(result.status503WithRetryAfter).toBe(20)
      expect(result.socketErrors + result.timeouts + result.otherStatus + result.unanswered).toBe(0)
      expect(server.sockets()).toBe(40)
    } finally {
      server.close()
    }
  })

  it('parses responses split across reads, interim 1xx, and bodies delimited by the connection closing', async () => {
    const responses = [
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 503 Service Unavailable\r\nTRANSFER-ENCODING: chunked\r\nRetry-After: 9\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end',
      'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n',
    ]
    let n = 0
    const server = await serve((socket) => {
      socket.setNoDelay(true)
      socket.on('error', () => {})
      socket.on('data', async () => {
        const i = n++ % responses.length
        const bytes = Buffer.from(responses[i]!, 'latin1')
        // Three bytes at a time, each its own write: every boundary falls somewhere.
        for (let at = 0; at < bytes.length; at += 3) {
          socket.write(bytes.subarray(at, at + 3))
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
        if (i === 3) socket.end()
      })
    }, true)
    try {
      const result = await runLoad({ origin: server.origin, path: '/', rate: 250, durationMs: 100 })
      expect(result.sent).toBe(25)
      expect(result.okInTime).toBe(15)
      expect(result.status503WithRetryAfter).toBe(5)
      expect(result.retryAfter).toEqual({ '9': 5 })
      expect(result.otherStatus).toBe(5)
      expect(result.socketErrors + result.timeouts + result.unanswered).toBe(0)
    } finally {
      server.close()
    }
  })

  /** A server that answers `ok` `ms` after each request arrives. */
  const slow = (ms: number, onRequest = () => {}) =>
    serve((req, res) => {
      onRequest()
      req.resume()
      setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('ok'), ms)
    })

  it('never opens more than `connections` sockets: the rest wait for one', async () => {
    const server = await slow(20)
    try {
      const result = await runLoad({
        origin: server.origin,
        path: '/',
        rate: 400,
        durationMs: 100,
        connections: 2,
      })
      expect(result.sent).toBe(40)
      expect(result.okInTime).toBe(40)
      expect(server.sockets()).toBe(2)
      // Two sockets, 20 ms a request: the last answers come about 400 ms after the first left.
      expect(result.maxMs).toBeGreaterThan(250)
    } finally {
      server.close()
    }
  })

  it('preconnects its sockets before the first request and sends on them, opening none during the load', async () => {
    // A server slower than the rate: without preconnected sockets the generator would open one per
    // outstanding request while the load runs (100 here). With 300 connected first, it opens none.
    const events: string[] = []
    const server = await slow(50, () => {
      if (events.at(-1) !== 'request') events.push('request')
    })
    try {
      const result = await runLoad({
        origin: server.origin,
        path: '/',
        rate: 2000,
        durationMs: 100,
        preconnect: 300,
        onConnected: () => events.push('connected'),
      })
      expect(events).toEqual(['connected', 'request'])
      expect(result.sent).toBe(200)
      expect(result.okInTime).toBe(200)
      expect(server.sockets()).toBe(300)
    } finally {
      server.close()
    }
  })

  it('expires requests still waiting for a socket at their deadline, unsent', async () => {
    // One socket, a server that never answers: each deadline frees the socket for the next request
    // still within its own, and those whose deadline passed while they waited never leave.
    let arrivals = 0
    const server = await serve((req) => {
      arrivals++
      req.resume()
    })
    try {
      const result = await runLoad({
        origin: server.origin,
        path: '/',
        rate: 4000,
        durationMs: 50,
        deadlineMs: 50,
        connections: 1,
      })
      expect(result.sent).toBe(200)
      expect(result.timeouts).toBe(200)
      expect(result.socketErrors + result.unanswered).toBe(0)
      expect(arrivals).toBeGreaterThan(0)
      expect(arrivals).toBeLessThan(150)
    } finally {
      server.close()
    }
  })

  it('counts a refused connection as a socket error', async () => {
    const server = await serve(() => {})
    const origin = server.origin
    server.close()
    await new Promise((resolve) => setTimeout(resolve, 20))
    const result = await runLoad({ origin, path: '/', rate: 200, durationMs: 50 })
    expect(result.sent).toBe(10)
    expect(result.socketErrors).toBe(10)
    expect(result.timeouts + result.unanswered).toBe(0)
  })
})

describe('closed-loop load generator', () => {
  it('keeps exactly `connections` requests outstanding, one per socket, and counts only answers in its window', async () => {
    let now = 0
    let most = 0
    let arrivals = 0
    const server = await serve((req, res) => {
      arrivals++
      most = Math.max(most, ++now)
      req.resume()
      setTimeout(() => {
        now--
        res.writeHead(503, { 'retry-after': '1', 'content-length': '0' }).end()
      }, 5)
    })
    let atWindowEnd = -1
    try {
      const result = await runClosedLoop({
        origin: server.origin,
        path: '/',
        connections: 4,
        durationMs: 200,
        onWindowEnd: () => {
          atWindowEnd = arrivals
        },
      })
      expect(most).toBe(4)
      expect(server.sockets()).toBe(4)
      // Each answer sends the next request: every request but the 4 still out when the window closed was answered in it.
      expect(result.sent).toBe(arrivals)
      expect(result.status503WithRetryAfter).toBe(result.sent - 4)
      expect(result.retryAfter).toEqual({ '1': result.sent - 4 })
      expect(atWindowEnd).toBeGreaterThan(0)
      expect(result.timeouts + result.socketErrors + result.otherStatus + result.status2xx).toBe(0)
      expect(result.windowMs).toBeGreaterThanOrEqual(199)
    } finally {
      server.close()
    }
  })

  it('replaces a request unanswered at its deadline, on a fresh socket, and goes on', async () => {
    let arrivals = 0
    const server = await serve((req, res) => {
      req.resume()
      // The first request hangs; every later one is answered at once.
      if (arrivals++ > 0) res.writeHead(200, { 'content-length': '2' }).end('ok')
    })
    try {
      const result = await runClosedLoop({
        origin: server.origin,
        path: '/',
        connections: 1,
        durationMs: 200,
        deadlineMs: 50,
      })
      expect(result.timeouts).toBe(1)
      expect(result.status2xx).toBeGreaterThan(0)
      expect(result.status2xx).toBe(result.sent - 2)
      expect(server.sockets()).toBe(2)
    } finally {
      server.close()
    }
  })
})
