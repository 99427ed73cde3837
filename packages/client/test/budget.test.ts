import { describe, expect, it } from 'vitest'
import { RetryBudget } from '../src/index.js'
import { ManualClock } from './helpers.js'

describe('RetryBudget', () => {
  it('allows retries up to ratio × requests', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ ratio: 0.1, minRetriesPerSecond: 0, clock })
    for (let i = 0; i < 9; i++) budget.recordRequest()
    expect(budget.tryAcquire()).toBe(false)
    budget.recordRequest()
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
    for (let i = 0; i < 20; i++) budget.recordRequest()
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
  })

  it('holds a client to about 1.1× its request rate however many requests fail', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ clock })
    let sent = 0
    // 100 requests per second for 60 s, every one of them failing and wanting 2 retries.
    for (let tick = 0; tick < 6000; tick++) {
      budget.recordRequest()
      sent++
      for (let retry = 0; retry < 2 && budget.tryAcquire(); retry++) sent++
      clock.advance(10)
    }
    expect(sent / 6000).toBeLessThanOrEqual(1.1)
    expect(sent / 6000).toBeGreaterThan(1.09)
  })

  it('treats the allowance as a floor, not an addition, so a busy client stays at 1.1×', () => {
    const clock = new ManualClock()
    const granted = (requests: number): number => {
      const budget = new RetryBudget({ clock })
      for (let i = 0; i < requests; i++) budget.recordRequest()
      let retries = 0
      while (budget.tryAcquire()) retries++
      return retries
    }
    // Defaults: ratio 0.1, one retry of allowance per 10 s window.
    expect(granted(200)).toBe(20)
    expect(granted(10)).toBe(1)
    expect(granted(19)).toBe(1)
    expect(granted(20)).toBe(2)
    // A quiet client still gets its one retry.
    expect(granted(0)).toBe(1)
    expect(granted(3)).toBe(1)
  })

  it('holds a fleet sharing one client to 1.1× once a window holds 10 requests', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ clock })
    let sent = 0
    // One request per second for 10 minutes (10 in each 10 s window), every one failing and wanting a retry.
    for (let tick = 0; tick < 600; tick++) {
      budget.recordRequest()
      sent++
      if (budget.tryAcquire()) sent++
      clock.advance(1000)
    }
    expect(sent / 600).toBeLessThanOrEqual(1.1)
    expect(sent / 600).toBeGreaterThan(1.09)
  })

  it('keeps a small allowance so a quiet client can still retry', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ minRetriesPerSecond: 0.5, windowMs: 10_000, clock })
    let granted = 0
    while (budget.tryAcquire()) granted++
    expect(granted).toBe(5)
  })

  it('refills as spent retries leave the window', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ ratio: 0.5, minRetriesPerSecond: 0, windowMs: 10_000, clock })
    budget.recordRequest()
    budget.recordRequest()
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
    clock.advance(5000)
    for (let i = 0; i < 2; i++) budget.recordRequest()
    // The retry spent 5 s ago still counts against the 2 new requests' earnings.
    expect(budget.available).toBeCloseTo(1)
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
    clock.advance(10_000)
    expect(budget.available).toBe(0)
    budget.recordRequest()
    budget.recordRequest()
    expect(budget.tryAcquire()).toBe(true)
  })

  it('forgets everything after a full window of silence', () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ minRetriesPerSecond: 1, windowMs: 2000, clock })
    expect(new RetryBudget({ clock }).available).toBe(1)
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(true)
    expect(budget.tryAcquire()).toBe(false)
    clock.advance(2000)
    expect(budget.tryAcquire()).toBe(true)
  })
})
