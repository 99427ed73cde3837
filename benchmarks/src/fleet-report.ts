/**
 * The fleet tiers' sections of the report: the simulation (many instances, one shared pool) and the
 * three real instances behind a real HAProxy.
 */
import type { FleetSimResults } from './fleet-sim.js'

export const FLEET_SIM_HEADING = 'Fleet simulation: per-instance limits sharing one pool'

const pct = (v: number): string => `${(v * 100).toFixed(1)}%`

export function fleetSimSection(sim: FleetSimResults): string {
  const out: string[] = []
  out.push(`## ${FLEET_SIM_HEADING}`)
  out.push('')
  out.push(
    `N instances, each with its own controller, behind a round-robin balancer, in front of one shared simulated pool of P = 4N connections (${sim.serviceMs} ms per query, ±20%; queries wait for a connection in FIFO), on a manual clock: deterministic, no real time. Goodput is 2xx within ${sim.deadlineMs} ms as a share of the pool's capacity in force; Σ limits is the mean of the instances' limits summed, over P; Jain's index is over the instances' goodput (1 = equal shares); the pool's queue is how many queries wait for a connection. Targets: Σ limits near P, goodput ≥ 99%, Jain ≥ 0.9, joining or leaving does not queue the pool. "aimd 15 ms" is AIMD on a 15 ms latency target, for reference. Measured ${sim.startedAt.slice(0, 10)} in ${sim.durationS} s.`,
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
  return out.join('\n')
}
