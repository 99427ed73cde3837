import { describe, expect, it } from 'vitest'
import { AdaptiveThrottle } from '../src/index.js'
import { ManualClock, seededRandom } from './helpers.js'

function fill(throttle: AdaptiveThrottle, requests: number, accepts: number): void {
  // Only attempts sent count as requests: fill with a throttle whose random source never rejects.
  for (let i = 0; i < requests; i++) throttle.tryRequest()
  for (let i = 0; i < accepts; i++) throttle.recordAccept()
}

const STEP_MS = 100

/**
 * A client sending one attempt every 100 ms (10 per second) for `ms`, to a server that accepts every
 * attempt it gets when `healthy` and rejects every one otherwise.
 */
function drive(throttle: AdaptiveThrottle, clock: ManualClock, ms: number, healthy: boolean) {
  const probabilities: number[] = []
  let rejected = 0
  for (let t = 0; t < ms; t += STEP_MS) {
    probabilities.push(throttle.rejectionProbability())
    if (!throttle.tryRequest()) rejected++
    else if (healthy) throttle.recordAccept()
    clock.advance(STEP_MS)
  }
  return { probabilities, rejected, attempts: probabilities.length }
}

/** How long after the start the probability stays at or under `level` for good, in milliseconds. */
function settledUnder(probabilities: number[], level: number): number {
  let last = -1
  for (let i = 0; i < probabilities.length; i++) if (probabilities[i]! > level) last = i
  return (last + 1) * STEP_MS
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
    const strict = new AdaptiveThrottle({
      k: 1.5,
      maxRejectionProbability: 1,
      clock: new ManualClock(),
      random: () => 0.999,
    })
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
      const draw = seededRandom(i)
      let filling = true
      const candidate = new AdaptiveThrottle({ clock, random: () => (filling ? 0.999 : draw()) })
      fill(candidate, 1000, 300)
      filling = false
      if (!candidate.tryRequest()) rejected++
    }
    expect(expected).toBeCloseTo(400 / 1001)
    expect(rejected / trials).toBeGreaterThan(expected - 0.04)
    expect(rejected / trials).toBeLessThan(expected + 0.04)
  })

  it('never rejects with more than maxRejectionProbability', () => {
    const capped = (options: { maxRejectionProbability?: number }) => {
      const throttle = new AdaptiveThrottle({ ...options, clock: new ManualClock(), random: () => 0.999 })
      fill(throttle, 1000, 0)
      return throttle.rejectionProbability()
    }
    expect(capped({})).toBe(0.8)
    expect(capped({ maxRejectionProbability: 0.5 })).toBe(0.5)
    expect(capped({ maxRejectionProbability: 1 })).toBeCloseTo(1000 / 1001)
    expect(capped({ maxRejectionProbability: 0 })).toBe(0)
  })

  it('does not count locally rejected attempts as requests: they say nothing about the server', () => {
    const throttle = new AdaptiveThrottle({
      minRequests: 0,
      maxRejectionProbability: 1,
      clock: new ManualClock(),
      random: () => 0,
    })
    expect(throttle.tryRequest()).toBe(true)
    const before = throttle.rejectionProbability()
    expect(before).toBeCloseTo(1 / 2)
    for (let i = 0; i < 10; i++) expect(throttle.tryRequest()).toBe(false)
    expect(throttle.rejectionProbability()).toBe(before)
  })

  // A client at 10 requests per second, healthy for 5 minutes, then a 2-minute outage (every attempt
  // sent is rejected), then a healthy server again. Before, the probability climbed to 0.999 during the
  // outage and took over 8 minutes to fall under 5 %.
  it('forgets a 2-minute outage within 15 s of the server accepting again, rejecting at most 80 % during it', () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ clock, random: seededRandom(7) })
    drive(throttle, clock, 5 * 60_000, true)
    const outage = drive(throttle, clock, 2 * 60_000, false)
    expect(Math.max(...outage.probabilities)).toBe(0.8)
    expect(outage.rejected / outage.attempts).toBeLessThanOrEqual(0.8)
    // Once the window is full of rejections: the cap, and no more.
    expect(outage.probabilities.slice(-600).every((probability) => probability === 0.8)).toBe(true)

    const recovery = drive(throttle, clock, 2 * 60_000, true)
    expect(settledUnder(recovery.probabilities, 0.05)).toBeLessThanOrEqual(15_000)
    expect(settledUnder(recovery.probabilities, 0)).toBeLessThanOrEqual(20_000)
  })

  it('forgets it within about half a window with the SRE book’s two minutes too', () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ windowMs: 120_000, clock, random: seededRandom(7) })
    drive(throttle, clock, 5 * 60_000, true)
    const outage = drive(throttle, clock, 2 * 60_000, false)
    expect(outage.rejected / outage.attempts).toBeLessThanOrEqual(0.8)
    const recovery = drive(throttle, clock, 5 * 60_000, true)
    expect(settledUnder(recovery.probabilities, 0.05)).toBeLessThanOrEqual(75_000)
  })

  it('waits for minRequests before rejecting anything', () => {
    const throttle = new AdaptiveThrottle({
      minRequests: 5,
      maxRejectionProbability: 1,
      clock: new ManualClock(),
      random: () => 0,
    })
    for (let i = 0; i < 5; i++) expect(throttle.tryRequest()).toBe(true)
    expect(throttle.rejectionProbability()).toBeCloseTo(5 / 6)
    expect(throttle.tryRequest()).toBe(false)
  })

  it('forgets old requests as the window slides', () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ windowMs: 60_000, clock, random: () => 0.999 })
    fill(throttle, 100, 0)
    expect(throttle.rejectionProbability()).toBe(0.8)
    clock.advance(60_000)
    expect(throttle.rejectionProbability()).toBe(0)
  })
})
