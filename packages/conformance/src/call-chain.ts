import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConcurrencyLimit, createFetch, RetryError } from '@backpressure/client'
import { afterEach, describe, expect, it } from 'vitest'
import type { AdapterHarness, StartedServer } from './harness.js'

/**
 * The adapter in the middle of a call chain A → B → C, on real servers (docs/call-chains.md): B is the
 * adapter under test, its route calls C through `@backpressure/client`; A is a plain fetch or our
 * client. A `RetryError` or the client's own local rejection thrown by B's route is answered 503
 * `downstream_overloaded`, Retry-After no shorter than C's, marked `Backpressure-Retried-Below`, with no
 * code of the user's; our client above does not retry it again; and A's deadline travels down.
 */
export function runCallChainSuite(harness: AdapterHarness): void {
  describe(`call chain: ${harness.name} in the middle`, () => {
    const closers: (() => Promise<void>)[] = []
    afterEach(async () => {
      for (const close of closers.splice(0).reverse()) await close()
    })

    /** C: answers `answer(req)` after the request's `release` (if any) resolves; counts what it saw. */
    const downstream = async (
      answer: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
    ) => {
      const seen: IncomingMessage[] = []
      const server: Server = createServer((req, res) => {
        seen.push(req)
        void answer(req, res)
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      closers.push(
        () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections()
            server.close(() => resolve())
          }),
      )
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
    }

    /** B: the adapter with `options`, its `/chain` route calling C with `callC`, passing the request's signal. */
    const middle = async (
      options: Record<string, unknown>,
      callC: (signal: AbortSignal) => Promise<Response>,
    ): Promise<StartedServer & { runs: () => number }> => {
      let runs = 0
      const server = await harness.start(options, [
        {
          method: 'GET',
          path: '/chain',
          handler: async ({ signal }) => {
            runs++
            const response = await callC(signal)
            return { status: response.status, body: await response.text() }
          },
        },
      ])
      closers.push(() => server.close())
      return Object.assign(server, { runs: () => runs })
    }

    const overloaded = (seconds: number) => (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(503, { 'retry-after': String(seconds), 'content-type': 'application/json' })
      res.end('{"error":"Service Unavailable","reason":"queue_full","retryAfter":7}')
    }

    it('answers a RetryError thrown in a route 503 downstream_overloaded, Retry-After no shorter than the downstream’s, marked retried below', async () => {
      const c = await downstream(overloaded(7))
      // C's Retry-After (7 s) is past B's deadline: B gives up at once, after one attempt.
      const callC = createFetch({ timeoutMs: 2000, concurrencyLimit: new ConcurrencyLimit() })
      const b = await middle({}, (signal) => callC(`${c.url}/`, { signal }))
      const response = await fetch(`${b.url}/chain`)
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe('7')
      expect(response.headers.get('backpressure-retried-below')).toBe('1')
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(await response.json()).toEqual({
        error: 'Service Unavailable',
        reason: 'downstream_overloaded',
        retryAfter: 7,
      })
      expect(c.seen).toHaveLength(1)
      expect(b.controller.stats().rejections.downstream_overloaded).toBe(1)
      expect(b.controller.stats().backpressureActive).toBe(false)
      expect(b.controller.inFlight).toBe(0)
    })

    it('answers the client’s local rejection (ClientLimitError) the same way, without sending it', async () => {
      let releaseFirst: () => void = () => {}
      const firstHeld = new Promise<void>((resolve) => {
        releaseFirst = resolve
      })
      const c = await downstream(async (_req, res) => {
        await firstHeld
        res.end('ok')
      })
      // One slot to C and no local wait: a second call while the first is out fails locally.
      const limit = new ConcurrencyLimit({ initialLimit: 1, maxLimit: 1, maxQueueWaitMs: 0 })
      const callC = createFetch({ concurrencyLimit: limit })
      const b = await middle({ retryAfter: { min: 2, max: 4 } }, (signal) => callC(`${c.url}/`, { signal }))
      const first = fetch(`${b.url}/chain`)
      while (c.seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      const second = await fetch(`${b.url}/chain`)
      expect(second.status).toBe(503)
      expect(second.headers.get('backpressure-retried-below')).toBe('1')
      expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(2)
      expect(Number(second.headers.get('retry-after'))).toBeLessThanOrEqual(4)
      expect(((await second.json()) as { reason: string }).reason).toBe('downstream_overloaded')
      releaseFirst()
      expect((await first).status).toBe(200)
      expect(c.seen).toHaveLength(1)
      expect(limit.refused).toBe(1)
    })

    it('is not retried again by our client above: attempts at C stay at one per call', async () => {
      const c = await downstream(overloaded(7))
      const callC = createFetch({ timeoutMs: 2000, concurrencyLimit: new ConcurrencyLimit() })
      const b = await middle({}, (signal) => callC(`${c.url}/`, { signal }))
      // A would wait out 7 s within its deadline and retry 3 times, but the 503 says C was retried below.
      const a = createFetch({ budget: false, concurrencyLimit: new ConcurrencyLimit(), retryAfterJitter: 0 })
      const error = await a(`${b.url}/chain`).catch((e: unknown) => e)
      expect(RetryError.is(error) && error.reason).toBe('retried_below')
      expect(b.runs()).toBe(1)
      expect(c.seen).toHaveLength(1)
    })

    it('carries the caller’s deadline down: B reads it by default and sends what is left to C', async () => {
      const c = await downstream((_req, res) => {
        res.end('ok')
      })
      const callC = createFetch({ concurrencyLimit: new ConcurrencyLimit() })
      const b = await middle({}, (signal) => callC(`${c.url}/`, { signal }))
      const a = createFetch({ timeoutMs: 3000, concurrencyLimit: new ConcurrencyLimit() })
      expect((await a(`${b.url}/chain`)).status).toBe(200)
      const sent = Number(c.seen[0]?.headers['x-request-timeout-ms'])
      expect(sent).toBeGreaterThan(0)
      expect(sent).toBeLessThanOrEqual(3000)
    })

    it('never starts B’s work for a caller whose deadline passed while it queued', async () => {
      let releaseFirst: () => void = () => {}
      const firstHeld = new Promise<void>((resolve) => {
        releaseFirst = resolve
      })
      const c = await downstream(async (_req, res) => {
        await firstHeld
        res.end('ok')
      })
      const callC = createFetch({ concurrencyLimit: new ConcurrencyLimit() })
      const b = await middle({ maxConcurrency: 1 }, (signal) => callC(`${c.url}/`, { signal }))
      const first = fetch(`${b.url}/chain`)
      while (c.seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      // A caller that stays connected but declared 100 ms: B answers at its deadline, never runs it.
      const late = await fetch(`${b.url}/chain`, { headers: { 'x-request-timeout-ms': '100' } })
      expect(late.status).toBe(503)
      expect(((await late.json()) as { reason: string }).reason).toBe('deadline_exceeded')
      releaseFirst()
      expect((await first).status).toBe(200)
      expect(b.runs()).toBe(1)
      expect(c.seen).toHaveLength(1)
    })
  })
}
