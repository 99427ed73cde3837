/**
 * The harness's ceiling: how much of C the best admission this machine allows serves in the same
 * scenarios as the goodput targets, side by side with ours in one run. A gate (`raw-gate`,
 * `express-gate`, … in systems.ts) is a fixed in-flight cap of P + 2 decided in node:http's request
 * listener with a prebuilt 503: no policy to get wrong, the cheapest rejection there is, and the pool's
 * size known in advance, which an adaptive limit has to learn. `raw-gate` serves admitted requests
 * with no framework; a framework's gate serves them through that framework, so its row is the most a
 * user of that framework can get here. What a gate misses is lost to the machine: the event loop
 * reading the database's answers late (the query "hold" above S) and the first few hundred
 * milliseconds of a fresh process under overload (cold code, the load generator opening sockets).
 * A target above a framework's gate row cannot be met on this machine by any admission policy.
 */
import { loadavg } from 'node:os'
import type { BenchResults } from './bench.js'
import { runShortRuns, type ShortRun, type ShortRunsResults } from './short-runs.js'
import { mean, round } from './stats.js'
import { systemByName } from './systems.js'

export const CEILING_SYSTEM = 'raw-gate'

/** Each framework's gate beside ours on it, at 1×, 2× and 5× (the short tier's targets). */
export const CEILING_SHORT_SYSTEMS = [
  'raw-gate',
  'express-gate',
  'ours-express',
  'fastify-gate',
  'ours-fastify',
  'koa-gate',
  'ours-koa',
]
/** At 10×, beside ours attached (the attached target). */
export const CEILING_TENFOLD_SYSTEMS = [
  'raw-gate',
  'express-gate',
  'ours-express-attached',
  'koa-gate',
  'ours-koa-attached',
]
const SHORT_LOADS = [
  { multiple: 1, runs: 3 },
  { multiple: 2, runs: 5 },
  { multiple: 5, runs: 5 },
]
const TENFOLD_RUNS = 3

export interface CeilingResults {
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  /** 8 s phases at 1×, 2× and 5×, as the short tier (#15's target). */
  readonly short: ShortRunsResults
  /** 4 s phases at 10×, as the attached rows of the overload matrix (#14's target). */
  readonly tenfold: ShortRunsResults
}

export function describeCeilingRuns(): string {
  return `ceiling: fixed cap P + 2 before each framework, beside ours — ${SHORT_LOADS.map((l) => `${l.runs} × ${l.multiple}×`).join(', ')} of 8 s on ${CEILING_SHORT_SYSTEMS.length} systems, ${TENFOLD_RUNS} × 10× of 4 s on ${CEILING_TENFOLD_SYSTEMS.length}`
}

export async function runCeiling(options: {
  readonly command: string
  readonly revision: string
  readonly log: (line: string) => void
}): Promise<CeilingResults> {
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const common = { command: options.command, revision: options.revision, log: options.log }
  const short = await runShortRuns({
    ...common,
    systems: CEILING_SHORT_SYSTEMS,
    loads: SHORT_LOADS,
    durationMs: 8000,
  })
  const tenfold = await runShortRuns({
    ...common,
    systems: CEILING_TENFOLD_SYSTEMS,
    loads: [{ multiple: 10, runs: TENFOLD_RUNS }],
    durationMs: 4000,
  })
  return {
    startedAt,
    command: options.command,
    revision: options.revision,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    short,
    tenfold,
  }
}

const isGate = (system: string): boolean => system.endsWith('-gate')
/** How the report names a gate: the one with no framework is node:http's. */
const gateName = (system: string): string => (system === CEILING_SYSTEM ? 'node-gate' : system)

/** The gate a system of ours is measured against: its framework's. */
function gateOf(system: string): string {
  return `${systemByName(system).framework}-gate`
}

