/**
 * The "first minute" tier: `backpressure()` with no options, on each adapter, in many short runs, each
 * on a fresh server — what a user sees when they try it. Every run is reported with its rejections by
 * reason and, around each re-measurement of the limit's baseline (a probe: the limit drops to about
 * half in one step), the limit, the permits in flight and the rejections 100 ms by 100 ms, so a run
 * that lost goodput shows where its extra 503s came from.
 */
import { loadavg } from 'node:os'
import { ioScenario, type PhaseResult, runPhase, type Scenario } from './macro.js'
import { round } from './stats.js'

export interface ProbeTrace {
  /** When the limit dropped, ms after the load began, and from what to what. */
  readonly atMs: number
  readonly from: number
  readonly to: number
  /** How long the limit stayed below `from`'s half-way mark, in ms. */
  readonly lastedMs: number
  /** Rejections from 100 ms before the drop to 300 ms after the limit came back. */
  readonly rejectedAround: number
  /** [ms, limit, in flight, queue depth, rejections in that 100 ms] from 200 ms before to 400 ms after. */
  readonly trace: [number, number, number, number, number][]
}

export interface ShortRun {
  readonly system: string
  readonly multiple: number
  readonly run: number
  readonly goodputPct: number
  readonly p99Ms: number
  readonly status503: number
  readonly timeouts: number
  readonly rejections: Record<string, number>
  /** The limit's lowest, median and highest 100 ms sample. */
  readonly limit: [number, number, number]
  readonly probes: ProbeTrace[]
  /** 2xx in time per second of the load, as % of C. */
  readonly perSecondPct: number[]
  /** Mean ms a query held its pool connection: above 10 when the server read answers late (see sim-db.ts). */
  readonly meanHoldMs: number
  readonly serverCpuPct: number
  readonly othersCpuPct: number
}

export interface ShortRunsResults {
  readonly scenario: Scenario
  readonly durationMs: number
  readonly warmupMs: number
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly systems: string[]
  /** Load multiples and how many runs each. */
  readonly loads: { multiple: number; runs: number }[]
  readonly runs: ShortRun[]
}

export const SHORT_RUN_SYSTEMS = ['ours-express', 'ours-fastify', 'ours-koa']

/** The probes of one run, read off the limit's changes: a drop to at most ~half in one step. */
export function findProbes(phase: {
  readonly limitChanges: PhaseResult['limitChanges']
  readonly limitSeries: readonly (readonly number[])[]
}): ProbeTrace[] {
  const probes: ProbeTrace[] = []
  let previous: number | undefined
  const changes = phase.limitChanges
  for (let i = 0; i < changes.length; i++) {
    const [atMs, limit] = changes[i]!
    if (previous !== undefined && previous >= 4 && limit <= previous * 0.6) {
      let end = i + 1
      while (end < changes.length && changes[end]![1] <= previous / 2) end++
      const endMs = changes[end]?.[0] ?? atMs
      const series = phase.limitSeries
      const rejectedAt = (ms: number): number => {
        let last = 0
        for (const s of series) {
          if (s[0]! > ms) break
          last = s[4]!
        }
        return last
      }
      const trace: ProbeTrace['trace'] = []
      let before = rejectedAt(atMs - 300)
      for (const s of series) {
        if (s[0]! < atMs - 200 || s[0]! > endMs + 400) continue
        trace.push([s[0]!, s[1]!, s[2]!, s[3]!, s[4]! - before])
        before = s[4]!
      }
      probes.push({
        atMs,
        from: previous,
        to: limit,
        lastedMs: endMs - atMs,
        rejectedAround: rejectedAt(endMs + 300) - rejectedAt(atMs - 100),
        trace,
      })
    }
    previous = limit
  }
  return probes
}

