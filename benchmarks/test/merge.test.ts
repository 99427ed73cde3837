import { describe, expect, it } from 'vitest'
import type { BenchResults } from '../src/bench.js'
import { mergesIntoExisting, mergeTiers } from '../src/merge.js'

const run = (startedAt: string, extra: Partial<BenchResults>): BenchResults =>
  ({ version: 1, quick: false, startedAt, durationS: 1, command: 'pnpm bench', ...extra }) as BenchResults

describe('bench --merge', () => {
  it('replaces the tiers that ran and keeps the rest, and the run that measured them', () => {
    const previous = run('full run', {
      macro: { phases: [] } as unknown as NonNullable<BenchResults['macro']>,
      clientsLeave: { startedAt: 'full run' } as NonNullable<BenchResults['clientsLeave']>,
    })
    const current = run('leave run', {
      clientsLeave: { startedAt: 'leave run' } as NonNullable<BenchResults['clientsLeave']>,
    })
    const merged = mergeTiers(previous, current, new Set(['leave']))
    expect(merged.startedAt).toBe('full run')
    expect(merged.macro).toBe(previous.macro)
    expect(merged.clientsLeave?.startedAt).toBe('leave run')
  })

  it('drops a tier that ran but produced nothing, rather than keep its old figures', () => {
    const previous = run('full run', { cpu: { phases: [] } as unknown as NonNullable<BenchResults['cpu']> })
    expect(mergeTiers(previous, run('now', {}), new Set(['cpu'])).cpu).toBeUndefined()
  })

  it('merges rows of the overload matrix measured again, keeping every other row', () => {
    const phase = (system: string, multiple: number, goodputPct: number, run?: number) =>
      ({ system, multiple, goodputPct, ...(run === undefined ? {} : { run }) }) as NonNullable<
        BenchResults['macro']
      >['phases'][number]
    const previous = run('full run', {
      macro: {
        multiples: [1, 10],
        skipped: [],
        phases: [phase('a', 1, 50), phase('a', 10, 80), phase('b', 10, 70)],
      } as unknown as NonNullable<BenchResults['macro']>,
    })
    const rerun = {
      startedAt: 'later',
      command: 'pnpm bench --only macro',
      revision: 'abc1234',
      loadavgStart: [0],
      loadavgEnd: [0],
      systems: ['a'],
      multiples: [10],
      runs: 2,
    }
    const current = run('later', {
      macro: {
        multiples: [10],
        skipped: [],
        phases: [phase('a', 10, 98, 1), phase('a', 10, 99, 2)],
        rerun,
      } as unknown as NonNullable<BenchResults['macro']>,
    })
    const merged = mergeTiers(previous, current, new Set(['macro'])).macro!
    expect(merged.phases.map((p) => [p.system, p.multiple, p.goodputPct])).toEqual([
      ['a', 1, 50],
      ['b', 10, 70],
      ['a', 10, 98],
      ['a', 10, 99],
    ])
    expect(merged.multiples).toEqual([1, 10])
    expect(merged.reruns).toEqual([rerun])
    expect(merged.rerun).toBeUndefined()

    // The same rows measured once more: the earlier rerun no longer describes any row, and goes.
    const again = { ...rerun, startedAt: 'later still' }
    const twice = mergeTiers(
      { ...previous, macro: merged },
      run('later still', {
        macro: { ...current.macro!, phases: [phase('a', 10, 97, 1)], rerun: again },
      }),
      new Set(['macro']),
    ).macro!
    expect(twice.reruns).toEqual([again])
    expect(twice.phases.filter((p) => p.system === 'a' && p.multiple === 10)).toHaveLength(1)
  })
})

describe('which runs merge', () => {
  it('merges with --merge, and with --only unless --replace; a full run writes its own file', () => {
    expect(mergesIntoExisting(['--merge'])).toBe(true)
    expect(mergesIntoExisting(['--only', 'short'])).toBe(true)
    expect(mergesIntoExisting(['--only', 'short', '--replace'])).toBe(false)
    expect(mergesIntoExisting([])).toBe(false)
    expect(mergesIntoExisting(['--quick'])).toBe(false)
  })
})
