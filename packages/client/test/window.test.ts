import { describe, expect, it } from 'vitest'
import { AdaptiveThrottle, RetryBudget } from '../src/index.js'
import { SlidingWindow } from '../src/window.js'
import { ManualClock } from './helpers.js'

describe('SlidingWindow', () => {
  // A clock that reads fewer than ten buckets since its origin (a test clock at 0, a window as long as
  // the epoch) or a negative time used to clear slots −9…−1 on the first call: the totals turned NaN.
  it.each([0, 1, 999, 5_000, 8_999, 9_000, 9_999, -1, -25_000])(
    'counts from a clock that starts at %i ms',
    (start) => {
      const clock = new ManualClock(start)
      const window = new SlidingWindow(10_000, 2, clock)
      window.add(0)
      window.add(0)
      window.add(1, 3)
      expect(window.total(0)).toBe(2)
      expect(window.total(1)).toBe(3)
      clock.advance(5_000)
      window.add(0)
      expect(window.total(0)).toBe(3)
      clock.advance(5_000)
      // The first two left the window with their bucket; the third is still in it.
      expect(window.total(0)).toBe(1)
      expect(window.total(1)).toBe(0)
    },
  )

  it('never forgets with an infinite window', () => {
    const clock = new ManualClock()
    const window = new SlidingWindow(Number.POSITIVE_INFINITY, 1, clock)
    window.add(0)
    clock.advance(365 * 24 * 3_600_000)
    window.add(0)
    expect(window.total(0)).toBe(2)
  })

  it('keeps counting in the newest bucket when the clock steps back', () => {
    const clock = new ManualClock(50_000)
    const window = new SlidingWindow(10_000, 1, clock)
    window.add(0)
    clock.advance(-15_000)
    window.add(0)
    expect(window.total(0)).toBe(2)
    // Both land in the newest bucket, and leave the window with it.
    clock.advance(25_000)
    expect(window.total(0)).toBe(0)
  })
})

describe('a clock at 0', () => {
  it('leaves the retry budget at its ratio', () => {
    const budget = new RetryBudget({ ratio: 0.1, minRetriesPerSecond: 0, clock: new ManualClock(0) })
    for (let i = 0; i < 10; i++) budget.recordRequest()
    expect(budget.available).toBeCloseTo(1)
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
  })

  it('lets the throttle send everything to a server that accepts everything', () => {
    const throttle = new AdaptiveThrottle({ clock: new ManualClock(0), random: () => 0 })
    for (let i = 0; i < 100; i++) {
      expect(throttle.tryRequest()).toBe(true)
      throttle.recordAccept()
    }
    expect(throttle.rejectionProbability()).toBe(0)
  })
})
