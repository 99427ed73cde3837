import { describe, expect, it } from 'vitest'
import type { BenchResults } from '../src/bench.js'
import { ceilingSection, gatesBeside } from '../src/ceiling.js'
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

/** Results holding only a ceiling tier of these two runs. */
function withCeiling(short: ShortRunsResults, tenfold: ShortRunsResults): BenchResults {
  return {
    ceiling: {
      startedAt: '2026-12-01T00:00:00.000Z',
      command: 'pnpm bench --only ceiling --merge',
      revision: 'abc1234',
      loadavgStart: [0.5],
      loadavgEnd: [0.6],
      short,
      tenfold,
    },
  } as unknown as BenchResults
}

describe('the ceiling section', () => {
  it("puts each framework's gate beside ours in one table and gives the distance between their means", () => {
    const results = withCeiling(
      shortRuns(
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
      shortRuns(
        ['express-gate', 'ours-express-attached'],
        [run('express-gate', 10, 96.5), run('ours-express-attached', 10, 97.0)],
        4000,
      ),
    )
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

  it("counts each gate's runs at a target's loads, and at 1× what each turned away, for the target's own section", () => {
    const rejecting = (system: string, status503: number): ShortRun => ({ ...run(system, 1, 98), status503 })
    const results = withCeiling(
      shortRuns(
        ['express-gate', 'ours-express'],
        [
          run('express-gate', 2, 99.2),
          run('express-gate', 2, 98.1),
          run('ours-express', 2, 99.5),
          rejecting('express-gate', 62),
          rejecting('express-gate', 90),
        ],
        8000,
      ),
      shortRuns(['koa-gate'], [run('koa-gate', 10, 97.1), run('koa-gate', 10, 94.2)], 4000),
    )
    expect(gatesBeside(results, [2], 99, '#ceiling', true)).toBe(
      "Each framework behind a gate that knows the pool, in the same scenario ([the ceiling tier](#ceiling), code at abc1234), runs at ≥ 99% of C: at 2×: express-gate 1 of 2 (98.1–99.2%). At 1× the gates turned away, per run: express-gate 62–90. A target that a framework's gate misses is beyond this machine for that framework, whatever admission does.",
    )
    expect(gatesBeside(results, [10], 97, '#ceiling')).toContain('at 10×: koa-gate 1 of 2 (94.2–97.1%).')
    expect(gatesBeside(results, [10], 97, '#ceiling')).not.toContain('At 1×')
    expect(gatesBeside({} as BenchResults, [2], 99, '#ceiling')).toBeUndefined()
  })

  it('is left out when the ceiling was never measured', () => {
    expect(ceilingSection({} as BenchResults, 'Ceiling')).toBeUndefined()
  })
})
