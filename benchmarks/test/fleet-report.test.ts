import { describe, expect, it } from 'vitest'
import { fleetJoinSection, fleetSimSection, fleetSimTarget } from '../src/fleet-report.js'
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

describe('fleet join report', () => {
  it('lists every run of each window, with the instances’ baselines as a range', () => {
    const window = (jain: number, baselinesMs: (number | null)[]) => ({
      name: '6 instances',
      from: 15,
      to: 24,
      instances: 6,
      jain,
      goodputPct: 96.5,
      sumLimitsOverP: 2.35,
      poolWaitMeanMs: 32.4,
      poolWaitMaxMs: 61.7,
      servedPerS: [100, 100, 100, 100, 100, 100],
      baselinesMs,
    })
    const run = (
      variant: 'own baselines' | 'shared baseline',
      r: number,
      jain: number,
      b: (number | null)[],
    ) => ({
      variant,
      multiple: 2,
      run: r,
      achievedRate: 1280,
      p99Ms: 120,
      shed: 10_000,
      timeouts: 0,
      windows: [window(jain, b)],
    })
    const section = fleetJoinSection({
      poolSize: 16,
      queryMs: 25,
      capacity: 640,
      instances: 4,
      joiners: 2,
      joinAtS: 12,
      durationS: 24,
      deadlineMs: 1000,
      startedAt: '2026-12-02T13:40:00.000Z',
      command: 'pnpm bench --only fleet-join',
      loadavgStart: [1],
      loadavgEnd: [2],
      runs: [
        run('own baselines', 1, 0.633, [26.8, 59.3, null]),
        run('shared baseline', 1, 0.992, [28, 28]),
        run('own baselines', 2, 0.7, [null]),
      ],
    })
    expect(section).toContain(
      '| own baselines | 2× | 6 instances, s 15–24 | 0.633, 0.700 | 96.5, 96.5 | 2.35, 2.35 | 32.4 / 61.7, 32.4 / 61.7 | 26.8–59.3, – |',
    )
    expect(section).toContain(
      '| shared baseline | 2× | 6 instances, s 15–24 | 0.992 | 96.5 | 2.35 | 32.4 / 61.7 | 28 |',
    )
  })
})
