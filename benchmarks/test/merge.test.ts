import { describe, expect, it } from 'vitest'
import type { BenchResults } from '../src/bench.js'
import { mergeTiers } from '../src/merge.js'

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
})
