import { describe, expect, it } from 'vitest'
import { HttpBackpressure, ManualClock, RETRIED_BELOW_HEADER } from '../src/index.js'

/**
 * A route that throws our client's errors (a downstream call that gave up) is answered by core's HTTP
 * layer, for every adapter: 503 downstream_overloaded, Retry-After no shorter than the downstream's,
 * marked retried below. Core has no dependency on the client: it knows its errors by their
 * `Symbol.for` brand, which these stand-ins carry; the conformance call-chain suite throws the client's
 * real errors on real servers, per adapter.
 */
const kDownstream = Symbol.for('backpressure.downstream-overloaded')
const branded = (fields: Record<string, unknown>) =>
  Object.assign(new Error('gave up'), fields, { [kDownstream]: true })
describe('errorResponse: a downstream call that gave up', () => {
  const layer = () =>
    new HttpBackpressure<unknown>({
      clock: new ManualClock(0),
      retryAfter: { min: 2, max: 4 },
      random: () => 0.5,
    })

  // A RetryError carries the downstream's last Retry-After; a ClientLimitError or ThrottledError none.
  const retryError = (retryAfterMs: number | undefined) =>
    branded({ name: 'RetryError', reason: 'deadline', lastStatus: 503, retryAfterMs })

  it("answers a RetryError 503 downstream_overloaded with the downstream's Retry-After, rounded up", () => {
    const http = layer()
    const response = http.errorResponse(retryError(6500))
    expect(response?.status).toBe(503)
    expect(response?.headers['retry-after']).toBe('7')
    expect(response?.headers[RETRIED_BELOW_HEADER]).toBe('1')
    expect(response?.headers['cache-control']).toBe('no-store')
    expect(JSON.parse(response?.body ?? '')).toEqual({
      error: 'Service Unavailable',
      reason: 'downstream_overloaded',
      retryAfter: 7,
    })
  })

  it('draws a Retry-After as usual when the downstream gave none (local rejections, network errors)', () => {
    const http = layer()
    for (const error of [
      retryError(undefined),
      branded({ name: 'ClientLimitError', reason: 'queue_timeout' }),
      branded({ name: 'ThrottledError', probability: 0.5 }),
    ]) {
      const response = http.errorResponse(error)
      expect(response?.headers[RETRIED_BELOW_HEADER]).toBe('1')
      expect(Number(response?.headers['retry-after'])).toBeGreaterThanOrEqual(2)
      expect(Number(response?.headers['retry-after'])).toBeLessThanOrEqual(4)
    }
  })

  it("counts the rejection by reason, not as this server's overload, and leaves other errors alone", () => {
    const http = layer()
    http.errorResponse(retryError(1000))
    expect(http.errorResponse(new Error('boom'))).toBeUndefined()
    expect(http.errorResponse(Object.assign(new Error('x'), { retryAfterMs: 1000 }))).toBeUndefined()
    const stats = http.controller.stats()
    expect(stats.rejections.downstream_overloaded).toBe(1)
    expect(stats.backpressureActive).toBe(false)
    expect(stats.rejectionRate).toBe(0)
  })
})
