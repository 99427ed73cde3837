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
  it("puts each framework's gate beside ours in one table and gives the distance between their means", () => {
    const results = {
      ceiling: {
        startedAt: '2026-12-01T00:00:00.000Z',
        command: 'pnpm bench --only ceiling --merge',
        revision: 'abc1234',
        loadavgStart: [0.5],
        loadavgEnd: [0.6],
        short: shortRuns(
          ['raw-gate', 'fastify-gate', 'ours-fastify'],
          [
            run('raw-gate', 2, 98.6, 10.05),
            run('raw-gate', 2, 99.0, 10.12),
            run('fastify-gate', 2, 98.0),
            run('fastify-gate', 2, 97.0),
            run('ours-fastify', 2, 97.1),
            run('ours-fastify', 2, 96.1),
            run('raw-gate', 5, 96.9),
          ],
          8000,
        ),
        tenfold: shortRuns(
          ['express-gate', 'ours-express-attached'],
          [run('express-gate', 10, 96.5), run('ours-express-attached', 10, 97.0)],
          4000,
        ),
      },
    } as unknown as BenchResults
    const section = ceilingSection(results, 'Ceiling')!
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| 2×') || l.startsWith('| 5×') || l.startsWith('| 10×'))
    expect(rows).toEqual([
      '| 2×, 8 s | **node-gate** | 98.6, 99.0 | 98.8 | 1 of 2 | 2 of 2 | 20 | 0 | 10.05–10.12 |',
      '| 2×, 8 s | **fastify-gate** | 98.0, 97.0 | 97.5 | 0 of 2 | 2 of 2 | 20 | 0 | 10.10–10.10 |',
      '| 2×, 8 s | ours-fastify | 97.1, 96.1 | 96.6 | 0 of 2 | 1 of 2 | 20 | 0 | 10.10–10.10 |',
      '| 5×, 8 s | **node-gate** | 96.9 | 96.9 | 0 of 1 | 0 of 1 | 20 | 0 | 10.10–10.10 |',
      '| 10×, 4 s | **express-gate** | 96.5 | 96.5 | 0 of 1 | 0 of 1 | 20 | 0 | 10.10–10.10 |',
      '| 10×, 4 s | ours-express-attached | 97.0 | 97.0 | 0 of 1 | 1 of 1 | 20 | 0 | 10.10–10.10 |',
    ])
    expect(section).toContain('at 2×: ours-fastify −0.9; at 10×: ours-express-attached +0.5.')
  })

  it('is left out when the ceiling was never measured', () => {
    expect(ceilingSection({} as BenchResults, 'Ceiling')).toBeUndefined()
  })
})
