/**
 * One instance of the HAProxy fleet tier, in its own process: Express with `backpressure()` (given no
 * options, or a fixed limit of its pool's size) over its own simulated database pool, and the HAProxy agent-check responder. Over IPC it says
 * its two ports, and on `report` how many /work requests reached it and how many it served.
 */
import type { AddressInfo } from 'node:net'
import { backpressure, listenAgentCheck } from '@backpressure/express'
import express from 'express'
import { SimPool } from './sim-db.js'

export interface FleetInstanceConfig {
  readonly poolSize: number
  readonly queryMs: number
  /** `fixed`: a limit of the pool's size and a queue of twice that, instead of no options. */
  readonly limit: FleetLimit
}

export type FleetLimit = 'default' | 'fixed'

export type FleetInstanceMessage =
  | { type: 'ready'; port: number; agentPort: number }
  | { type: 'report'; arrived: number; served: number; limit: number }

const config = JSON.parse(process.argv[2] ?? '{}') as FleetInstanceConfig
const pool = new SimPool({ size: config.poolSize, queryMs: config.queryMs })
let arrived = 0
let served = 0

const app = express()
const limiter = backpressure(
  config.limit === 'fixed' ? { maxConcurrency: config.poolSize, maxQueueDepth: 2 * config.poolSize } : {},
)
app.use((req, _res, next) => {
  if (req.path === '/work') arrived++
  next()
})
app.use(limiter)
app.get('/work', async (_req, res) => {
  await pool.query()
  served++
  res.send('ok')
})

await pool.calibrate()
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const agent = await listenAgentCheck(limiter.controller, { port: 0, host: '127.0.0.1' })
const send = (message: FleetInstanceMessage) => process.send?.(message)
send({ type: 'ready', port: (server.address() as AddressInfo).port, agentPort: agent.port })
process.on('message', (message: { type: string }) => {
  if (message.type === 'report') send({ type: 'report', arrived, served, limit: limiter.controller.limit })
})
process.on('disconnect', () => process.exit(0))