export async function runShortRuns(options: {
  readonly systems?: readonly string[]
  readonly loads: { multiple: number; runs: number }[]
  readonly durationMs: number
  readonly command: string
  readonly revision: string
  readonly log: (line: string) => void
}): Promise<ShortRunsResults> {
  const scenario = ioScenario()
  const systems = [...(options.systems ?? SHORT_RUN_SYSTEMS)]
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const warmupMs = 400
  const runs: ShortRun[] = []
  const most = Math.max(...options.loads.map((l) => l.runs))
  // Interleaved: run 1 of every system and load, then run 2, so a noisy minute spreads over all rows.
  for (let run = 1; run <= most; run++) {
    for (const { multiple, runs: count } of options.loads) {
      if (run > count) continue
      for (const system of systems) {
        const phase = await runPhase({ system, scenario, multiple, durationMs: options.durationMs, warmupMs })
        const limits = phase.limitSeries.map((s) => s[1]).sort((a, b) => a - b)
        const result: ShortRun = {
          system,
          multiple,
          run,
          goodputPct: round(phase.goodputPct, 1),
          p99Ms: round(phase.load.p99Ms, 1),
          status503: phase.load.status503WithRetryAfter + phase.load.status503NoRetryAfter,
          timeouts: phase.load.timeouts,
          rejections: phase.rejections ?? {},
          limit: [limits[0] ?? 0, limits[Math.floor(limits.length / 2)] ?? 0, limits.at(-1) ?? 0],
          probes: findProbes(phase),
          perSecondPct: phase.load.perSecond
            .slice(0, Math.ceil(options.durationMs / 1000))
            .map((s) => round((s.okInTime / scenario.capacity) * 100)),
          meanHoldMs: round(phase.meanHoldMs, 2),
          serverCpuPct: round(phase.serverCpuPct, 1),
          othersCpuPct: round(phase.othersCpuPct, 1),
        }
        runs.push(result)
        options.log(
          `  run ${run}, ${system} @${multiple}×: goodput ${result.goodputPct}%, p99 ${result.p99Ms} ms, 503 ${result.status503} (${Object.entries(
            result.rejections,
          )
            .map(([r, n]) => `${r} ${n}`)
            .join(
              ', ',
            )}), timeouts ${result.timeouts}, limit ${result.limit.join('/')}, hold ${result.meanHoldMs} ms, per second ${result.perSecondPct.join(' ')}, probes ${result.probes.map((p) => `${p.atMs} ms ${p.from}→${p.to} for ${p.lastedMs} ms, ${p.rejectedAround} rejected`).join('; ')}, CPU server ${result.serverCpuPct}% others ${result.othersCpuPct}%`,
        )
      }
    }
  }
  return {
    scenario,
    durationMs: options.durationMs,
    warmupMs,
    startedAt,
    command: options.command,
    revision: options.revision,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    systems,
    loads: options.loads,
    runs,
  }
}

const pct = (x: number): string => x.toFixed(1)

