/**
 * The CPU-bound route behind fixed-rate gates, beside ours (the `cpu-ceiling` tier in bench.ts, the
 * gates in systems.ts). A gate admits a share of C known in advance — what one would configure
 * knowing the capacity (a token bucket sized to it) — and rejects the rest with a prebuilt 503 before
 * the framework. Built to find the most any admission serves through each framework here, as the
 * DB-bound ceiling does; it turned out to be no ceiling: a fixed rate cannot follow a fresh process
 * warming up or a loop whose turns lengthen (each turn reads what arrived during the last, rejections
 * cost CPU too), so its p99 climbs where an admission watching the loop keeps it. The report shows
 * every run and the best gate whose p99 stayed within the target, beside ours.
 */
import type { BenchResults, CompactPhase, MacroPhase } from './bench.js'
import { mean, median } from './stats.js'
import { labelOf as label } from './systems.js'

/** The CPU-bound tier's latency target for accepted requests (issue #13). */
export const CPU_P99_TARGET_MS = 100

const FRAMEWORKS = ['express', 'fastify', 'koa'] as const
const NAMES: Record<(typeof FRAMEWORKS)[number], string> = {
  express: 'Express',
  fastify: 'Fastify',
  koa: 'Koa',
}

const fmt = (value: number, digits = 1): string => value.toFixed(digits)
const runOf = (p: CompactPhase): number => (p as MacroPhase).run ?? 1
const rejected = (p: CompactPhase): number => p.load.status503WithRetryAfter + p.load.status503NoRetryAfter

interface Row {
  readonly system: string
  readonly goodput: number[]
  readonly p99: number[]
  readonly rejected: number[]
  readonly timeouts: number[]
}

function rows(phases: readonly CompactPhase[], multiple: number): Row[] {
  const out: Row[] = []
  for (const system of [...new Set(phases.map((p) => p.system))]) {
    const runs = phases
      .filter((p) => p.system === system && p.multiple === multiple)
      .sort((a, b) => runOf(a) - runOf(b))
    if (runs.length === 0) continue
    out.push({
      system,
      goodput: runs.map((p) => p.goodputPct),
      p99: runs.map((p) => p.load.p99Ms),
      rejected: runs.map(rejected),
      timeouts: runs.map((p) => p.load.timeouts),
    })
  }
  return out
}

/**
 * Per framework and load: the best gate (highest mean goodput) whose p99 stayed within the target in
 * most runs (its median run's: one run on a busy machine should not disqualify a gate), beside ours.
 * No gate where none kept it.
 */
export function bestGates(
  phases: readonly CompactPhase[],
  multiple: number,
): { framework: string; gate?: Row; ours?: Row }[] {
  const all = rows(phases, multiple)
  return FRAMEWORKS.map((framework) => {
    const gates = all.filter(
      (r) => r.system.startsWith(`${framework}-rate-gate-`) && median(r.p99) <= CPU_P99_TARGET_MS,
    )
    const gate = gates.sort((a, b) => mean(b.goodput) - mean(a.goodput))[0]
    const ours = all.find((r) => r.system === `ours-${framework}`)
    return {
      framework: NAMES[framework],
      ...(gate === undefined ? {} : { gate }),
      ...(ours === undefined ? {} : { ours }),
    }
  }).filter((b) => b.gate !== undefined || b.ours !== undefined)
}

export function cpuCeilingSection(results: BenchResults): string | undefined {
  const tier = results.cpuCeiling
  if (tier === undefined || tier.phases.length === 0) return undefined
  const lines: string[] = []
  lines.push('### Fixed-rate gates beside ours')
  lines.push('')
  lines.push(
    `Each framework behind a token bucket admitting a fixed share of C (${tier.scenario.capacity} req/s; ${tier.calibration}), refilled continuously and holding 30 ms of it, decided in node:http's request listener with a prebuilt 503 for the rest: the rate known in advance, which an adaptive controller has to find, and the cheapest rejection there is. Built as a ceiling (the most any admission serves through that framework), it is none: a fixed rate does not follow a fresh process warming up or a loop whose turns lengthen (each turn reads what arrived during the last, and rejections cost CPU too), so its accepted requests wait where ours shed. Below each table, the best gate whose accepted requests kept p99 ≤ ${CPU_P99_TARGET_MS} ms in its median run, beside ours. The same connected clients and ${tier.durationMs / 1000} s phases as above; fresh server each phase, ${tier.runs} runs interleaved. Measured ${tier.startedAt} (load average ${tier.loadavgStart.join(' / ')} at start, ${tier.loadavgEnd.join(' / ')} at end), code at ${tier.revision}: \`${tier.command}\`.`,
  )
  lines.push('')
  for (const multiple of tier.multiples) {
    lines.push(`At ${multiple}× C:`)
    lines.push('')
    lines.push('| system | goodput % of C, each run | mean | p99 ms, each run | 503s, each run | timeouts |')
    lines.push('|---|---|---:|---|---|---:|')
    for (const r of rows(tier.phases, multiple)) {
      lines.push(
        `| ${label(r.system)} | ${r.goodput.map((g) => fmt(g)).join(', ')} | ${fmt(mean(r.goodput))} | ${r.p99.map((p) => fmt(p, 0)).join(', ')} | ${r.rejected.join(', ')} | ${r.timeouts.reduce((a, b) => a + b, 0)} |`,
      )
    }
    lines.push('')
    const best = bestGates(tier.phases, multiple)
    const summary = best.map(
      ({ framework, gate, ours }) =>
        `${framework}: ${gate === undefined ? `no gate kept p99 ≤ ${CPU_P99_TARGET_MS} ms in its median run` : `best gate within it ${fmt(mean(gate.goodput))}% (${label(gate.system)})`}${ours === undefined ? '' : `, ours ${fmt(mean(ours.goodput))}%${gate === undefined ? '' : ` (${fmt(mean(ours.goodput) - mean(gate.goodput))} points)`}`}`,
    )
    lines.push(`${summary.join('; ')}.`)
    lines.push('')
  }
  return lines.join('\n')
}
