import { describe, expect, it } from 'vitest'
import { seededRandom } from '../src/clock.js'
import { resolveRetryAfter } from '../src/retry-after.js'
import { captureWarnings } from './helpers.js'

const state = { queueDepth: 0, inFlight: 0, limit: 10, throughputPerSecond: 100 }

function draws(option: unknown, n = 2000, s = state) {
  const policy = resolveRetryAfter(option, seededRandom(11))
  return Array.from({ length: n }, () => policy('queue_full', s))
}

describe('Retry-After policies', () => {
  it('defaults to whole seconds spread over 5–15', () => {
    const values = draws(undefined)
    expect(values.every((v) => Number.isInteger(v) && v >= 5 && v <= 15)).toBe(true)
    expect(new Set(values).size).toBe(11)
  })

  it('a range draws every whole second in it', () => {
    expect(new Set(draws({ min: 1, max: 3 }))).toEqual(new Set([1, 2, 3]))
  })

  it('a number is a base with jitter above it', () => {
    expect(new Set(draws(10))).toEqual(new Set([10, 11, 12, 13, 14, 15]))
    expect(new Set(draws(1))).toEqual(new Set([1, 2]))
    // Jitter above the largest base would pass a day: it stops at a day.
    expect(Math.max(...draws(80_000, 500))).toBeLessThanOrEqual(86_400)
    expect(new Set(draws(86_400, 20))).toEqual(new Set([86_400]))
  })

  it('a function decides, rounded up to whole seconds and at least 1', () => {
    expect(draws(() => 2.2, 1)).toEqual([3])
    expect(draws(() => 0, 1)).toEqual([1])
    expect(
      draws(
        (c: { reason: string; queueDepth: number }) => (c.reason === 'queue_full' ? c.queueDepth + 4 : 1),
        1,
        { ...state, queueDepth: 3 },
      ),
    ).toEqual([7])
  })

  it("keeps a function's result a valid header: whole seconds from 1 to a day, never a throw", () => {
    expect(draws(() => 0.25, 1)).toEqual([1])
    expect(draws(() => -3, 1)).toEqual([1])
    expect(draws(() => Number.POSITIVE_INFINITY, 1)).toEqual([86_400])
    expect(draws(() => 1e30, 1)).toEqual([86_400])
    // NaN means nothing: the shortest wait, and one warning so the bug in the function is seen.
    const warnings = captureWarnings()
    try {
      expect(draws(() => Number.NaN, 3)).toEqual([1, 1, 1])
      expect(warnings.mock.calls).toEqual([
        [
          'retryAfter function returned NaN (for queue_full); sending Retry-After: 1',
          'BackpressureRetryAfterWarning',
        ],
      ])
    } finally {
      warnings.mockRestore()
    }
  })

  it('adaptive follows the time to drain the queue, jittered and bounded', () => {
    // 400 waiting + 100 running at 100/s: 5 s to drain, jittered over 5–10.
    const values = draws('adaptive', 2000, { ...state, queueDepth: 400, inFlight: 100 })
    expect(Math.min(...values)).toBe(5)
    expect(Math.max(...values)).toBe(10)
    const idle = draws('adaptive', 200, { ...state, queueDepth: 0, inFlight: 0 })
    expect(Math.min(...idle)).toBeGreaterThanOrEqual(1)
    expect(Math.max(...idle)).toBeLessThanOrEqual(2)
    const huge = draws('adaptive', 200, { ...state, queueDepth: 1e6 })
    expect(Math.max(...huge)).toBeLessThanOrEqual(60)
  })
})
