/**
 * The harness's ceiling: how much of C the best admission this machine allows serves in the same
 * scenarios as the goodput targets. The system measured (`raw-gate` in systems.ts) is node:http with
 * no framework, a fixed in-flight cap of P + 2 and a prebuilt 503 — no policy to get wrong and the
 * cheapest rejection there is. What it misses is lost to the machine: the event loop reading the
 * database's answers late while it writes 503s (the query "hold" above S), and the first few hundred
 * milliseconds of a fresh process under overload (cold code, the load generator opening sockets).
 * A target above this row cannot be met on this machine by any admission policy.
 */
import { loadavg } from 'node:os'
import type { BenchResults } from './bench.js'
import { runShortRuns, type ShortRunsResults } from './short-runs.js'
import { mean, round } from './stats.js'

export const CEILING_SYSTEM = 'raw-gate'

export interface CeilingResults {
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  /** 8 s phases at 2× and 5×, as the short tier (#15's target). */
  readonly short: ShortRunsResults
  /** 4 s phases at 10×, as the attached rows of the overload matrix (#14's target). */
  readonly tenfold: ShortRunsResults
}

export async function runCeiling(options: {
  readonly command: string
  readonly revision: string
  readonly log: (line: string) => void
}): Promise<CeilingResults> {
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const common = {
    systems: [CEILING_SYSTEM],
    command: options.command,
    revision: options.revision,
    log: options.log,
  }
  const short = await runShortRuns({
    ...common,
    loads: [
      { multiple: 2, runs: 10 },
      { multiple: 5, runs: 10 },
    ],
    durationMs: 8000,
  })
  const tenfold = await runShortRuns({ ...common, loads: [{ multiple: 10, runs: 3 }], durationMs: 4000 })
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

/** Ceiling beside ours, for each load the targets name: every run of each. */
export function ceilingSection(results: BenchResults, heading: string): string | undefined {
  const ceiling = results.ceiling
  if (ceiling === undefined) return undefined
  const out: string[] = [`## ${heading}`, '']
  out.push(
    `The best this machine allows, measured: node:http with no framework, a fixed cap of P + 2 requests in flight (the pool full and two queries waiting in its queue, so a freed connection never waits for the event loop to admit someone) and a prebuilt 503 for the rest — no adaptive policy and the cheapest rejection there is. What it misses is lost to the machine, not to admission: the event loop reads the database's answers late while it writes 503s (query hold above ${ceiling.short.scenario.queryMs} ms), and a fresh process spends its first few hundred milliseconds of overload on cold code and on the sockets the load generator opens meanwhile. Same scenario, warm-up and phase lengths as the rows it sits beside. Measured ${ceiling.startedAt} (load average ${ceiling.loadavgStart.join(' / ')} at start, ${ceiling.loadavgEnd.join(' / ')} at end), code at ${ceiling.revision}: \`${ceiling.command}\`.`,
  )
  out.push('')
  out.push('| load, phase | system | goodput % of C, every run | mean | runs ≥ 99% | runs ≥ 97% | hold, ms |')
  out.push('|---|---|---|---:|---:|---:|---:|')
  // A short run and a macro phase both carry these two figures.
  const row = (
    where: string,
    system: string,
    runs: readonly { goodputPct: number; meanHoldMs: number }[],
  ) => {
    if (runs.length === 0) return
    const holds = runs.map((r) => r.meanHoldMs)
    out.push(
      `| ${where} | ${system} | ${runs.map((r) => r.goodputPct.toFixed(1)).join(', ')} | ${mean(runs.map((r) => r.goodputPct)).toFixed(1)} | ${runs.filter((r) => r.goodputPct >= 99).length} of ${runs.length} | ${runs.filter((r) => r.goodputPct >= 97).length} of ${runs.length} | ${Math.min(...holds).toFixed(2)}–${Math.max(...holds).toFixed(2)} |`,
    )
  }
  for (const multiple of [2, 5]) {
    const where = `${multiple}×, ${ceiling.short.durationMs / 1000} s`
    row(
      where,
      '**ceiling**',
      ceiling.short.runs.filter((r) => r.multiple === multiple),
    )
    for (const system of results.shortRuns?.systems ?? []) {
      row(
        where,
        system,
        (results.shortRuns?.runs ?? []).filter((r) => r.system === system && r.multiple === multiple),
      )
    }
  }
  const where = `10×, ${ceiling.tenfold.durationMs / 1000} s`
  row(where, '**ceiling**', ceiling.tenfold.runs)
  for (const system of ['ours-express-attached', 'ours-koa-attached']) {
    row(
      where,
      system,
      (results.macro?.phases ?? []).filter((p) => p.system === system && p.multiple === 10),
    )
  }
  out.push('')
  out.push(
    `Our rows are from the tiers above (their own runs, which say when); the ceiling's were measured in a run of their own. The targets of 99% of C in every run at 2× and 5× (short runs) and 97% in every run at 10× (attached) sit above or at this ceiling.`,
  )
  out.push('')
  return out.join('\n')
}
