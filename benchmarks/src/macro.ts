/**
 * Macro tier: real servers (one child process per system and load, so every phase starts cold and
 * nothing carries over) over the simulated database, under open-loop load, measured from outside.
 */
import { type LoadResult, runLoad } from './load.js'
import { cpuNs, machineBusyMs, memory, startServer } from './proc.js'
import type { ChildConfig } from './server-child.js'
import { cov, quantile, round, sleep } from './stats.js'

export interface Scenario {
  readonly poolSize: number
  readonly queryMs: number
  readonly cpuMs: number
  readonly deadlineMs: number
  /** Capacity C in requests per second. */
  readonly capacity: number
  /**
   * Clients already connected when the load begins: as many keep-alive sockets as the load can have
   * requests within a deadline, opened before it (see `LoadOptions.preconnect`). @default false
   */
  readonly connectedClients?: boolean
}

export function ioScenario(poolSize = 4, queryMs = 10, deadlineMs = 1000): Scenario {
  return { poolSize, queryMs, cpuMs: 0, deadlineMs, capacity: (poolSize * 1000) / queryMs }
}

export interface PhaseResult {
  readonly system: string
  readonly multiple: number
  readonly load: LoadResult
  /** 2xx within the deadline that arrived while the load ran, per second, as % of C. */
  readonly goodputPct: number
  readonly serverCpuMs: number
  /** Server CPU as a share of one core over the phase. */
  readonly serverCpuPct: number
  /** The load generator's CPU (this process), and every other process's on the machine, as shares of one core. */
  readonly generatorCpuPct: number
  readonly othersCpuPct: number
  readonly peakRssBytes: number
  /** RSS at the end of the load, and its samples over the phase (every 250 ms). */
  readonly rssSeries: number[]
  readonly queries: number
  readonly departedQueries: number
  /** The most pool connections busy at once (the pool never lets it pass P) and route bodies running at once (see ChildReport). */
  readonly maxPoolBusy: number
  readonly maxRoutes: number
  readonly routesForGone: number
  readonly routesLeftMidway: number
  readonly routesRunning: number
  /** Our controller's books after the phase (null without one): permits released by the abandonment bound, in flight, queued. */
  readonly abandoned: number | null
  readonly inFlightAfter: number | null
  readonly queueDepthAfter: number | null
  /** Mean ms a query held its pool connection: queryMs plus how late the event loop fired its timer. */
  readonly meanHoldMs: number
  readonly limitSeries: [number, number, number, number, number, number, number][]
  /** Our controller's rejections during the load, by reason, and its limit's every change (see ChildReport). */
  readonly rejections: Record<string, number> | null
  readonly limitChanges: [number, number][]
  readonly error?: string
}

export interface PhaseOptions {
  readonly system: string
  readonly scenario: Scenario
  readonly multiple: number
  readonly durationMs: number
  readonly warmupMs?: number
  /** After the load, let the server's route bodies end for up to this long before reading its books. @default 0 */
  readonly drainMs?: number
  readonly step?: ChildConfig['step']
  readonly onProgress?: (info: {
    elapsedMs: number
    sent: number
    okInTime: number
    shed: number
    timeouts: number
    inFlight: number
    rss: number
  }) => void
}

export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const { scenario, multiple } = options
  const config: ChildConfig = {
    system: options.system,
    poolSize: scenario.poolSize,
    queryMs: scenario.queryMs,
    cpuMs: scenario.cpuMs,
    deadlineMs: scenario.deadlineMs,
    capacity: scenario.capacity,
    ...(options.step === undefined ? {} : { step: options.step }),
  }
  const server = await startServer(config)
  try {
    // A short warm-up below capacity so the JIT has compiled the hot paths before anything counts.
    const warmupMs = options.warmupMs ?? 400
    if (warmupMs > 0) {
      await runLoad({
        origin: server.origin,
        path: '/work',
        rate: scenario.capacity * 0.5,
        durationMs: warmupMs,
        deadlineMs: scenario.deadlineMs,
      })
    }
    const rssSeries: number[] = []
    let rssNow = memory(server.pid).rss
    const sampler = setInterval(() => {
      rssNow = memory(server.pid).rss
      rssSeries.push(rssNow)
    }, 250)
    let cpuBefore = 0
    let machineBefore = 0
    let generatorBefore = process.cpuUsage()
    let wallBefore = 0
    const begin = (): void => {
      cpuBefore = cpuNs(server.pid)
      machineBefore = machineBusyMs()
      generatorBefore = process.cpuUsage()
      wallBefore = performance.now()
      server.go()
    }
    const onProgress = options.onProgress
    const rate = scenario.capacity * multiple
    const load = await runLoad({
      origin: server.origin,
      path: '/work',
      rate,
      durationMs: options.durationMs,
      deadlineMs: scenario.deadlineMs,
      ...(scenario.connectedClients === true
        ? { preconnect: Math.ceil((rate * scenario.deadlineMs) / 1000) }
        : {}),
      onConnected: begin,
      ...(onProgress === undefined ? {} : { onProgress: (p) => onProgress({ ...p, rss: rssNow }) }),
    })
    const cpuAfter = cpuNs(server.pid)
    const generator = process.cpuUsage(generatorBefore)
    const machineMs = machineBusyMs() - machineBefore
    const wallMs = performance.now() - wallBefore
    clearInterval(sampler)
    const report = await server.report(options.drainMs)
    const peak = memory(server.pid).peak
    const serverCpuMs = (cpuAfter - cpuBefore) / 1e6
    const generatorCpuMs = (generator.user + generator.system) / 1000
    return {
      system: options.system,
      multiple,
      load,
      goodputPct: (load.okInTimeDuringLoad / (options.durationMs / 1000) / scenario.capacity) * 100,
      serverCpuMs,
      serverCpuPct: (serverCpuMs / wallMs) * 100,
      generatorCpuPct: (generatorCpuMs / wallMs) * 100,
      othersCpuPct: Math.max(0, ((machineMs - serverCpuMs - generatorCpuMs) / wallMs) * 100),
      peakRssBytes: peak,
      rssSeries,
      queries: report.queries,
      departedQueries: report.departed,
      maxPoolBusy: report.maxPoolBusy,
      maxRoutes: report.maxRoutes,
      routesForGone: report.routesForGone,
      routesLeftMidway: report.routesLeftMidway,
      routesRunning: report.routesRunning,
      abandoned: report.abandoned,
      inFlightAfter: report.inFlight,
      queueDepthAfter: report.queueDepth,
      meanHoldMs: report.meanHoldMs,
      limitSeries: report.limitSeries,
      rejections: report.rejections,
      limitChanges: report.limitChanges,
    }
  } finally {
    await server.kill()
  }
}

