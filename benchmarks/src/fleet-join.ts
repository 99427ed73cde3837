/**
 * The fleet-join tier: real instances (processes) sharing one database process, behind a real
 * HAProxy, two of them joining a busy fleet of four. Each instance runs `backpressure()` with no
 * options (each measures its own baseline) or with the fleet's baseline shared through a real Redis
 * (`RedisSharedBaseline`). Measured per window: Jain's fairness index over what each instance served,
 * goodput as a share of the database's capacity, Σ limits over the pool's connections, and how long
 * queries waited for a connection. The simulation (fleet-sim.ts) asks the same on a manual clock; this
 * asks it of real processes, real sockets and real timers.
 */
import { randomUUID } from 'node:crypto'
import { loadavg } from 'node:os'
import { globalSection, type Haproxy, startHaproxy } from '../../packages/conformance/src/haproxy.js'
import { type RedisServer, startRedis } from '../../packages/redis/test/redis-server.js'
import { type BenchChild, startChild } from './child.js'
import type { FleetDbConfig, FleetDbMessage } from './fleet-db.js'
import type { FleetJoinInstanceConfig, FleetJoinInstanceMessage } from './fleet-join-instance.js'
import { jain } from './fleet-sim.js'
import { runLoad } from './load.js'
import { round } from './stats.js'

export const FLEET_JOIN_VARIANTS = ['own baselines', 'shared baseline'] as const
export type FleetJoinVariant = (typeof FLEET_JOIN_VARIANTS)[number]

export interface FleetJoinWindow {
  readonly name: string
  /** Seconds since the load began, [from, to). */
  readonly from: number
  readonly to: number
  readonly instances: number
  readonly jain: number
  readonly goodputPct: number
  readonly sumLimitsOverP: number
  readonly poolWaitMeanMs: number
  readonly poolWaitMaxMs: number
  /** What each instance served in the window, per second. */
  readonly servedPerS: number[]
  /** Each instance's baseline (its limit's no-load time, ms) at the window's end: null before it has one. */
  readonly baselinesMs: (number | null)[]
}

export interface FleetJoinRun {
  readonly variant: FleetJoinVariant
  readonly multiple: number
  readonly run: number
  readonly achievedRate: number
  readonly p99Ms: number
  readonly shed: number
  readonly timeouts: number
  readonly windows: FleetJoinWindow[]
}

export interface FleetJoinResults {
  readonly poolSize: number
  readonly queryMs: number
  readonly capacity: number
  readonly instances: number
  readonly joiners: number
  readonly joinAtS: number
  readonly durationS: number
  readonly deadlineMs: number
  readonly startedAt: string
  readonly command: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly runs: FleetJoinRun[]
}

type Instance = BenchChild<
  Extract<FleetJoinInstanceMessage, { type: 'ready' }>,
  Extract<FleetJoinInstanceMessage, { type: 'report' }>
>
type Db = BenchChild<Extract<FleetDbMessage, { type: 'ready' }>, Extract<FleetDbMessage, { type: 'report' }>>

interface Sample {
  readonly t: number
  readonly served: number[]
  readonly limits: number[]
  /** Infinity (null over IPC) before an instance has a baseline. */
  readonly baselines: number[]
  readonly queries: number
  readonly waitSumMs: number
  readonly waitMaxMs: number
}

