import { describe, expect, it } from 'vitest'
import { retryDelay } from '../src/backoff.js'
import { fullJitterBackoff } from '../src/index.js'
import { seededRandom } from './helpers.js'

const policy = { baseDelayMs: 100, maxDelayMs: 1000, retryAfterJitter: 0.2 }

describe('fullJitterBackoff', () => {
  it('draws from [0, base · 2^(retry − 1)) and never above the cap', () => {
    expect(fullJitterBackoff(1, 100, 1000, () => 0)).toBe(0)
    expect(fullJitterBackoff(3, 100, 1000, () => 0.5)).toBe(200)
    expect(fullJitterBackoff(10, 100, 1000, () => 0.999_999)).toBeLessThan(1000)
  })

  it('spreads draws over the whole range (no synchronized waves)', () => {
    const random = seededRandom(7)
    const draws = Array.from({ length: 2000 }, () => fullJitterBackoff(4, 100, 10_000, random))
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...draws)).toBeLessThan(800)
    expect(Math.min(...draws)).toBeLessThan(40)
    expect(Math.max(...draws)).toBeGreaterThan(760)
    // Roughly uniform: each eighth of the range gets its share.
    const histogram = new Array<number>(8).fill(0)
    for (const draw of draws) histogram[Math.floor(draw / 100)]! += 1
    for (const count of histogram) expect(count).toBeGreaterThan(150)
  })
})

describe('retryDelay', () => {
  it('never waits less than Retry-After, and at most retryAfterJitter above it', () => {
    const random = seededRandom(1)
    for (let i = 0; i < 1000; i++) {
      const delay = retryDelay(1, 5000, policy, random)
      expect(delay).toBeGreaterThanOrEqual(5000)
      expect(delay).toBeLessThanOrEqual(6000)
    }
  })

  it('waits exactly Retry-After with no jitter configured', () => {
    expect(retryDelay(1, 3000, { ...policy, retryAfterJitter: 0 }, () => 0.9)).toBe(3000)
  })

  it('keeps the backoff when it is longer than a short Retry-After', () => {
    expect(retryDelay(5, 10, policy, () => 0.99)).toBeCloseTo(990)
  })

  it('falls back to backoff without a Retry-After or with Retry-After: 0', () => {
    expect(retryDelay(2, undefined, policy, () => 0.5)).toBe(100)
    expect(retryDelay(2, 0, policy, () => 0.5)).toBe(100)
  })
})