/** Goodput per second against the capacity in force that second, p99 per phase, and the limit's settling, for a capacity step. */
export function stepSummary(
  phase: PhaseResult,
  scenario: Scenario,
  step: NonNullable<ChildConfig['step']>,
): {
  perSecond: {
    second: number
    capacity: number
    okInTime: number
    pctOfCapacity: number
    limit: number | null
  }[]
  limitCovSteady: number | null
  /** p99 of the 2xx answers that arrived before the step, while it lasted, and after the recovery. */
  p99Ms: { before: number; during: number; after: number }
  /** Seconds from each step until the limit stayed within ±25% of its new steady level (null: never, or no limit). */
  settleS: { drop: number | null; recovery: number | null }
} {
  const capacityAt = (second: number): number => {
    const ms = second * 1000
    const size = ms >= step.atMs && ms < step.recoverAtMs ? step.size : scenario.poolSize
    return (size * 1000) / scenario.queryMs
  }
  const limitAt = (second: number): number | null => {
    const samples = phase.limitSeries.filter(([ms]) => ms >= second * 1000 && ms < (second + 1) * 1000)
    if (samples.length === 0) return null
    return round(samples.reduce((sum, s) => sum + s[1], 0) / samples.length, 1)
  }
  const seconds = Math.floor(phase.load.durationMs / 1000)
  const perSecond = phase.load.perSecond.slice(0, seconds).map((s) => {
    const capacity = capacityAt(s.second)
    return {
      second: s.second,
      capacity,
      okInTime: s.okInTime,
      pctOfCapacity: round((s.okInTime / capacity) * 100, 1),
      limit: limitAt(s.second),
    }
  })
  const p99Between = (fromMs: number, toMs: number): number =>
    round(
      quantile(
        phase.load.perSecond
          .filter((s) => s.second * 1000 >= fromMs && s.second * 1000 < toMs)
          .flatMap((s) => s.latencies),
        0.99,
      ),
      1,
    )
  const steady = phase.limitSeries.filter(([ms]) => ms >= 3000 && ms < step.atMs).map((s) => s[1])
  return {
    perSecond,
    limitCovSteady: steady.length > 1 ? round(cov(steady), 3) : null,
    p99Ms: {
      before: p99Between(0, step.atMs),
      during: p99Between(step.atMs, step.recoverAtMs),
      after: p99Between(step.recoverAtMs, phase.load.durationMs),
    },
    settleS: {
      drop: settleSeconds(phase.limitSeries, step.atMs, step.recoverAtMs),
      recovery: settleSeconds(phase.limitSeries, step.recoverAtMs, phase.load.durationMs),
    },
  }
}

/**
 * When, after a step at `atMs`, the limit's running median over 600 ms centred on each sample (which a
 * baseline probe's brief dip does not move) entered the band of ±25% (at least ±1) around its level over the second
 * half of the interval, and stayed there until `untilMs` (null unless that lasted 2 s or more): the settling time, in seconds.
 */
export function settleSeconds(
  series: PhaseResult['limitSeries'],
  atMs: number,
  untilMs: number,
): number | null {
  const after = series.filter(([ms]) => ms >= atMs && ms < untilMs)
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.floor(sorted.length / 2)]!
  }
  const tail = after.filter(([ms]) => ms >= (atMs + untilMs) / 2).map((s) => s[1])
  if (tail.length === 0) return null
  const level = median(tail)
  const halfWidth = Math.max(1, level * 0.25)
  let settledAt: number | null = null
  for (let i = 0; i < after.length; i++) {
    const [ms] = after[i]!
    if (ms + 300 > untilMs) break
    const window = series.filter(([t]) => t >= ms - 300 && t <= ms + 300).map((s) => s[1])
    const inBand = Math.abs(median(window) - level) <= halfWidth
    if (!inBand) settledAt = null
    else if (settledAt === null) settledAt = ms
  }
  // Settling must be seen to hold for at least 2 s, or it is not known to have happened.
  if (settledAt === null || settledAt > untilMs - 2000) return null
  return round((settledAt - atMs) / 1000, 1)
}

export { sleep }
