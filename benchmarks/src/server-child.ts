/**
 * The server process of every benchmark: builds one system over the simulated database and listens on
 * 127.0.0.1. Its CPU and memory are read from outside (proc.ts); over IPC it only says its port, starts
 * the capacity-step timers when told the load began, and reports what only it can see: queries run,
 * queries run for clients already gone, route bodies running at once, and our controller's limit over
 * time and its books.
 */
import type { AddressInfo } from 'node:net'
import type { BackpressureController } from '@backpressure/core'
import { SimPool, spin } from './sim-db.js'
import { sleep } from './stats.js'
import { arrivalOf, type SystemContext, systemByName, unstamp } from './systems.js'

export interface ChildConfig {
  readonly system: string
  /** Connections P and ms per query S of the simulated database; size 0 means no database. */
  readonly poolSize: number
  readonly queryMs: number
  /** CPU burned per request, in ms (the CPU-bound variant). */
  readonly cpuMs: number
  /** The client's deadline, to count work done for departed clients. */
  readonly deadlineMs: number
  /** The scenario's C, req/s: the rate gates admit a share of it. */
  readonly capacity?: number
  /** Capacity step: the pool becomes `size` at `atMs` after the load starts and recovers at `recoverAtMs`. */
  readonly step?: { readonly atMs: number; readonly size: number; readonly recoverAtMs: number }
  /**
   * The rejection tier: the route's work never ends (the one request admitted holds its slot for
   * good), and the server runs with the framework's listener only (no arrival stamp).
   */
  readonly hold?: boolean
}

/** `drainMs`: first wait up to this long for every route body to end, so our controller's books can be read at rest. */
export type ParentMessage = { type: 'go' } | { type: 'report'; drainMs?: number }

export interface ChildReport {
  readonly type: 'report'
  readonly queries: number
  readonly departed: number
  readonly maxPoolBusy: number
  /**
   * The most route bodies (the route's work: CPU and query, pool wait included) running at once. Under
   * a fixed limit of P it can pass P only when a permit was released while its route still ran.
   */
  readonly maxRoutes: number
  /** Route bodies whose client had already left (socket closed) when they started, and when they ended. */
  readonly routesForGone: number
  readonly routesLeftMidway: number
  /** Route bodies still running when the report was taken (after `drainMs`, if asked). */
  readonly routesRunning: number
  /** Our controller's permits released by the abandonment bound since `go` (null: no controller, or a core without the count). */
  readonly abandoned: number | null
  /** Our controller's permits in flight and queue depth when the report was taken (null: no controller). */
  readonly inFlight: number | null
  readonly queueDepth: number | null
  /** Mean milliseconds a query held its connection (the nominal queryMs plus timer lateness). */
  readonly meanHoldMs: number
  /**
   * Every 100 ms after `go`, of our controller: [ms since go, limit, in flight, queue depth, rejections
   * since go, event-loop shed fraction, event-loop lag ms].
   */
  readonly limitSeries: [number, number, number, number, number, number, number][]
  /** Our controller's rejections since `go`, by reason (null: no controller). */
  readonly rejections: Record<string, number> | null
  /** Every change of our controller's limit after `go`: [ms since go, limit] (the first 4,000). */
  readonly limitChanges: [number, number][]
}

export type ChildMessage = { type: 'ready'; port: number } | { type: 'error'; message: string } | ChildReport

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig
const send = (message: ChildMessage): void => {
  process.send?.(message)
}

const pool = config.poolSize > 0 ? new SimPool({ size: config.poolSize, queryMs: config.queryMs }) : undefined
let cpuDeparted = 0
let cpuRuns = 0
let routesNow = 0
let maxRoutes = 0
let routesForGone = 0
let routesLeftMidway = 0

// The route ignores the request's abort signal on purpose: its query runs to the end whether or not
// its client is still there, the hard case for a limit that must keep bounding the work.
const never = new Promise<void>(() => {})
const ctx: SystemContext = {
  poolSize: config.poolSize,
  queryMs: config.queryMs,
  capacity: config.capacity ?? 0,
  work: async (req) => {
    if (config.hold === true) return never
    routesNow++
    if (routesNow > maxRoutes) maxRoutes = routesNow
    if (req.socket.destroyed) routesForGone++
    try {
      const deadlineAt = arrivalOf(req) + config.deadlineMs
      if (config.cpuMs > 0) {
        cpuRuns++
        if (performance.now() > deadlineAt) cpuDeparted++
        spin(config.cpuMs)
      }
      if (pool !== undefined) await pool.query(deadlineAt)
    } finally {
      routesNow--
      if (req.socket.destroyed) routesLeftMidway++
    }
  },
}

