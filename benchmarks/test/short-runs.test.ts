import { describe, expect, it } from 'vitest'
import { findProbes } from '../src/short-runs.js'

describe('short runs: probes read off the limit', () => {
  it('finds a drop to about half as a probe, with its length and the rejections around it', () => {
    const series: [number, number, number, number, number][] = []
    let rejected = 0
    for (let ms = 100; ms <= 2000; ms += 100) {
      // 40 rejections per 100 ms, 30 more in the two samples of the probe.
      rejected += 40 + (ms === 1100 || ms === 1200 ? 15 : 0)
      series.push([ms, ms > 1000 && ms <= 1200 ? 3 : 9, 4, 0, rejected])
    }
    const probes = findProbes({
      limitChanges: [
        [300, 10],
        [450, 9],
        [1010, 3],
        [1180, 9],
        [1500, 8],
      ],
      limitSeries: series,
    })
    expect(probes).toHaveLength(1)
    const probe = probes[0]!
    expect(probe).toMatchObject({ atMs: 1010, from: 9, to: 3, lastedMs: 170 })
    // From 100 ms before the drop to 300 ms after the limit came back: 900 → 1400 ms, five samples.
    expect(probe.rejectedAround).toBe(5 * 40 + 30)
    expect(probe.trace[0]![0]).toBe(900)
    expect(probe.trace.map((t) => t[4])).toContain(55)
  })

  it('does not take the gradient steps of a small limit for probes', () => {
    const probes = findProbes({
      limitChanges: [
        [100, 3],
        [200, 2],
        [300, 3],
        [400, 9],
        [500, 7],
      ],
      limitSeries: [],
    })
    expect(probes).toEqual([])
  })
})
