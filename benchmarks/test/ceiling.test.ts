import { describe, expect, it } from 'vitest'
import type { BenchResults } from '../src/bench.js'
import { ceilingSection } from '../src/ceiling.js'
import { ioScenario } from '../src/macro.js'
import type { ShortRun, ShortRunsResults } from '../src/short-runs.js'

function run(system: string, multiple: number, goodputPct: number, meanHoldMs = 10.1): ShortRun {
  return {
    system,
    multiple,
    run: 1,
    goodputPct,
    p99Ms: 20,
    status503: 0,
    timeouts: 0,
    rejections: {},
    limit: [0, 0, 0],
    probes: [],
    perSecondPct: [],
    meanHoldMs,
    serverCpuPct: 20,
    othersCpuPct: 0,
  }
}

function shortRuns(systems: string[], runs: ShortRun[], durationMs: number): ShortRunsResults {
  return {
    scenario: ioScenario(),
    durationMs,
    warmupMs: 400,
    startedAt: '2026-12-01T00:00:00.000Z',
    command: 'pnpm bench --only ceiling',
    revision: 'abc1234',
    loadavgStart: [0.5],
    loadavgEnd: [0.6],
    systems,
    loads: [],
    runs,
  }
}

describe('the ceiling section', () => {
  it('puts the ceiling beside our rows at each load and counts the runs that reach each bar', () => {
    const results = {
      shortRuns: shortRuns(
        ['ours-fastify'],
        [run('ours-fastify', 2, 98.2), run('ours-fastify', 2, 99.1)],
        8000,
      ),
      ceiling: {
        startedAt: '2026-12-01T00:00:00.000Z',
        command: 'pnpm bench --only ceiling --merge',
        revision: 'abc1234',
        loadavgStart: [0.5],
        loadavgEnd: [0.6],
        short: shortRuns(
          ['raw-gate'],
          [run('raw-gate', 2, 98.6, 10.05), run('raw-gate', 2, 99.0, 10.12), run('raw-gate', 5, 96.9)],
          8000,
        ),
        tenfold: shortRuns(['raw-gate'], [run('raw-gate', 10, 97.9)], 4000),
      },
    } as unknown as BenchResults
    const section = ceilingSection(results, 'Ceiling')!
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| 2×') || l.startsWith('| 5×') || l.startsWith('| 10×'))
    expect(rows).toEqual([
      '| 2×, 8 s | **ceiling** | 98.6, 99.0 | 98.8 | 1 of 2 | 2 of 2 | 10.05–10.12 |',
      '| 2×, 8 s | ours-fastify | 98.2, 99.1 | 98.7 | 1 of 2 | 2 of 2 | 10.10–10.10 |',
      '| 5×, 8 s | **ceiling** | 96.9 | 96.9 | 0 of 1 | 0 of 1 | 10.10–10.10 |',
      '| 10×, 4 s | **ceiling** | 97.9 | 97.9 | 0 of 1 | 1 of 1 | 10.10–10.10 |',
    ])
  })

  it('is left out when the ceiling was never measured', () => {
    expect(ceilingSection({} as BenchResults, 'Ceiling')).toBeUndefined()
  })
})
