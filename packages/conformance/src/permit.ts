import { connect, type Socket } from 'node:net'
import type { TokenBucketResult } from '@backpressure/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { AdapterHarness, RouteSpec, StartedServer } from './harness.js'
import { leaveOnceStarted, until } from './index.js'

/**
 * The permit as a hostile client sees it (issue: a permit nobody can steal): pipelining and hanging
 * up, leaving before admission, leaving mid-route, never-ending routes and slow bodies. Each test runs
 * a real server and real sockets, and checks the controller's books afterwards: in flight back to 0,
 * fresh requests served, close() resolving.
 */
export function runPermitSuite(harness: AdapterHarness): void {
  describe(`permit: ${harness.name}`, () => {
    const servers: StartedServer[] = []
    const sockets: Socket[] = []

    afterEach(async () => {
      for (const socket of sockets.splice(0)) socket.destroy()
      await Promise.all(servers.splice(0).map((server) => closeWithin(server, 5000)))
    })

    const start = async (
      options: Record<string, unknown>,
      routes: readonly RouteSpec[],
      setup?: { readonly asyncStepMs?: number },
    ) => {
      const server = await harness.start(options, routes, setup)
      servers.push(server)
      return server
    }

    const open = (server: StartedServer): Promise<Socket> => {
      const { hostname, port } = new URL(server.url)
      return new Promise((resolve, reject) => {
        const socket = connect(Number(port), hostname, () => resolve(socket))
        socket.on('error', reject)
        sockets.push(socket)
      })
    }

    /** Counts route bodies running at once, and the most ever. */
    const meter = () => {
      const m = { running: 0, most: 0, started: 0, sawAbort: 0 }
      return {
        m,
        async around<T>(work: () => Promise<T>): Promise<T> {
          m.started++
          m.running++
          m.most = Math.max(m.most, m.running)
          try {
            return await work()
          } finally {
            m.running--
          }
        },
      }
    }

    const work: RouteSpec = { method: 'GET', path: '/work', handler: async () => ({ body: 'work' }) }

    it('pipelined requests then a hang-up: the permits come back, fresh requests are served, close() resolves', async () => {
      const server = await start({ maxConcurrency: 10 }, [
        { method: 'GET', path: '/slow', handler: () => sleep(30).then(() => ({ body: 'slow' })) },
        work,
      ])
      const pipelined = 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(12)
      const clients = await Promise.all([open(server), open(server), open(server)])
      for (const socket of clients) socket.write(pipelined)
      await until(() => server.controller.inFlight > 0, 'admissions')
      for (const socket of clients) socket.destroy()
      await until(
        () => server.controller.inFlight === 0 && server.controller.queueDepth === 0,
        'every permit back',
        3000,
      )
      const fresh = await fetch(`${server.url}/work`)
      expect(fresh.status).toBe(200)
      expect(await fresh.text()).toBe('work')
    })

    it('a client that leaves while a middleware before admission awaits gets no permit', async () => {
      const server = await start({ maxConcurrency: 10 }, [work], { asyncStepMs: 300 })
      const clients = await Promise.all(Array.from({ length: 12 }, () => open(server)))
      for (const socket of clients) socket.write('GET /work HTTP/1.1\r\nHost: x\r\n\r\n')
      await sleep(10)
      for (const socket of clients) socket.destroy()
      await sleep(500)
      expect(server.controller.inFlight).toBe(0)
      const fresh = await fetch(`${server.url}/work`)
      expect(fresh.status).toBe(200)
      await fresh.text()
    })

    it('a client that leaves while the rate-limit store answers gets no permit', async () => {
      // The rate limit's store answers after 150 ms: the async step between arrival and admission.
      const takes = { asked: 0, answered: 0 }
      const slowStore = {
        take: (_key: string, cost: number): Promise<TokenBucketResult> => {
          takes.asked++
          return new Promise((resolve) =>
            setTimeout(() => {
              takes.answered++
              resolve({ allowed: true, remaining: 100 - cost, retryAfterMs: 0, resetMs: 0 })
            }, 150),
          )
        },
      }
      const server = await start(
        {
          maxConcurrency: 10,
          rateLimit: { key: () => 'everyone', capacity: 100, refillPerSecond: 100, store: slowStore },
        },
        [work],
      )
      const clients = await Promise.all(Array.from({ length: 12 }, () => open(server)))
      for (const socket of clients) socket.write('GET /work HTTP/1.1\r\nHost: x\r\n\r\n')
      await until(() => takes.asked > 0, 'the store to be asked')
      for (const socket of clients) socket.destroy()
      await sleep(50)
      await until(() => takes.answered === takes.asked, 'every answer of the store', 3000)
      await sleep(20)
      expect(server.controller.inFlight).toBe(0)
      expect(server.controller.stats().admitted).toBe(0)
      const fresh = await fetch(`${server.url}/work`)
      expect(fresh.status).toBe(200)
      await fresh.text()
    })

    it('holds the slot of a client that left until its route ends: never more route bodies than the limit', async () => {
      const { m, around } = meter()
      const server = await start({ maxConcurrency: 2 }, [
        // Ignores aborts: runs its 300 ms whatever the client does.
        {
          method: 'GET',
          path: '/stubborn',
          handler: () => around(() => sleep(300).then(() => ({ body: 'x' }))),
        },
        work,
      ])
      const clients = await Promise.all(Array.from({ length: 40 }, () => open(server)))
      for (const socket of clients) socket.write('GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n')
      await until(() => m.started >= 2, 'the first route bodies')
      await sleep(30)
      for (const socket of clients) socket.destroy()
      await until(
        () => server.controller.inFlight === 0 && server.controller.queueDepth === 0,
        'the slots back',
        5000,
      )
      expect(m.most).toBeLessThanOrEqual(2)
      expect(m.started).toBeGreaterThan(0)
      expect(server.controller.stats().abandoned).toBe(0)
    })

    it('frees the slot as soon as a route that honours the request signal stops', async () => {
      const { m, around } = meter()
      const server = await start({ maxConcurrency: 1 }, [
        {
          method: 'GET',
          path: '/cooperative',
          handler: ({ signal }) =>
            around(async () => {
              try {
                // Five seconds unless aborted: the slot can only come back in time through the signal.
                await sleep(5000, signal)
              } catch (error) {
                m.sawAbort++
                throw error
              }
              return { body: 'done' }
            }),
        },
        work,
      ])
      await leaveOnceStarted(server.url, '/cooperative', () => m.started === 1)
      await until(() => server.controller.inFlight === 0, 'the slot back', 3000)
      expect(m.sawAbort).toBe(1)
      const fresh = await fetch(`${server.url}/work`)
      expect(fresh.status).toBe(200)
      await fresh.text()
    })

    it('releases a route that never ends after its client left once the bound passes, counted as abandoned', async () => {
      let departed: AbortSignal | undefined
      const server = await start({ maxConcurrency: 1, abandonAfterMs: 300 }, [
        {
          method: 'GET',
          path: '/never',
          handler: ({ signal }) => {
            departed = signal
            return new Promise(() => {})
          },
        },
        work,
      ])
      const abandoned: number[] = []
      server.controller.on('abandon', (event) => abandoned.push(event.heldMs))
      await leaveOnceStarted(server.url, '/never', () => departed !== undefined)
      await until(() => departed?.aborted === true, 'the server to see the client leave')
      // Still held after the client left: the route has not ended.
      expect(server.controller.inFlight).toBe(1)
      await until(() => server.controller.inFlight === 0, 'the bound to pass', 3000)
      expect(server.controller.stats().abandoned).toBe(1)
      expect(abandoned).toHaveLength(1)
      expect(abandoned[0]).toBeGreaterThanOrEqual(300)
      const metrics = await (await fetch(`${server.url}/metrics`)).text()
      expect(metrics).toMatch(/^backpressure_abandoned_permits_total\{controller="default"\} 1$/m)
      const fresh = await fetch(`${server.url}/work`)
      expect(fresh.status).toBe(200)
      await fresh.text()
    })

    it('answers 408 to bodies that do not arrive in time, and serves honest clients after that bound', async () => {
      const server = await start({ maxConcurrency: 4, bodyTimeoutMs: 300 }, [
        {
          method: 'POST',
          path: '/upload',
          handler: async ({ readBody }) => ({ body: `got ${(await readBody()).length}` }),
        },
        work,
      ])
      const slow = await Promise.all(Array.from({ length: 4 }, () => open(server)))
      const answers = slow.map((socket) => {
        let text = ''
        socket.on('data', (chunk) => {
          text += String(chunk)
        })
        socket.on('error', () => {})
        return () => text
      })
      for (const socket of slow) {
        socket.write(
          'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n',
        )
      }
      await until(() => server.controller.inFlight === 4, 'the slow bodies holding every slot')
      const honest = await fetch(`${server.url}/work`, { signal: AbortSignal.timeout(5000) })
      expect(honest.status).toBe(200)
      await honest.text()
      await until(() => answers.every((answer) => answer().length > 0), '408s written', 3000)
      for (const answer of answers) expect(answer()).toMatch(/^HTTP\/1\.1 408 /)
      expect(server.controller.stats().bodyTimeouts).toBe(4)
      await until(() => server.controller.inFlight === 0, 'every slot back', 3000)
      // A body that does arrive is read as usual.
      const upload = await fetch(`${server.url}/upload`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'x'.repeat(1000),
      })
      expect(await upload.text()).toBe('got 1000')
    })

    it('one long-lived response (SSE) in flight does not wedge the default limit under 2× load', async () => {
      // A database of 2 connections × 20 ms (100 queries/s), asked for 200 requests/s for 3 s, while one
      // streamed response holds its slot throughout: the probes of the adaptive limit must keep serving.
      const pool = { busy: 0, waiters: [] as (() => void)[] }
      const query = async () => {
        if (pool.busy < 2) pool.busy++
        else await new Promise<void>((resolve) => pool.waiters.push(resolve))
        await sleep(20)
        const next = pool.waiters.shift()
        if (next === undefined) pool.busy--
        else next()
      }
      let endStream: () => void = () => {}
      const streamEnds = new Promise<void>((resolve) => {
        endStream = resolve
      })
      const server = await start({}, [
        { method: 'GET', path: '/db', handler: () => query().then(() => ({ body: 'ok' })) },
        {
          method: 'GET',
          path: '/events',
          handler: async () => ({
            stream: (async function* () {
              yield 'data: hello\n\n'
              await streamEnds
            })(),
          }),
        },
      ])
      const events = await open(server)
      events.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n')
      await until(() => server.controller.inFlight === 1, 'the stream to hold its slot')
      const served: number[] = []
      const began = Date.now()
      const requests: Promise<void>[] = []
      for (let i = 0; i < 800; i++) {
        requests.push(
          fetch(`${server.url}/db`, { signal: AbortSignal.timeout(1000) }).then(
            async (response) => {
              if (response.status === 200) served.push(Date.now() - began)
              await response.text()
            },
            () => undefined,
          ),
        )
        await sleep(5)
      }
      await Promise.all(requests)
      endStream()
      const elapsed = Date.now() - began
      // Not wedged: no gap of 1.5 s without an answer (a wedge lasts as long as the stream, from the
      // first probe at about 1 s to the end; 1.5 s leaves room for a noisy machine).
      let gap = 0
      for (let i = 1; i < served.length; i++)
        gap = Math.max(gap, (served[i] as number) - (served[i - 1] as number))
      gap = Math.max(gap, elapsed - (served[served.length - 1] ?? 0) - 1000)
      expect(gap).toBeLessThan(1500)
      expect(served.length).toBeGreaterThan(0.5 * 100 * 4)
    }, 45_000)

    it('exposes the request signal, aborted once the client leaves', async () => {
      let seen: AbortSignal | undefined
      const server = await start({ maxConcurrency: 4 }, [
        {
          method: 'GET',
          path: '/watch',
          handler: async ({ signal }) => {
            seen = signal
            await sleep(200)
            return { body: 'late' }
          },
        },
      ])
      await leaveOnceStarted(server.url, '/watch', () => seen !== undefined)
      await until(() => seen?.aborted === true, 'the signal to abort')
      expect(seen).toBeInstanceOf(AbortSignal)
      await until(() => server.controller.inFlight === 0, 'the slot back')
    })
  })
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason)
      },
      { once: true },
    )
  })
}

async function closeWithin(server: StartedServer, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`server.close() did not resolve within ${ms} ms`)), ms)
  })
  try {
    await Promise.race([server.close(), timeout])
  } finally {
    clearTimeout(timer)
  }
}
