import { describe, expect, it } from 'vitest'
import { sleep } from '../src/clock.js'
import type { Clock } from '../src/index.js'
import { flush, ManualClock } from './helpers.js'

describe('sleep', () => {
  it('re-arms when a timer fires before the wall clock reached the end of the wait', async () => {
    const clock = new ManualClock(0)
    // Timers that fire a little early, as real ones can against Date.now().
    const early: Clock = {
      now: () => clock.now(),
      setTimeout: (callback, ms) => clock.setTimeout(callback, ms * 0.999),
      clearTimeout: (handle) => clock.clearTimeout(handle),
    }
    let done = false
    const wait = sleep(1000, early, new AbortController().signal).then(() => {
      done = true
    })
    clock.advance(999)
    await flush()
    expect(done).toBe(false)
    expect(clock.pendingTimers).toBe(1)
    clock.advance(2)
    await flush()
    expect(done).toBe(true)
    await wait
  })

  it('rejects at once with the reason of an aborted signal, leaving no timer', async () => {
    const clock = new ManualClock(0)
    const controller = new AbortController()
    const wait = sleep(60_000, clock, controller.signal)
    controller.abort(new Error('cancelled'))
    await expect(wait).rejects.toThrow('cancelled')
    expect(clock.pendingTimers).toBe(0)
    await expect(sleep(10, clock, controller.signal)).rejects.toThrow('cancelled')
  })
})
