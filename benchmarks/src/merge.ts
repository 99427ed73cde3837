/**
 * `pnpm bench --merge`: the tiers measured now replace their old figures in the existing results, so
 * one tier can be measured again without the other fifteen minutes. The file's run (machine, command,
 * time) stays the one that measured the rest; a tier merged in says when and how it was measured itself.
 */
import type { BenchResults } from './bench.js'

export const TIERS = ['micro', 'macro', 'cpu', 'step', 'leave', 'overhead', 'retry'] as const
export type Tier = (typeof TIERS)[number]

/** Where each tier keeps its results. */
const TIER_KEYS: Record<Tier, keyof BenchResults> = {
  micro: 'micro',
  macro: 'macro',
  cpu: 'cpu',
  step: 'steps',
  leave: 'clientsLeave',
  overhead: 'overhead',
  retry: 'retryStorm',
}

export function mergeTiers(
  previous: BenchResults,
  current: BenchResults,
  tiers: ReadonlySet<string>,
): BenchResults {
  const merged: Record<string, unknown> = { ...previous }
  for (const tier of TIERS) {
    if (!tiers.has(tier)) continue
    const key = TIER_KEYS[tier]
    if (current[key] === undefined) delete merged[key]
    else merged[key] = current[key]
  }
  return merged as unknown as BenchResults
}
