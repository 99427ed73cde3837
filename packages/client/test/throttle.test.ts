import { describe, expect, it } from 'vitest'
import { AdaptiveThrottle } from '../src/index.js'
import { ManualClock, seededRandom } from './helpers.js'

function fill(throttle: AdaptiveThrottle, requests: number, accepts: number): void {
  // Every attempt counts as a request whether it is admitted or not, so the counts do not depend on draws.
  for (let i = 0; i < requests; i++) throttle.tryRequest()
  for (let i = 0; i < accepts; i++) throttle.recordAccept()
}

describe('AdaptiveThrottle', () => {
  it('never rejects while the server accepts at least 1/k of requests', () => {
    const throttle = new AdaptiveThrottle({ clock: new ManualClock(), random: () => 0.999 })
    fill(throttle, 100, 50)
    expect(throttle.rejectionProbability()).toBe(0)
  })

  it('computes max(0, (requests − k · accepts) / (requests + 1))', () => {
    const throttle = new AdaptiveThrottle({ clock: new ManualClock(), random: () => 0.999 })
    fill(throttle, 100, 10)
    expect(throttle.rejectionProbability()).toBeCloseTo((100 - 2 * 10) / 101)
    const strict = new AdaptiveThrottle({ k: 1.5, clock: new ManualClock(), random: () => 0.999 })
    fill(strict, 100, 10)
    expect(strict.rejectionProbability()).toBeCloseTo((100 - 15) / 101)
  })

  it('rejects with that probability', () => {
    const clock = new ManualClock()
    // The same counts (1000 requests, 300 accepts) with a different seed per trial, one decision each.
    const probe = new AdaptiveThrottle({ clock, random: () => 0.999 })
    fill(probe, 1000, 300)
    const expected = probe.rejectionProbability()
    let rejected = 0
    const trials = 1000
    for (let i = 0; i < trials; i++) {
      const candidate = new AdaptiveThrottle({ clock, random: seededRandom(i) })
      fill(candidate, 1000, 300)
      if (!candidate.tryRequest()) rejected++
    }
    expect(expected).toBeCloseTo(400 / 1001)
    expect(rejected / trials).toBeGreaterThan(expected - 0.04)
    expect(rejected / trials).toBeLessThan(expected + 0.04)
  })

  it('counts locally rejected attempts as requests, as the SRE book does', () => {
    const throttle = new AdaptiveThrottle({ minRequests: 0, clock: new ManualClock(), random: () => 0 })
    expect(throttle.tryRequest()).toBe(true)
    const before = throttle.rejectionProbability()
    expect(throttle.tryRequest()).toBe(false)
    expect(throttle.rejectionProbability()).toBeGreaterThan(before)
  })

  it('waits for minRequests before rejecting anything', () => {
    const throttle = new AdaptiveThrottle({ minRequests: 5, clock: new ManualClock(), random: () => 0 })
    for (let i = 0; i < 5; i++) expect(throttle.tryRequest()).toBe(true)
    expect(throttle.rejectionProbability()).toBeCloseTo(5 / 6)
    expect(throttle.tryRequest()).toBe(false)
  })

  it('forgets old requests as the window slides', () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ windowMs: 60_000, clock, random: () => 0.999 })
    fill(throttle, 100, 0)
    expect(throttle.rejectionProbability()).toBeGreaterThan(0.9)
    clock.advance(60_000)
    expect(throttle.rejectionProbability()).toBe(0)
  })
})
