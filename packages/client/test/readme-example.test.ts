import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { backpressure } from '@backpressure/express'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { type ClientOptions, createFetch, RetryError, type RetryEvent } from '../src/index.js'
import { ManualClock, seededRandom } from './helpers.js'

// The client example both READMEs lead with must retry against a Backpressure server left at its
// defaults, whose 503s carry a Retry-After of 5–15 s: a deadline shorter than that makes every 503 end
// in a RetryError `deadline` after a single attempt. The server is real; the client's waits run on a
// manual clock, moved on only while the client waits, so the test takes no real seconds.

const READMES = [
  { name: 'README.md', url: '../../../README.md' },
  { name: 'packages/client/README.md', url: '../README.md' },
]

/** The options of the first `createFetch({ … })` in a README, evaluated as the object literal they are. */
function exampleOptions(readme: string): ClientOptions {
  const text = readFileSync(new URL(readme, import.meta.url), 'utf8')
  const literal = /createFetch\((\{[^)]*\})\)/.exec(text)?.[1]
  if (literal === undefined) throw new Error(`${readme} has no createFetch({ … }) example`)
  return new Function(`return (${literal})`)() as ClientOptions
}

let server: Server | undefined
let free: (() => Promise<void>) | undefined

afterEach(async () => {
  // A failed test leaves the slot held: answer that request before closing, so nothing rejects later.
  await free?.()
  free = undefined
  server?.closeAllConnections()
  server?.close()
  server = undefined
})

/** An Express server with the middleware at its defaults but for one slot and no queue, held busy. */
async function fullServer() {
  const middleware = backpressure({ maxConcurrency: 1, maxQueueDepth: 0 })
  let release = (): void => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  let arrived = (): void => {}
  const held = new Promise<void>((resolve) => {
    arrived = resolve
  })
  const items: number[] = []
  const app = express()
  app.use(middleware)
  app.get('/hold', async (_req, res) => {
    arrived()
    await released
    res.send('done')
  })
  app.get('/items/42', (_req, res) => {
    items.push(items.length)
    res.json({ id: 42 })
  })
  server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const holding = fetch(`${base}/hold`).then((response) => response.text())
  await held
  /** Frees the slot and resolves once the server has let go of it. */
  free = async (): Promise<void> => {
    release()
    await holding
    while (middleware.controller.stats().inFlight > 0) await new Promise((resolve) => setImmediate(resolve))
  }
  return { base, free, items }
}

describe('the README client example', () => {
  for (const readme of READMES) {
    it(`retries a default server's 503 with the options in ${readme.name}`, async () => {
      const { base, free, items } = await fullServer()
      const clock = new ManualClock()
      const retries: RetryEvent[] = []
      const client = createFetch({
        ...exampleOptions(readme.url),
        clock,
        random: seededRandom(1),
        onRetry: (event) => {
          retries.push(event)
          // Time passes for the client only while it waits; the slot frees up meanwhile.
          void free().then(() => clock.advance(event.delayMs))
        },
      })
      const response = await client(`${base}/items/42`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ id: 42 })
      expect(retries).toHaveLength(1)
      expect(retries[0]!.status).toBe(503)
      expect(retries[0]!.retryAfterMs).toBeGreaterThanOrEqual(5000)
      expect(retries[0]!.retryAfterMs).toBeLessThanOrEqual(15_000)
      expect(items).toHaveLength(1)
    })
  }

  it('gives up at once, with what the server asked, when its Retry-After is longer than the time left', async () => {
    const { base, items } = await fullServer()
    const clock = new ManualClock()
    const client = createFetch({ timeoutMs: 5_000, clock, random: seededRandom(1) })
    const error = await client(`${base}/items/42`).catch((caught: unknown) => caught)
    expect(RetryError.is(error)).toBe(true)
    const { reason, attempts, lastStatus, retryAfterMs, totalDelayMs } = error as RetryError
    expect({ reason, attempts, lastStatus, totalDelayMs }).toEqual({
      reason: 'deadline',
      attempts: 1,
      lastStatus: 503,
      totalDelayMs: 0,
    })
    expect(retryAfterMs).toBeGreaterThanOrEqual(5000)
    expect(items).toHaveLength(0)
  })
})
