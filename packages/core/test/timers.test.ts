import { afterEach, describe, expect, it, vi } from 'vitest'
import { MAX_TIMER_MS, timerDelay } from '../src/bounds.js'
import { BackpressureController, ManualClock, Rejection, systemClock } from '../src/index.js'
import { admitNow, flush, track } from './helpers.js'

const DAY_MS = 86_400_000

describe('timer delays', () => {
  it('are kept to what Node accepts: finite, 0 to 2^31 − 1 ms', () => {
    expect(timerDelay(30 * DAY_MS)).toBe(MAX_TIMER_MS)
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS)
    expect(timerDelay(Number.NaN)).toBe(0)
    expect(timerDelay(-5)).toBe(0)
    expect(timerDelay(250)).toBe(250)
  })
})

describe('a queue wait longer than a Node timer can run', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('arms one timer with the system clock, not a 1 ms loop with TimeoutOverflowWarnings', async () => {
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on('warning', onWarning)
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout')
    const controller = new BackpressureController({
      clock: systemClock,
      maxConcurrency: 1,
      maxQueueWaitMs: 30 * DAY_MS,
      // Off: the test counts the queue's timers alone.
      eventLoopShedding: false,
    })
    const holder = admitNow(controller)
    try {
      const waiter = track(controller.admit(0))
      const armed = setTimeoutSpy.mock.calls.length
      // Real time on purpose: the bug was Node's own timer firing after 1 ms and the controller re-arming.
      await new Promise((resolve) => setTimeout(resolve, 200))
      const meanwhile = setTimeoutSpy.mock.calls.length - armed - 1 // minus the sleep above
      expect(armed).toBe(1)
      expect(meanwhile).toBe(0)
      expect(setTimeoutSpy.mock.calls[0]![1]).toBe(MAX_TIMER_MS)
      expect(warnings).toEqual([])
      expect(waiter.value).toBeUndefined()
    } finally {
      process.off('warning', onWarning)
      const closed = controller.close()
      holder.release()
      await closed
    }
  })

  it('fires early once per ~24.8 days and re-arms for the rest (manual clock, same clamp)', async () => {
    const clock = new ManualClock(0)
    const controller = new BackpressureController({
      clock,
      maxConcurrency: 1,
      maxQueueWaitMs: 30 * DAY_MS,
      eventLoopShedding: false,
    })
    const holder = admitNow(controller)
    const waiter = track(controller.admit(0))
    expect(clock.nextTimerAt()).toBe(MAX_TIMER_MS)
    clock.advance(MAX_TIMER_MS)
    await flush()
    // Still waiting, and exactly one timer, due when the 30 days are up.
    expect(waiter.value).toBeUndefined()
    expect(clock.pendingTimers).toBe(1)
    expect(clock.nextTimerAt()).toBe(30 * DAY_MS)
    clock.advance(30 * DAY_MS - MAX_TIMER_MS)
    await flush()
    expect(waiter.value).toBeInstanceOf(Rejection)
    expect((waiter.value as Rejection).reason).toBe('queue_timeout')
    expect(clock.pendingTimers).toBe(0)
    holder.release()
    await controller.close()
  })
})
