/**
 * The fleet tiers' sections of the report: the simulation (many instances, one shared pool) and the
 * three real instances behind a real HAProxy.
 */
import type { FleetResults } from './fleet.js'
import type { FleetJoinResults } from './fleet-join.js'
import type { FleetSimResults } from './fleet-sim.js'

export const FLEET_SIM_HEADING = 'Fleet simulation: per-instance limits sharing one pool'

const pct = (v: number): string => `${(v * 100).toFixed(1)}%`

export function fleetSimSection(sim: FleetSimResults): string {
  const out: string[] = []
  out.push(`## ${FLEET_SIM_HEADING}`)
  out.push('')
  out.push(
    `N instances, each with its own controller, behind a round-robin balancer, in front of one shared simulated pool of P = 4N connections (${sim.serviceMs} ms per query, ±20%; queries wait for a connection in FIFO), on a manual clock: deterministic, no real time. Goodput is 2xx within ${sim.deadlineMs} ms as a share of the pool's capacity in force; Σ limits is the mean of the instances' limits summed, over P; Jain's index is over the instances' goodput (1 = equal shares); the pool's queue is how many queries wait for a connection. Targets: Σ limits near P, goodput ≥ 99%, Jain ≥ 0.9, joining or leaving does not queue the pool. "aimd 15 ms" is AIMD on a 15 ms latency target, for reference; "default, shared baseline" is the default limit with the fleet's baseline shared (\`maxConcurrency: { sharedBaseline }\`, opt-in: RedisSharedBaseline across processes). Measured ${sim.startedAt.slice(0, 10)} in ${sim.durationS} s${sim.revision === undefined ? '' : `, code at ${sim.revision}`}.`,
  )
  out.push('')
  out.push(
    '| limit | scenario | N | P | load | window | goodput | Σ limits / P (max) | in flight / P | Jain | pool queue mean (max) | longest pool wait |',
  )
  out.push('|---|---|---:|---:|---:|---|---:|---|---:|---:|---|---:|')
  for (const r of sim.rows) {
    const f = r.figures
    out.push(
      `| ${r.limit} | ${r.scenario} | ${r.instances} | ${r.connections} | ${r.multiple}× | ${r.window} | ${pct(f.goodput)} | ${f.sumLimitsOverP.toFixed(2)} (${f.sumLimitsMax}) | ${f.inFlightOverP.toFixed(2)} | ${f.jain.toFixed(3)} | ${f.poolQueueMean.toFixed(1)} (${f.poolQueueMax}) | ${f.poolWaitMaxMs.toFixed(0)} ms |`,
    )
  }
  out.push('')
  const sweeps = sim.seedSweeps ?? []
  if (sweeps.length > 0) {
    out.push(
      `Each run above is one draw of the simulation's randomness (service times, the controllers' own). Jain's index of the steady fleets over many runs, each with draws of its own, 8 s read over seconds ${sweeps[0]!.window[0]}–${sweeps[0]!.window[1]}:`,
    )
    out.push('')
    out.push('| limit | N | load | runs | worst | mean | runs below 0.9 |')
    out.push('|---|---:|---:|---:|---:|---:|---:|')
    for (const w of sweeps) {
      const mean = w.jains.reduce((a, j) => a + j, 0) / w.jains.length
      out.push(
        `| ${w.limit} | ${w.instances} | ${w.multiple}× | ${w.jains.length} | ${Math.min(...w.jains).toFixed(3)} | ${mean.toFixed(3)} | ${w.jains.filter((j) => j < 0.9).length} |`,
      )
    }
    out.push('')
  }
  const joins = sim.joinSweeps ?? []
  if (joins.length > 0) {
    out.push(
      `Five instances joining a fleet of ten (P = 40) at 8 s and leaving at 16 s, over as many runs: per run, the lowest Jain's index among the windows ${joins[0]!.windows.map(([a, b]) => `${a}–${b}`).join(', ')} s, and the highest Σ limits / P and pool wait among them.`,
    )
    out.push('')
    out.push(
      '| limit | load | runs | lowest Jain: worst | mean | runs below 0.9 | Σ limits / P, highest | pool wait, longest |',
    )
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|')
    for (const j of joins) {
      const mean = j.worstJains.reduce((a, v) => a + v, 0) / j.worstJains.length
      out.push(
        `| ${j.limit} | ${j.multiple}× | ${j.worstJains.length} | ${Math.min(...j.worstJains).toFixed(3)} | ${mean.toFixed(3)} | ${j.worstJains.filter((v) => v < 0.9).length} | ${Math.max(...j.maxSumLimitsOverP).toFixed(2)} | ${Math.max(...j.maxPoolWaitMs).toFixed(0)} ms |`,
      )
    }
    out.push('')
  }
  return out.join('\n')
}

