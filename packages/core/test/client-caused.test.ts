import { describe, expect, it } from 'vitest'
import { CLIENT_CAUSED_REASONS, HttpBackpressure, ManualClock, type Rejection } from '../src/index.js'
import { admitNow, flush, makeController, track } from './helpers.js'

/**
 * Rejections a client causes itself (a deadline it declared spent, its own rate limit, leaving while
 * queued) are counted by reason, but are not overload: they neither make backpressure active (health
 * `degraded`) nor count in `rejectionRate`.
 */
describe('client-caused rejections are not overload', () => {
  it('are exactly aborted, rate_limited, deadline_exceeded and downstream_overloaded', () => {
    expect([...CLIENT_CAUSED_REASONS].sort()).toEqual([
      'aborted',
      'deadline_exceeded',
      'downstream_overloaded',
      'rate_limited',
    ])
  })

  it('a deadline spent on arrival (x-request-timeout-ms: 0) leaves backpressure inactive and health healthy', () => {
    const clock = new ManualClock(1000)
    const http = new HttpBackpressure<unknown>({ clock, maxConcurrency: 4 })
    for (let i = 0; i < 50; i++) {
      const result = http.controller.admit(0, undefined, clock.now())
      expect((result as Rejection).reason).toBe('deadline_exceeded')
    }
    const stats = http.controller.stats()
    expect(stats.rejections.deadline_exceeded).toBe(50)
    expect(stats.backpressureActive).toBe(false)
    expect(stats.activeSeconds).toBe(0)
    expect(stats.rejectionRate).toBe(0)
    expect(JSON.parse(http.health().body)).toMatchObject({ status: 'healthy', rejection_rate: 0 })
  })

  it('a deadline that passes while queued is the client’s too; overload shows in the queue’s own reasons', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueDepth: 10, codel: false })
    const holder = admitNow(controller)
    const waiting = track(controller.admit(0, undefined, clock.now() + 10))
    clock.advance(20)
    holder.release()
    await flush()
    expect((waiting.value as Rejection).reason).toBe('deadline_exceeded')
    expect(controller.stats().backpressureActive).toBe(false)
    // A full queue is overload.
    admitNow(controller)
    for (let i = 0; i < 10; i++) track(controller.admit(0))
    expect((controller.admit(0) as Rejection).reason).toBe('queue_full')
    expect(controller.stats().backpressureActive).toBe(true)
  })

  it('rejectionRate counts overload rejections among the requests the server could have served', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 2, maxQueueDepth: 0 })
    const held = [admitNow(controller), admitNow(controller)]
    controller.admit(0) // queue_full: overload
    for (let i = 0; i < 3; i++) controller.admit(0, undefined, clock.now()) // deadline_exceeded
    controller.rejectWith('rate_limited', 0, 1)
    const stats = controller.stats()
    expect(stats).toMatchObject({ requests: 7, rejected: 5 })
    // 1 overload rejection among 7 - 4 requests.
    expect(stats.rejectionRate).toBeCloseTo(1 / 3)
    for (const permit of held) permit.release()
    // Only client-caused rejections: nothing to divide, no overload.
    const fresh = makeController().controller
    fresh.rejectWith('aborted')
    expect(fresh.stats().rejectionRate).toBe(0)
  })
})