/** The report's section: every run of every row, then the probes of the row's worst run. */
export function shortRunsSection(r: ShortRunsResults, heading: string): string {
  const out: string[] = [`## ${heading}`, '']
  out.push(
    `What a user sees in their first minute: \`backpressure()\` with no options, on a fresh server each run, ${r.durationMs / 1000} s of open-loop load after a ${r.warmupMs} ms warm-up at half of C (P = ${r.scenario.poolSize}, S = ${r.scenario.queryMs} ms, C = ${r.scenario.capacity} req/s, ${r.scenario.deadlineMs} ms deadline). Runs are interleaved (run 1 of every row, then run 2, …) and every one is shown. Goodput is 2xx within the deadline per second as % of C; "503 by reason" sums the runs' rejections by the controller's reason; "hold" is the mean time a query held its pool connection (10 ms plus how late the server's event loop read the answer: above 10 ms the pool itself serves less than C). Measured ${r.startedAt} (load average ${r.loadavgStart.join(' / ')} at start, ${r.loadavgEnd.join(' / ')} at end), code at ${r.revision}: \`${r.command}\`.`,
  )
  out.push('')
  out.push(
    '| system | load | goodput % of C, every run | worst | p99 of 2xx, ms (worst) | 503 by reason | timeouts | hold, ms | probes in the run |',
  )
  out.push('|---|---:|---|---:|---:|---|---:|---:|---:|')
  for (const { multiple } of r.loads) {
    for (const system of r.systems) {
      const runs = r.runs.filter((x) => x.system === system && x.multiple === multiple)
      if (runs.length === 0) continue
      const reasons: Record<string, number> = {}
      for (const run of runs)
        for (const [k, n] of Object.entries(run.rejections)) reasons[k] = (reasons[k] ?? 0) + n
      const reasonText = Object.entries(reasons)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
      out.push(
        `| ${system} | ${multiple}× | ${runs.map((x) => pct(x.goodputPct)).join(', ')} | ${pct(Math.min(...runs.map((x) => x.goodputPct)))} | ${Math.max(...runs.map((x) => x.p99Ms)).toFixed(0)} | ${reasonText || '0'} | ${runs.reduce((a, x) => a + x.timeouts, 0)} | ${Math.min(...runs.map((x) => x.meanHoldMs)).toFixed(2)}–${Math.max(...runs.map((x) => x.meanHoldMs)).toFixed(2)} | ${runs.map((x) => x.probes.length).join(', ')} |`,
      )
    }
  }
  out.push('')
  const verdicts: string[] = []
  for (const system of r.systems) {
    const over = r.runs.filter((x) => x.system === system && x.multiple > 1)
    const under = r.runs.filter((x) => x.system === system && x.multiple <= 1)
    const worst = over.length === 0 ? undefined : Math.min(...over.map((x) => x.goodputPct))
    const p99 = over.length === 0 ? undefined : Math.max(...over.map((x) => x.p99Ms))
    const falseRejections = under.reduce((a, x) => a + x.status503, 0)
    const met = worst !== undefined && worst >= 99 && p99 !== undefined && p99 <= 60 && falseRejections === 0
    verdicts.push(
      `${system}: worst overloaded run ${worst === undefined ? '–' : pct(worst)}% of C, worst p99 ${p99 === undefined ? '–' : p99.toFixed(0)} ms, ${falseRejections} rejections at or below C — ${met ? 'met' : '**missed**'}`,
    )
  }
  out.push(
    `Target: every run at 2× and 5× at ≥ 99% of C with p99 ≤ 60 ms, and 0 rejections at 0.9× and 1×. ${verdicts.join('; ')}.`,
  )
  out.push('')
  out.push(
    "The probes of the worst run of each overloaded row: when the limit dropped to re-measure its baseline (ms after the load began), from and to what, for how long, and 100 ms by 100 ms around it the limit, the permits in flight, the queue and the rejections in those 100 ms (at 2× about 40 of every 100 ms are shed whatever happens; more than that is the probe's cost). The per-second line is the run's goodput each second.",
  )
  out.push('')
  for (const { multiple } of r.loads) {
    if (multiple <= 1) continue
    for (const system of r.systems) {
      const runs = r.runs.filter((x) => x.system === system && x.multiple === multiple)
      if (runs.length === 0) continue
      const worst = runs.reduce((a, b) => (b.goodputPct < a.goodputPct ? b : a))
      out.push(
        `- **${system} at ${multiple}×, run ${worst.run}** (${pct(worst.goodputPct)}%): per second ${worst.perSecondPct.join(' ')}; limit ${worst.limit.join(' / ')} (min / median / max)`,
      )
      for (const p of worst.probes) {
        out.push(
          `  - probe at ${p.atMs} ms, ${p.from} → ${p.to} for ${p.lastedMs} ms; [limit, in flight, queue, rejected]: ${p.trace.map((t) => `${t[0]}: ${t[1]}, ${t[2]}, ${t[3]}, ${t[4]}`).join(' · ')}`,
        )
      }
    }
  }
  out.push('')
  return out.join('\n')
}