/** Our controller's abandoned-permit count, where the core keeps one. */
function abandonedOf(controller: BackpressureController | undefined): number | null {
  if (controller === undefined) return null
  return (controller.stats() as { abandoned?: number }).abandoned ?? null
}

function rejectionsSince(
  controller: BackpressureController | undefined,
  atGo: Record<string, number> | null,
): Record<string, number> | null {
  if (controller === undefined || atGo === null) return null
  const now: Record<string, number> = controller.stats().rejections
  const since: Record<string, number> = {}
  for (const [reason, count] of Object.entries(now)) {
    const delta = count - (atGo[reason] ?? 0)
    if (delta > 0) since[reason] = delta
  }
  return since
}

try {
  await pool?.calibrate()
  const system = systemByName(config.system)
  const built = await system.build(ctx)
  const server = built.server
  if (config.hold === true) unstamp(server)
  server.listen(0, '127.0.0.1', () => {
    send({ type: 'ready', port: (server.address() as AddressInfo).port })
  })

  const series: [number, number, number, number, number, number, number][] = []
  const limitChanges: [number, number][] = []
  let rejectionsAtGo: Record<string, number> | null = null
  let goAt = 0
  let abandonedAtGo: number | null = null
  let sampler: NodeJS.Timeout | undefined
  process.on('message', async (message: ParentMessage) => {
    if (message.type === 'go') {
      goAt = performance.now()
      if (pool !== undefined) {
        pool.queries = 0
        pool.departed = 0
        pool.heldMs = 0
        pool.maxBusy = pool.busy
      }
      cpuRuns = 0
      cpuDeparted = 0
      maxRoutes = routesNow
      routesForGone = 0
      routesLeftMidway = 0
      abandonedAtGo = abandonedOf(built.controller)
      const controller = built.controller
      if (controller !== undefined) {
        rejectionsAtGo = { ...controller.stats().rejections }
        const rejectedAtGo = controller.stats().rejected
        controller.on('limit', ({ limit }) => {
          if (limitChanges.length < 4000) limitChanges.push([Math.round(performance.now() - goAt), limit])
        })
        sampler = setInterval(() => {
          const stats = controller.stats() as {
            rejected: number
            eventLoopShedFraction?: number
            eventLoopLagMs?: number
          }
          series.push([
            Math.round(performance.now() - goAt),
            controller.limit,
            controller.inFlight,
            controller.queueDepth,
            stats.rejected - rejectedAtGo,
            Math.round((stats.eventLoopShedFraction ?? 0) * 1000) / 1000,
            Math.round((stats.eventLoopLagMs ?? 0) * 10) / 10,
          ])
        }, 100)
      }
      const step = config.step
      if (step !== undefined && pool !== undefined) {
        setTimeout(() => pool.resize(step.size), step.atMs)
        setTimeout(() => pool.resize(config.poolSize), step.recoverAtMs)
      }
    } else if (message.type === 'report') {
      if (sampler !== undefined) clearInterval(sampler)
      const drainUntil = performance.now() + (message.drainMs ?? 0)
      while (routesNow > 0 && performance.now() < drainUntil) await sleep(10)
      const controller = built.controller
      const abandoned = abandonedOf(controller)
      send({
        type: 'report',
        queries: (pool?.queries ?? 0) + cpuRuns * (pool === undefined ? 1 : 0),
        departed: (pool?.departed ?? 0) + (pool === undefined ? cpuDeparted : 0),
        maxPoolBusy: pool?.maxBusy ?? 0,
        meanHoldMs: pool === undefined || pool.queries === 0 ? 0 : pool.heldMs / pool.queries,
        maxRoutes,
        routesForGone,
        routesLeftMidway,
        routesRunning: routesNow,
        abandoned: abandoned === null || abandonedAtGo === null ? null : abandoned - abandonedAtGo,
        inFlight: controller?.inFlight ?? null,
        queueDepth: controller?.queueDepth ?? null,
        limitSeries: series,
        rejections: rejectionsSince(controller, rejectionsAtGo),
        limitChanges,
      })
    }
  })
  process.on('disconnect', () => process.exit(0))
} catch (error) {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
}