/** The fleet simulation's fairness target, read from its seed sweeps: Jain's index ≥ 0.9 in every run. */
export function fleetSimTarget(sim: FleetSimResults | undefined): { passes: boolean[]; ours: string } {
  const sweeps = sim?.seedSweeps ?? []
  if (sweeps.length === 0) return { passes: [], ours: 'not run' }
  const all = sweeps.flatMap((w) => w.jains)
  const below = all.filter((j) => j < 0.9).length
  return {
    passes: all.map((j) => j >= 0.9),
    ours: `${below} of ${all.length} runs below 0.9 (worst ${Math.min(...all).toFixed(3)}); N = ${[...new Set(sweeps.map((w) => w.instances))].join(', ')} at ${[...new Set(sweeps.map((w) => `${w.multiple}×`))].join(' and ')}, ${sweeps[0]!.jains.length} runs each`,
  }
}

export const FLEET_HEADING = 'Fleet behind HAProxy: three instances, one slower'

export function fleetSection(fleet: FleetResults): string {
  const out: string[] = []
  out.push(`## ${FLEET_HEADING}`)
  out.push('')
  out.push(
    `Three real instances (Express with \`backpressure()\` given no options, or a fixed limit of the instance's pool size; each its own process with its own simulated pool of ${fleet.pools.join(', ')} connections × ${fleet.queryMs} ms: ${fleet.capacity} req/s summed, the last one half the others) behind a real HAProxy (${fleet.haproxy}), open-loop load through HAProxy at multiples of the summed capacity, ${fleet.deadlineMs} ms client deadline, ${fleet.durationMs / 1000} s per phase, the first ${fleet.warmupS} s left out of goodput. Each phase starts fresh instances and a fresh HAProxy; ${fleet.runs} runs, interleaved, every run listed. "Slow instance" is its share of the requests that reached an instance (retries included) and of those served. Measured ${fleet.startedAt.slice(0, 16).replace('T', ' ')} UTC, load average ${fleet.loadavgStart.join(' / ')} at the start and ${fleet.loadavgEnd.join(' / ')} at the end: \`${fleet.command}\`.`,
  )
  out.push('')
  out.push(
    "| instances' limit | HAProxy set-up | load | goodput, % of summed capacity (each run) | slow instance: traffic / served (each run) | p99 (ms, each run) | 503 / timeouts (each run) |",
  )
  out.push('|---|---|---:|---|---|---|---|')
  const variants = [...new Set(fleet.phases.map((p) => p.variant))]
  const multiples = [...new Set(fleet.phases.map((p) => p.multiple))]
  const limits = [...new Set(fleet.phases.map((p) => p.limit))]
  for (const limit of limits)
    for (const multiple of multiples) {
      for (const variant of variants) {
        const runs = fleet.phases.filter(
          (p) => p.limit === limit && p.variant === variant && p.multiple === multiple,
        )
        if (runs.length === 0) continue
        out.push(
          `| ${limit === 'fixed' ? "fixed: the pool's size, queue 2× that" : 'default (no options)'} | ${variant} | ${multiple}× | ${runs.map((r) => `${r.goodputPct}%`).join(', ')} | ${runs.map((r) => `${r.slowTrafficPct}% / ${r.slowServedPct}%`).join(', ')} | ${runs.map((r) => r.p99Ms).join(', ')} | ${runs.map((r) => `${r.shed} / ${r.timeouts}`).join(', ')} |`,
        )
      }
    }
  out.push('')
  return out.join('\n')
}

