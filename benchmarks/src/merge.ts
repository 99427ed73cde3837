/**
 * `pnpm bench --merge`: the tiers measured now replace their old figures in the existing results, so
 * one tier can be measured again without the other fifteen minutes. The file's run (machine, command,
 * time) stays the one that measured the rest; a tier merged in says when and how it was measured itself.
 */
import type { BenchResults } from './bench.js'

/**
 * Whether a run with these arguments goes into the existing results: asked with `--merge`, or implied
 * by `--only`, since some tiers written on their own would replace every other tier's figures (and
 * the report built from them) with nothing. `--replace` asks for that anyway.
 */
export function mergesIntoExisting(args: readonly string[]): boolean {
  return args.includes('--merge') || (args.includes('--only') && !args.includes('--replace'))
}

export const TIERS = [
  'micro',
  'macro',
  'cpu',
  'cpu-ceiling',
  'step',
  'leave',
  'rejection',
  'overhead',
  'retry',
  'short',
  'ceiling',
  'streams',
  'fleet-sim',
  'fleet',
  'fleet-join',
  'chain',
  'consumers',
] as const
export type Tier = (typeof TIERS)[number]

/** Where each tier keeps its results. */
const TIER_KEYS: Record<Tier, keyof BenchResults> = {
  micro: 'micro',
  macro: 'macro',
  cpu: 'cpu',
  'cpu-ceiling': 'cpuCeiling',
  step: 'steps',
  leave: 'clientsLeave',
  rejection: 'rejection',
  overhead: 'overhead',
  retry: 'retryStorm',
  short: 'shortRuns',
  ceiling: 'ceiling',
  streams: 'streams',
  'fleet-sim': 'fleetSim',
  fleet: 'fleet',
  'fleet-join': 'fleetJoin',
  chain: 'callChain',
  consumers: 'consumers',
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
    if (tier === 'macro' && current.macro?.rerun !== undefined && previous.macro !== undefined) {
      merged.macro = mergeMacroRows(previous.macro, current.macro)
    } else if (current[key] === undefined) delete merged[key]
    else merged[key] = current[key]
  }
  return merged as unknown as BenchResults
}

type Macro = NonNullable<BenchResults['macro']>

/**
 * Some rows of the matrix measured again (`--systems`, `--multiples`, `--runs`): each system and load
 * measured now replaces that row's old phases, every other row stays, and the run says what it measured.
 */
function mergeMacroRows(previous: Macro, current: Macro): Macro {
  const rerun = current.rerun!
  const key = (p: { system: string; multiple: number }): string => `${p.system}@${p.multiple}`
  const now = new Set(current.phases.map(key))
  const { rerun: _previousRerun, ...kept } = previous
  return {
    ...kept,
    multiples: [...new Set([...previous.multiples, ...current.multiples])].sort((a, b) => a - b),
    phases: [...previous.phases.filter((p) => !now.has(key(p))), ...current.phases],
    skipped: [...new Set([...previous.skipped, ...current.skipped])].filter(
      (s) => !current.phases.some((p) => p.system === s),
    ),
    // An earlier rerun stays listed while some row it measured is still in the matrix.
    reruns: [
      ...(previous.reruns ?? []).filter((r) =>
        r.systems.some((system) => r.multiples.some((multiple) => !now.has(key({ system, multiple })))),
      ),
      rerun,
    ],
  }
}
