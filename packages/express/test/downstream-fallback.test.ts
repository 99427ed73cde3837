import type { AddressInfo } from 'node:net'
import { ClientLimitError, RetryError } from '@backpressure/client'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { backpressure } from '../src/index.js'

// A route whose downstream call gave up, in an app that never installed `limiter.errorHandler`:
// Express's own final handler answers, from the error's status and headers — 503, never 500.
describe('a downstream that gave up, without limiter.errorHandler', () => {
  const closers: (() => void)[] = []
  afterEach(() => {
    for (const close of closers.splice(0)) close()
  })

  it.each([
    [
      'RetryError',
      () =>
        new RetryError({
          reason: 'max_attempts',
          attempts: 3,
          totalDelayMs: 10,
          lastStatus: 503,
          retryAfterMs: 2500,
          cause: undefined,
        }),
      '3',
    ],
    ['ClientLimitError', () => new ClientLimitError('queue_timeout', 'http://127.0.0.1:1', 4), '1'],
  ] as const)(
    '%s is answered 503 with Retry-After and the retried-below mark',
    async (_name, make, retryAfter) => {
      const app = express()
      app.use(backpressure({ eventLoopShedding: false }))
      app.get('/orders', () => {
        throw make()
      })
      const server = app.listen(0, '127.0.0.1')
      closers.push(() => server.close())
      await new Promise((resolve) => server.once('listening', resolve))
      const { port } = server.address() as AddressInfo
      const response = await fetch(`http://127.0.0.1:${port}/orders`)
      await response.text()
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe(retryAfter)
      expect(response.headers.get('backpressure-retried-below')).toBe('1')
    },
  )
})
