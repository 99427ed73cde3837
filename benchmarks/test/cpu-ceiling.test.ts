import { describe, expect, it } from 'vitest'
import type { BenchResults, CompactPhase } from '../src/bench.js'
import { bestGates, cpuCeilingSection } from '../src/cpu-ceiling.js'

function phase(
  system: string,
  multiple: number,
  run: number,
  goodputPct: number,
  p99Ms: number,
): CompactPhase {
  return {
    system,
    multiple,
    run,
    goodputPct,
    load: { p99Ms, timeouts: 0, status503WithRetryAfter: 100, status503NoRetryAfter: 0 },
  } as unknown as CompactPhase
}

const phases = [
  // Express: the 100% gate serves more but its backlog grows (p99 far over 100 ms in two runs of three).
  ...[1, 2, 3].flatMap((run) => [
    phase('express-rate-gate-80', 2, run, 79 + run, 30),
    phase('express-rate-gate-90', 2, run, 88, run === 1 ? 140 : 60),
    phase('express-rate-gate-100', 2, run, 97, run === 3 ? 80 : 400),
    phase('ours-express', 2, run, 86, 70),
  ]),
  // Koa: no gate keeps p99 in bounds.
  ...[1, 2, 3].map((run) => phase('koa-rate-gate-100', 2, run, 99, 300)),
  ...[1, 2, 3].map((run) => phase('ours-koa', 2, run, 95, 90)),
]

describe('the CPU-bound ceiling', () => {
  it('takes the best gate whose median run kept p99 within 100 ms, beside ours', () => {
    const best = bestGates(phases, 2)
    expect(best.map((b) => [b.framework, b.gate?.system, b.ours?.system])).toEqual([
      ['Express', 'express-rate-gate-90', 'ours-express'],
      ['Koa', undefined, 'ours-koa'],
    ])
    expect(best[0]!.gate!.goodput).toEqual([88, 88, 88])
  })

  it('reports every run of every gate and the distance of ours from the ceiling', () => {
    const results = {
      cpuCeiling: {
        scenario: {
          poolSize: 0,
          queryMs: 0,
          cpuMs: 1,
          deadlineMs: 1000,
          capacity: 700,
          connectedClients: true,
        },
        durationMs: 4000,
        multiples: [2],
        phases,
        calibration: 'C = test',
        runs: 3,
        startedAt: '2026-12-02T00:00:00.000Z',
        loadavgStart: [0.5],
        loadavgEnd: [0.6],
        revision: 'abc1234',
        command: 'pnpm bench --only cpu-ceiling',
      },
    } as unknown as BenchResults
    const section = cpuCeilingSection(results)!
    expect(section).toContain('| 80.0, 81.0, 82.0 | 81.0 | 30, 30, 30 |')
    expect(section).toContain(
      'Express: best gate within it 88.0% (Express behind a fixed rate of 90% of C), ours 86.0% (-2.0 points)',
    )
    expect(section).toContain('Koa: no gate kept p99 ≤ 100 ms in its median run, ours 95.0%.')
    expect(cpuCeilingSection({} as BenchResults)).toBeUndefined()
  })
})
