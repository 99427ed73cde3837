import { describe, expect, it } from 'vitest'
import { LatencyWindow } from '../src/latency-window.js'

describe('LatencyWindow', () => {
  it('reports percentiles within the bucket precision', () => {
    const window = new LatencyWindow(10_000, 10, 0.99, 0)
    for (let i = 1; i <= 1000; i++) window.record(i, 1)
    const p99 = window.value(1, 1)
    expect(p99).toBeGreaterThanOrEqual(990)
    expect(p99).toBeLessThan(990 * 1.1)
    expect(window.quantile(0.5, 1)).toBeGreaterThanOrEqual(500)
    expect(window.quantile(0.5, 1)).toBeLessThan(550)
  })

  it('needs the minimum sample count, so one slow request is not a slow server', () => {
    const window = new LatencyWindow(10_000, 10, 0.99, 0)
    window.record(5000, 1)
    expect(window.value(1, 100)).toBe(0)
  })

  it('forgets samples as the window slides, slot by slot', () => {
    const window = new LatencyWindow(1000, 10, 0.99, 0)
    window.record(500, 50)
    window.record(10, 550)
    expect(window.count).toBe(2)
    // 100 ms slots: at t=999 the window is [0, 1000) and holds both samples.
    window.value(999, 1)
    expect(window.count).toBe(2)
    window.value(1001, 1)
    expect(window.count).toBe(1)
    expect(window.value(1499, 1)).toBeLessThan(12)
    window.value(1601, 1)
    expect(window.count).toBe(0)
    window.record(20, 9000)
    expect(window.count).toBe(1)
  })
})