/** The targets-table row: goodput with agent feedback, every run and load, per instances' limit. */
export function fleetTarget(fleet: FleetResults | undefined): {
  met: boolean | undefined
  ours: string
  tuned: string
} {
  const agent = (fleet?.phases ?? []).filter((p) => p.variant === 'agent feedback')
  if (agent.length === 0) return { met: undefined, ours: 'not run', tuned: '' }
  const multiples = [...new Set(agent.map((p) => p.multiple))]
  const cell = (limit: string): string =>
    multiples
      .map((m) => {
        const runs = agent.filter((p) => p.limit === limit && p.multiple === m)
        return `${m}× ${runs.map((p) => `${p.goodputPct}%`).join(', ')}`
      })
      .join('; ')
  return {
    met: agent.filter((p) => p.limit === 'default').every((p) => p.goodputPct >= 95),
    ours: cell('default'),
    tuned: cell('fixed'),
  }
}

export const FLEET_JOIN_HEADING = 'Fleet joining: real instances sharing one database'

export function fleetJoinSection(join: FleetJoinResults): string {
  const out: string[] = []
  out.push(`## ${FLEET_JOIN_HEADING}`)
  out.push('')
  out.push(
    `${join.instances} real instances (Express, each its own process, \`backpressure()\` with no options, or with \`maxConcurrency: { sharedBaseline }\` through a real Redis) in front of one database process (a pool of ${join.poolSize} connections × ${join.queryMs} ms: ${join.capacity} req/s, queries waiting for a connection in FIFO; each instance one TCP connection to it), behind a real HAProxy (round-robin); open-loop load through HAProxy, ${join.deadlineMs} ms client deadline, ${join.durationS} s per run. At ${join.joinAtS} s HAProxy enables ${join.joiners} more instances, started with the others but sent nothing until then (cold limits). Jain's index is over what each instance served in the window (1 = equal shares); goodput is 2xx within the deadline over the database's capacity; Σ limits is the instances' limits summed, over the pool; pool wait is how long queries waited for a connection. Runs interleaved, every run listed. Measured ${join.startedAt.slice(0, 16).replace('T', ' ')} UTC, load average ${join.loadavgStart.join(' / ')} at the start and ${join.loadavgEnd.join(' / ')} at the end: \`${join.command}\`.`,
  )
  out.push('')
  out.push(
    "| baselines | load | window | Jain (each run) | goodput % (each run) | Σ limits / P (each run) | pool wait mean / max, ms (each run) | instances' baselines at the window's end, lowest–highest ms (each run) |",
  )
  out.push('|---|---:|---|---|---|---|---|---|')
  const multiples = [...new Set(join.runs.map((r) => r.multiple))]
  const variants = [...new Set(join.runs.map((r) => r.variant))]
  for (const multiple of multiples)
    for (const variant of variants) {
      const runs = join.runs.filter((r) => r.multiple === multiple && r.variant === variant)
      for (const [i, w] of (runs[0]?.windows ?? []).entries()) {
        const each = runs.map((r) => r.windows[i]!)
        out.push(
          `| ${variant} | ${multiple}× | ${w.name}, s ${w.from}–${w.to} | ${each.map((e) => e.jain.toFixed(3)).join(', ')} | ${each.map((e) => e.goodputPct).join(', ')} | ${each.map((e) => e.sumLimitsOverP.toFixed(2)).join(', ')} | ${each.map((e) => `${e.poolWaitMeanMs} / ${e.poolWaitMaxMs}`).join(', ')} | ${each.map(baselineRange).join(', ')} |`,
        )
      }
    }
  out.push('')
  return out.join('\n')
}

function baselineRange(w: { baselinesMs: readonly (number | null)[] }): string {
  const known = w.baselinesMs.filter((b): b is number => b !== null)
  if (known.length === 0) return '–'
  const low = Math.min(...known)
  const high = Math.max(...known)
  return low === high ? `${low}` : `${low}–${high}`
}