/** Every run of every system at each load, gates in bold, then how far ours is from its framework's gate. */
export function ceilingSection(results: BenchResults, heading: string): string | undefined {
  const ceiling = results.ceiling
  if (ceiling === undefined) return undefined
  const out: string[] = [`## ${heading}`, '']
  out.push(
    `The best this machine allows, measured beside ours in one run: a fixed cap of P + 2 requests in flight (the pool full and two queries waiting in its queue, so a freed connection never waits for the event loop to admit someone) decided in node:http's request listener, with a prebuilt 503 for the rest — no adaptive policy, the pool's size known in advance, and the cheapest rejection there is. "node-gate" serves what it admits with no framework; a framework's gate serves it through that framework, so its row is the most a user of that framework can get here whatever admission does. What a gate misses is lost to the machine: the event loop reads the database's answers late (query hold above ${ceiling.short.scenario.queryMs} ms), and a fresh process spends its first few hundred milliseconds of overload on cold code and on the sockets the load generator opens meanwhile. Fresh server each run, ${ceiling.short.warmupMs} ms warm-up at half of C, runs interleaved. Measured ${ceiling.startedAt} (load average ${ceiling.loadavgStart.join(' / ')} at start, ${ceiling.loadavgEnd.join(' / ')} at end), code at ${ceiling.revision}: \`${ceiling.command}\`.`,
  )
  out.push('')
  out.push(
    '| load, phase | system | goodput % of C, every run | mean | runs ≥ 99% | runs ≥ 97% | p99 of 2xx, ms (worst) | 503s per run | hold, ms |',
  )
  out.push('|---|---|---|---:|---:|---:|---:|---:|---:|')
  const tiers = [ceiling.short, ceiling.tenfold]
  const byLoad: { multiple: number; phaseS: number; systems: string[]; runs: ShortRun[] }[] = []
  for (const tier of tiers) {
    const multiples = [...new Set(tier.runs.map((r) => r.multiple))].sort((a, b) => a - b)
    for (const multiple of multiples) {
      byLoad.push({
        multiple,
        phaseS: tier.durationMs / 1000,
        systems: tier.systems,
        runs: tier.runs.filter((r) => r.multiple === multiple),
      })
    }
  }
  const meanOf = (runs: readonly ShortRun[]): number => mean(runs.map((r) => r.goodputPct))
  for (const { multiple, phaseS, systems, runs } of byLoad) {
    for (const system of systems) {
      const own = runs.filter((r) => r.system === system)
      if (own.length === 0) continue
      const holds = own.map((r) => r.meanHoldMs)
      const name = gateName(system)
      out.push(
        `| ${multiple}×, ${phaseS} s | ${isGate(system) ? `**${name}**` : name} | ${own.map((r) => r.goodputPct.toFixed(1)).join(', ')} | ${meanOf(own).toFixed(1)} | ${own.filter((r) => r.goodputPct >= 99).length} of ${own.length} | ${own.filter((r) => r.goodputPct >= 97).length} of ${own.length} | ${Math.max(...own.map((r) => r.p99Ms)).toFixed(0)} | ${Math.round(mean(own.map((r) => r.status503)))} | ${Math.min(...holds).toFixed(2)}–${Math.max(...holds).toFixed(2)} |`,
      )
    }
  }
  out.push('')
  const gaps: string[] = []
  for (const { multiple, systems, runs } of byLoad) {
    const parts: string[] = []
    for (const system of systems) {
      if (isGate(system)) continue
      const gate = runs.filter((r) => r.system === gateOf(system))
      const own = runs.filter((r) => r.system === system)
      if (gate.length === 0 || own.length === 0) continue
      const gap = meanOf(own) - meanOf(gate)
      parts.push(`${system} ${gap >= 0 ? '+' : '−'}${Math.abs(gap).toFixed(1)}`)
    }
    if (parts.length > 0) gaps.push(`at ${multiple}×: ${parts.join(', ')}`)
  }
  if (gaps.length > 0) {
    out.push(
      `Ours against its framework's gate, difference of the means in points of C (same run, same loads): ${gaps.join('; ')}. A target above a framework's gate row is beyond this machine for that framework; the distance between ours and the gate below it is ours to close.`,
    )
    out.push('')
  }
  return out.join('\n')
}

/**
 * One paragraph for a target's own section: how many runs of each gate reached the target's goodput at
 * the target's loads in the ceiling tier, and (`withCapacity`) at 1× how many requests each turned away.
 */
export function gatesBeside(
  results: BenchResults,
  multiples: readonly number[],
  goodputPct: number,
  link: string,
  withCapacity = false,
): string | undefined {
  const ceiling = results.ceiling
  if (ceiling === undefined) return undefined
  const runs = [...ceiling.short.runs, ...ceiling.tenfold.runs].filter((r) => isGate(r.system))
  const range = (values: readonly number[], digits: number): string =>
    `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`
  const parts: string[] = []
  for (const multiple of multiples) {
    const here = runs.filter((r) => r.multiple === multiple)
    const cells = [...new Set(here.map((r) => r.system))].map((system) => {
      const own = here.filter((r) => r.system === system)
      return `${gateName(system)} ${own.filter((r) => r.goodputPct >= goodputPct).length} of ${own.length} (${range(
        own.map((r) => r.goodputPct),
        1,
      )}%)`
    })
    if (cells.length > 0) parts.push(`at ${multiple}×: ${cells.join(', ')}`)
  }
  if (parts.length === 0) return undefined
  const atCapacity = withCapacity ? runs.filter((r) => r.multiple === 1) : []
  const turnedAway = [...new Set(atCapacity.map((r) => r.system))].map(
    (system) =>
      `${gateName(system)} ${range(
        atCapacity.filter((r) => r.system === system).map((r) => r.status503),
        0,
      )}`,
  )
  return `Each framework behind a gate that knows the pool, in the same scenario ([the ceiling tier](${link}), code at ${ceiling.revision}), runs at ≥ ${goodputPct}% of C: ${parts.join('; ')}.${
    turnedAway.length > 0 ? ` At 1× the gates turned away, per run: ${turnedAway.join(', ')}.` : ''
  } A target that a framework's gate misses is beyond this machine for that framework, whatever admission does.`
}
