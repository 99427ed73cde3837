import { describe, expect, it } from 'vitest'
import { settleSeconds } from '../src/macro.js'

/** A limit series sampled every 100 ms, as the server child reports it: [ms, limit, in flight, queue]. */
function series(limitAt: (ms: number) => number, untilMs: number): [number, number, number, number][] {
  const out: [number, number, number, number][] = []
  for (let ms = 0; ms < untilMs; ms += 100) out.push([ms, limitAt(ms), 0, 0])
  return out
}

describe('limit settling time', () => {
  it('is the time from the step until the limit reached its new level, ignoring a probe dip', () => {
    // 9 until the step at 10 s, moving down over 0.6 s to 4, with one-sample probe dips to 2 later.
    const s = series((ms) => {
      if (ms < 10_000) return 9
      if (ms < 10_600) return 9 - ((ms - 10_000) / 600) * 5
      return ms % 3000 === 0 ? 2 : 4
    }, 20_000)
    const settled = settleSeconds(s, 10_000, 20_000)
    expect(settled).toBeGreaterThanOrEqual(0.3)
    expect(settled).toBeLessThanOrEqual(0.6)
  })

  it('is null when the limit never stays at one level', () => {
    const s = series((ms) => (Math.floor(ms / 500) % 2 === 0 ? 4 : 16), 20_000)
    expect(settleSeconds(s, 10_000, 20_000)).toBeNull()
  })
})
