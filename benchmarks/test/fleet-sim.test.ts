import type { BackpressureOptions } from '@backpressure/core'
import { describe, expect, it } from 'vitest'
import { FLEET_LIMITS, type FleetPhase, fleetWindow, jain, simulateFleet } from '../src/fleet-sim.js'

// N instances, each with its own controller, in front of one shared pool (P = 4N connections, 10 ms
// per query), on the manual clock. The targets: Σ limits settles near P, goodput ≥ 99% at 2× and 10×,
// Jain's fairness index ≥ 0.9, and instances joining or leaving do not overload the pool.

const runs = new Map<string, ReturnType<typeof simulateFleet>>()
function run(phases: FleetPhase[], options: BackpressureOptions) {
  const key = JSON.stringify([phases, options])
  let result = runs.get(key)
  if (result === undefined) {
    result = simulateFleet(phases, { options })
    runs.set(key, result)
  }
  return result
}
const steady = async (n: number, multiple: number, options: BackpressureOptions) =>
  fleetWindow(await run([{ durationMs: 8000, multiple, connections: 4 * n, instances: n }], options), 3, 8)

describe('fleet simulation', () => {
  it("Jain's index: 1 when every instance gets the same, 1/n when one gets everything", () => {
    expect(jain([5, 5, 5, 5])).toBe(1)
    expect(jain([9, 0, 0])).toBeCloseTo(1 / 3)
    expect(jain([2, 1])).toBeCloseTo(0.9)
  })

  it('a fleet of fixed limits summing to P keeps the pool busy and never queued', async () => {
    // The harness itself: limits that add up to exactly P give goodput ≈ 100%, an empty pool queue.
    const w = await steady(2, 2, { maxConcurrency: 4, maxQueueDepth: 4 })
    expect(w.sumLimitsOverP).toBe(1)
    expect(w.goodput).toBeGreaterThan(0.98)
    expect(w.poolQueueMax).toBe(0)
    expect(w.jain).toBeGreaterThan(0.99)
    const under = await steady(2, 2, { maxConcurrency: 2, maxQueueDepth: 4 })
    // Half of P in flight: half the capacity, whatever the load.
    expect(under.goodput).toBeGreaterThan(0.48)
    expect(under.goodput).toBeLessThan(0.52)
  })

  const aimd = FLEET_LIMITS['aimd 15 ms']!
  it.each([
    [2, 2],
    [2, 10],
    [10, 2],
    [10, 10],
    [50, 2],
  ])('AIMD on a latency target meets every target: N = %i at %i×', async (n, multiple) => {
    const w = await steady(n, multiple, aimd)
    expect(w.goodput).toBeGreaterThanOrEqual(0.99)
    expect(w.sumLimitsOverP).toBeGreaterThanOrEqual(1)
    expect(w.sumLimitsOverP).toBeLessThan(2)
    expect(w.jain).toBeGreaterThanOrEqual(0.9)
    expect(w.poolWaitMaxMs).toBeLessThan(20)
  })

  it('AIMD: five instances joining a fleet of ten, then leaving, do not overload the pool', async () => {
    const P = 40
    const seconds = await run(
      [
        { durationMs: 6000, multiple: 2, connections: P, instances: 10 },
        { durationMs: 6000, multiple: 2, connections: P, instances: 15 },
        { durationMs: 6000, multiple: 2, connections: P, instances: 10 },
      ],
      aimd,
    )
    for (const [from, to] of [
      [6, 8],
      [12, 14],
    ]) {
      const w = fleetWindow(seconds, from!, to!)
      expect(w.goodput).toBeGreaterThanOrEqual(0.99)
      expect(w.sumLimitsOverP).toBeLessThan(2)
      expect(w.poolWaitMaxMs).toBeLessThan(50)
    }
  })

  describe('the default (gradient) limit', () => {
    it.each([
      [2, 2],
      [2, 10],
      [10, 2],
      [10, 10],
      [50, 2],
    ])('keeps goodput at 99 percent or more: N = %i at %i×', async (n, multiple) => {
      expect((await steady(n, multiple, {})).goodput).toBeGreaterThanOrEqual(0.99)
    })

    it('two instances share the pool fairly', async () => {
      expect((await steady(2, 2, {})).jain).toBeGreaterThanOrEqual(0.9)
      expect((await steady(2, 10, {})).jain).toBeGreaterThanOrEqual(0.9)
    })

    // Known misses, measured (docs/fleet.md): each instance's probe re-measures its no-load baseline
    // while the other instances keep the shared pool queued, so the baseline absorbs their queueing
    // (24 ms after the first interval for 10 ms queries, 40–390 ms a few seconds later at N = 10) and
    // the limits ratchet up. These flip to passing when the limit sees a shared downstream correctly.
    it.fails('Σ limits settles near P: N = 10 at 2× (measured ≈ 39×P)', async () => {
      expect((await steady(10, 2, {})).sumLimitsOverP).toBeLessThan(2)
    })
    it.fails('Σ limits settles near P: N = 2 at 10× (measured ≈ 4.8×P)', async () => {
      expect((await steady(2, 10, {})).sumLimitsOverP).toBeLessThan(2)
    })
    it.fails("Jain's index ≥ 0.9: N = 10 at 10× (measured ≈ 0.58)", async () => {
      expect((await steady(10, 10, {})).jain).toBeGreaterThanOrEqual(0.9)
    })
  })
})