export async function runFleetJoin({
  poolSize = 16,
  queryMs = 25,
  instances = 4,
  joiners = 2,
  joinAtS = 12,
  durationS = 24,
  deadlineMs = 1000,
  multiples = [2],
  runs = 3,
  command = '',
  log = console.log,
}: {
  poolSize?: number
  queryMs?: number
  instances?: number
  joiners?: number
  joinAtS?: number
  durationS?: number
  deadlineMs?: number
  multiples?: number[]
  runs?: number
  command?: string
  log?: (line: string) => void
} = {}): Promise<FleetJoinResults> {
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const capacity = (poolSize * 1000) / queryMs
  const results: FleetJoinRun[] = []
  const redis: RedisServer = await startRedis()
  try {
    // Interleaved: each variant once per round, so drift on a shared machine hits both alike.
    for (let run = 1; run <= runs; run++) {
      for (const multiple of multiples) {
        for (const variant of FLEET_JOIN_VARIANTS) {
          const result = await oneRun({ variant, multiple, run, redis })
          results.push(result)
          log(
            `  run ${run}, ${multiple}×, ${variant}: ${result.windows
              .map(
                (w) =>
                  `${w.name} (s ${w.from}–${w.to}) Jain ${w.jain}, goodput ${w.goodputPct}%, Σ limits ${w.sumLimitsOverP}×P, pool wait mean ${w.poolWaitMeanMs} max ${w.poolWaitMaxMs} ms, served/s ${w.servedPerS.join('/')}, baselines ${w.baselinesMs.map((b) => b ?? '-').join('/')} ms`,
              )
              .join('; ')}; p99 ${result.p99Ms} ms, 503 ${result.shed}, timeouts ${result.timeouts}`,
          )
        }
      }
    }
  } finally {
    await redis.stop()
  }
  return {
    poolSize,
    queryMs,
    capacity,
    instances,
    joiners,
    joinAtS,
    durationS,
    deadlineMs,
    startedAt,
    command,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    runs: results,
  }

  async function oneRun({
    variant,
    multiple,
    run,
    redis,
  }: {
    variant: FleetJoinVariant
    multiple: number
    run: number
    redis: RedisServer
  }): Promise<FleetJoinRun> {
    const db: Db = await startChild(
      './fleet-db.ts',
      { size: poolSize, queryMs } satisfies FleetDbConfig,
      'fleet db',
    )
    const key = `bp:baseline:${randomUUID()}`
    const config: FleetJoinInstanceConfig = {
      dbPort: db.ready.port,
      ...(variant === 'shared baseline' ? { shared: { redisPort: redis.port, key } } : {}),
    }
    const fleet: Instance[] = []
    let proxy: Haproxy | undefined
    try {
      // Every instance starts now; the joiners get no traffic (their limits measure nothing) until
      // HAProxy enables them: to the limit, a process that has served nothing is a cold one.
      for (let i = 0; i < instances + joiners; i++)
        fleet.push(await startChild('./fleet-join-instance.ts', config, 'fleet instance'))
      proxy = await startHaproxy(
        (port, socket) => `${globalSection(socket)}
frontend fe
  bind 127.0.0.1:${port}
  default_backend app

backend app
  balance roundrobin
${fleet.map((f, i) => `  server s${i} 127.0.0.1:${f.ready.port} weight 100${i >= instances ? ' disabled' : ''}`).join('\n')}
`,
      )
      const samples: Sample[] = []
      const began = performance.now()
      const sample = async () => {
        const [reports, pool] = await Promise.all([Promise.all(fleet.map((f) => f.report())), db.report()])
        samples.push({
          t: (performance.now() - began) / 1000,
          served: reports.map((r) => r.served),
          limits: reports.map((r) => r.limit),
          baselines: reports.map((r) => r.baselineMs ?? Number.POSITIVE_INFINITY),
          queries: pool.queries,
          waitSumMs: pool.waitSumMs,
          waitMaxMs: pool.waitMaxMs,
        })
      }
      let sampling = Promise.resolve()
      const sampler = setInterval(() => {
        sampling = sampling.then(sample)
      }, 250)
      const target = proxy
      const join = setTimeout(() => {
        for (let i = instances; i < instances + joiners; i++) void target.command(`enable server app/s${i}`)
      }, joinAtS * 1000)
      const load = await runLoad({
        origin: proxy.url,
        path: '/work',
        rate: multiple * capacity,
        durationMs: durationS * 1000,
        deadlineMs,
      })
      clearInterval(sampler)
      clearTimeout(join)
      await sampling
      const windows: [string, number, number, number][] = [
        [`${instances} instances`, joinAtS / 2, joinAtS, instances],
        [`${joiners} join`, joinAtS, joinAtS + 2, instances + joiners],
        [`${instances + joiners} instances`, joinAtS + 3, durationS, instances + joiners],
      ]
      return {
        variant,
        multiple,
        run,
        achievedRate: round(load.achievedRate),
        p99Ms: round(load.p99Ms),
        shed: load.status503WithRetryAfter + load.status503NoRetryAfter,
        timeouts: load.timeouts,
        windows: windows.map(([name, from, to, n]) => {
          const inWindow = samples.filter((s) => s.t >= from && s.t < to)
          const first = samples.filter((s) => s.t < from).at(-1) ?? inWindow[0]!
          const last = inWindow.at(-1)!
          const seconds = last.t - first.t
          const servedPerS = Array.from(
            { length: n },
            (_, i) => (last.served[i]! - first.served[i]!) / seconds,
          )
          const okInTime = load.perSecond
            .filter((s) => s.second >= from && s.second < to)
            .reduce((a, s) => a + s.okInTime, 0)
          const queries = inWindow.reduce((a, s) => a + s.queries, 0)
          return {
            name,
            from,
            to,
            instances: n,
            jain: round(jain(servedPerS), 3),
            goodputPct: round((100 * okInTime) / ((to - from) * capacity), 1),
            sumLimitsOverP: round(
              inWindow.reduce((a, s) => a + s.limits.slice(0, n).reduce((b, l) => b + l, 0), 0) /
                inWindow.length /
                poolSize,
              2,
            ),
            poolWaitMeanMs: round(inWindow.reduce((a, s) => a + s.waitSumMs, 0) / Math.max(1, queries), 1),
            poolWaitMaxMs: round(Math.max(0, ...inWindow.map((s) => s.waitMaxMs)), 1),
            servedPerS: servedPerS.map((v) => round(v)),
            baselinesMs: last.baselines.slice(0, n).map((b) => (Number.isFinite(b) ? round(b, 1) : null)),
          }
        }),
      }
    } finally {
      await proxy?.stop()
      await Promise.all(fleet.map((f) => f.kill()))
      await db.kill()
    }
  }
}
