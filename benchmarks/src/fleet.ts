/**
 * The HAProxy fleet tier: three real instances (processes), one with half the pool of the others,
 * behind a real HAProxy, under open-loop load through HAProxy at multiples of their summed capacity.
 * Compared: plain round-robin, round-robin with `retry-on 503`, and agent feedback (each instance's
 * agent reports the free share of its limit as a weight); each with `backpressure()` given no options
 * and with a fixed limit of each instance's pool size. Measured: fleet goodput as a share of the
 * summed capacity, and the slow instance's share of the traffic (requests that reached it, retries
 * included) and of the answers served.
 */
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { globalSection, type Haproxy, startHaproxy } from '../../packages/conformance/src/haproxy.js'
import { startChild } from './child.js'
import type { FleetInstanceConfig, FleetInstanceMessage, FleetLimit } from './fleet-instance.js'
import { runLoad } from './load.js'
import { round } from './stats.js'

export const FLEET_VARIANTS = [
  'round-robin',
  'retry-on 503',
  'agent feedback',
  'agent + retry-on 503',
] as const
export type FleetVariant = (typeof FLEET_VARIANTS)[number]

export interface FleetPhaseResult {
  readonly limit: FleetLimit
  readonly variant: FleetVariant
  readonly multiple: number
  readonly run: number
  readonly offered: number
  readonly achievedRate: number
  /** 2xx within the deadline per second, over the measured window, as a share of the summed capacity. */
  readonly goodputPct: number
  readonly p99Ms: number
  /** Answers the client saw: 503 (ours or HAProxy's), timeouts, anything else. */
  readonly shed: number
  readonly timeouts: number
  readonly other: number
  /** /work requests that reached each instance (retries included) and that each served. */
  readonly arrived: number[]
  readonly served: number[]
  /** The slow instance's share of requests reaching instances, and of requests served. */
  readonly slowTrafficPct: number
  readonly slowServedPct: number
  readonly limits: number[]
}

export interface FleetResults {
  readonly pools: number[]
  readonly queryMs: number
  readonly capacity: number
  readonly deadlineMs: number
  readonly durationMs: number
  /** Seconds at the start of each phase left out of goodput (the limits find the pools). */
  readonly warmupS: number
  readonly runs: number
  readonly limits: readonly FleetLimit[]
  readonly haproxy: string
  readonly startedAt: string
  readonly command: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly phases: FleetPhaseResult[]
}

interface Instance {
  readonly port: number
  readonly agentPort: number
  report(): Promise<{ arrived: number; served: number; limit: number }>
  kill(): Promise<void>
}

async function startInstance(config: FleetInstanceConfig): Promise<Instance> {
  const child = await startChild<
    Extract<FleetInstanceMessage, { type: 'ready' }>,
    Extract<FleetInstanceMessage, { type: 'report' }>
  >('./fleet-instance.ts', config, 'fleet instance')
  return { port: child.ready.port, agentPort: child.ready.agentPort, report: child.report, kill: child.kill }
}

/** The backend section of each variant: what docs/fleet.md recommends, a piece at a time. */
export function backendFor(
  variant: FleetVariant,
  instances: readonly { port: number; agentPort: number }[],
): string {
  const agent = variant === 'agent feedback'
  const retry = variant === 'retry-on 503'
  const lines = ['backend app', '  balance roundrobin']
  if (retry) {
    lines.push(
      '  retry-on 503',
      '  retries 1',
      '  option redispatch 1',
      '  http-request disable-l7-retry if !METH_GET',
    )
  }
  instances.forEach((instance, i) => {
    const feedback = agent ? ` agent-check agent-port ${instance.agentPort} agent-inter 200ms` : ''
    lines.push(`  server s${i} 127.0.0.1:${instance.port} weight 100${feedback}`)
  })
  return `${lines.join('\n')}\n`
}

export async function runFleet({
  pools = [4, 4, 2],
  queryMs = 50,
  deadlineMs = 1000,
  durationMs = 8000,
  warmupS = 2,
  multiples = [2, 5],
  variants = FLEET_VARIANTS,
  limits = ['default', 'fixed'],
  runs = 3,
  command = '',
  log = console.log,
}: {
  pools?: number[]
  queryMs?: number
  deadlineMs?: number
  durationMs?: number
  warmupS?: number
  multiples?: number[]
  variants?: readonly FleetVariant[]
  limits?: readonly FleetLimit[]
  runs?: number
  command?: string
  log?: (line: string) => void
} = {}): Promise<FleetResults> {
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const capacity = pools.reduce((a, p) => a + (p * 1000) / queryMs, 0)
  const slow = pools.indexOf(Math.min(...pools))
  const phases: FleetPhaseResult[] = []
  // Runs interleaved: every variant once per round, so drift on a shared machine hits them alike.
  for (let run = 1; run <= runs; run++) {
    for (const limit of limits) {
      for (const multiple of multiples) {
        for (const variant of variants) {
          const instances = await Promise.all(
            pools.map((poolSize) => startInstance({ poolSize, queryMs, limit })),
          )
          let proxy: Haproxy | undefined
          try {
            proxy = await startHaproxy(
              (port, socket) =>
                `${globalSection(socket)}
frontend fe
  bind 127.0.0.1:${port}
  default_backend app

${backendFor(variant, instances)}`,
            )
            const load = await runLoad({
              origin: proxy.url,
              path: '/work',
              rate: multiple * capacity,
              durationMs,
              deadlineMs,
            })
            const reports = await Promise.all(instances.map((i) => i.report()))
            const measured = load.perSecond.filter((s) => s.second >= warmupS && s.second < durationMs / 1000)
            const okInTime = measured.reduce((a, s) => a + s.okInTime, 0)
            const arrived = reports.map((r) => r.arrived)
            const served = reports.map((r) => r.served)
            const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0)
            const phase: FleetPhaseResult = {
              limit,
              variant,
              multiple,
              run,
              offered: multiple * capacity,
              achievedRate: round(load.achievedRate),
              goodputPct: round((100 * okInTime) / (measured.length * capacity), 1),
              p99Ms: round(load.p99Ms),
              shed: load.status503WithRetryAfter + load.status503NoRetryAfter,
              timeouts: load.timeouts,
              other: load.otherStatus + load.socketErrors,
              arrived,
              served,
              slowTrafficPct: round((100 * (arrived[slow] ?? 0)) / Math.max(1, sum(arrived)), 1),
              slowServedPct: round((100 * (served[slow] ?? 0)) / Math.max(1, sum(served)), 1),
              limits: reports.map((r) => r.limit),
            }
            phases.push(phase)
            log(
              `  run ${run}, ${limit} limit, ${multiple}×, ${variant}: goodput ${phase.goodputPct}% of summed capacity, slow instance ${phase.slowTrafficPct}% of traffic / ${phase.slowServedPct}% of served, p99 ${phase.p99Ms} ms, 503 ${phase.shed}, timeouts ${phase.timeouts}, other ${phase.other}, limits ${phase.limits.join('/')}, sent ${phase.achievedRate}/s`,
            )
          } finally {
            await proxy?.stop()
            await Promise.all(instances.map((i) => i.kill()))
          }
        }
      }
    }
  }
  return {
    pools,
    queryMs,
    capacity,
    deadlineMs,
    durationMs,
    warmupS,
    runs,
    limits,
    haproxy: haproxyVersion(),
    startedAt,
    command,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    phases,
  }
}

function haproxyVersion(): string {
  try {
    return execFileSync('haproxy', ['-v'], { encoding: 'utf8' }).split('\n')[0] ?? ''
  } catch {
    return ''
  }
}
