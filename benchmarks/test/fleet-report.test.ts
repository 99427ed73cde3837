import { describe, expect, it } from 'vitest'
import { fleetSimSection, fleetSimTarget } from '../src/fleet-report.js'
import type { FleetSimResults } from '../src/fleet-sim.js'

// The report's fleet-simulation section, on made-up results: what each table says of its runs.
const results: FleetSimResults = {
  serviceMs: 10,
  deadlineMs: 1000,
  limits: {},
  rows: [],
  seedSweeps: [{ limit: 'default', instances: 10, multiple: 2, window: [3, 8], jains: [0.95, 0.85, 0.99] }],
  joinSweeps: [
    {
      limit: 'default',
      multiple: 2,
      windows: [
        [8, 10],
        [11, 16],
      ],
      worstJains: [0.66, 0.7],
      maxSumLimitsOverP: [6.9, 7.4],
      maxPoolWaitMs: [37.2, 31],
    },
    {
      limit: 'default, shared baseline',
      multiple: 10,
      windows: [
        [8, 10],
        [11, 16],
      ],
      worstJains: [0.95, 0.99, 0.94],
      maxSumLimitsOverP: [2.4, 2.3, 2.38],
      maxPoolWaitMs: [26, 24.6, 25],
    },
  ],
  startedAt: '2026-12-02T13:00:00.000Z',
  durationS: 200,
  revision: 'abc1234',
}

describe('fleet simulation report', () => {
  it('tabulates the join sweeps: worst and mean of each run’s lowest Jain, runs below 0.9, the highest Σ limits and pool wait', () => {
    const section = fleetSimSection(results)
    expect(section).toContain('among the windows 8–10, 11–16 s')
    expect(section).toContain('| default | 2× | 2 | 0.660 | 0.680 | 2 | 7.40 | 37 ms |')
    expect(section).toContain('| default, shared baseline | 10× | 3 | 0.940 | 0.960 | 0 | 2.40 | 26 ms |')
  })

  it('reads the fairness target from the steady sweeps only', () => {
    expect(fleetSimTarget(results)).toEqual({
      passes: [true, false, true],
      ours: '1 of 3 runs below 0.9 (worst 0.850); N = 10 at 2×, 3 runs each',
    })
  })
})
