/**
 * The server process of every benchmark: builds one system over the simulated database and listens on
 * 127.0.0.1. Its CPU and memory are read from outside (proc.ts); over IPC it only says its port, starts
 * the capacity-step timers when told the load began, and reports what only it can see: queries run,
 * queries run for clients already gone, and our controller's limit over time.
 */
import type { AddressInfo } from 'node:net'
import { SimPool, spin } from './sim-db.js'
import { arrivalOf, type SystemContext, systemByName } from './systems.js'

export interface ChildConfig {
  readonly system: string
  /** Connections P and ms per query S of the simulated database; size 0 means no database. */
  readonly poolSize: number
  readonly queryMs: number
  /** CPU burned per request, in ms (the CPU-bound variant). */
  readonly cpuMs: number
  /** The client's deadline, to count work done for departed clients. */
  readonly deadlineMs: number
  /** Capacity step: the pool becomes `size` at `atMs` after the load starts and recovers at `recoverAtMs`. */
  readonly step?: { readonly atMs: number; readonly size: number; readonly recoverAtMs: number }
}

export type ParentMessage = { type: 'go' } | { type: 'report' }

export interface ChildReport {
  readonly type: 'report'
  readonly queries: number
  readonly departed: number
  readonly maxPoolBusy: number
  /** Mean milliseconds a query held its connection (the nominal queryMs plus timer lateness). */
  readonly meanHoldMs: number
  /** Every 100 ms after `go`: [ms since go, limit, in flight, queue depth] of our controller. */
  readonly limitSeries: [number, number, number, number][]
}

export type ChildMessage = { type: 'ready'; port: number } | { type: 'error'; message: string } | ChildReport

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig
const send = (message: ChildMessage): void => {
  process.send?.(message)
}

const pool = config.poolSize > 0 ? new SimPool({ size: config.poolSize, queryMs: config.queryMs }) : undefined
let cpuDeparted = 0
let cpuRuns = 0

const ctx: SystemContext = {
  poolSize: config.poolSize,
  queryMs: config.queryMs,
  work: async (req) => {
    const deadlineAt = arrivalOf(req) + config.deadlineMs
    if (config.cpuMs > 0) {
      cpuRuns++
      if (performance.now() > deadlineAt) cpuDeparted++
      spin(config.cpuMs)
    }
    if (pool !== undefined) await pool.query(deadlineAt)
  },
}

try {
  await pool?.calibrate()
  const system = systemByName(config.system)
  const built = await system.build(ctx)
  const server = built.server
  server.listen(0, '127.0.0.1', () => {
    send({ type: 'ready', port: (server.address() as AddressInfo).port })
  })

  const series: [number, number, number, number][] = []
  let goAt = 0
  let sampler: NodeJS.Timeout | undefined
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'go') {
      goAt = performance.now()
      if (pool !== undefined) {
        pool.queries = 0
        pool.departed = 0
        pool.heldMs = 0
      }
      cpuRuns = 0
      cpuDeparted = 0
      const controller = built.controller
      if (controller !== undefined) {
        sampler = setInterval(() => {
          series.push([
            Math.round(performance.now() - goAt),
            controller.limit,
            controller.inFlight,
            controller.queueDepth,
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
      send({
        type: 'report',
        queries: (pool?.queries ?? 0) + cpuRuns * (pool === undefined ? 1 : 0),
        departed: (pool?.departed ?? 0) + (pool === undefined ? cpuDeparted : 0),
        maxPoolBusy: pool?.maxBusy ?? 0,
        meanHoldMs: pool === undefined || pool.queries === 0 ? 0 : pool.heldMs / pool.queries,
        limitSeries: series,
      })
    }
  })
  process.on('disconnect', () => process.exit(0))
} catch (error) {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
}
