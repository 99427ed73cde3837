/**
 * One instance of the fleet-join tier, in its own process: Express with `backpressure()` (no options,
 * or with the fleet's baseline shared through Redis) in front of the database every instance shares
 * (fleet-db.ts, over one TCP connection). Over IPC it says its port, and on `report` how many /work
 * requests it served so far and its limit.
 */
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { backpressure } from '@backpressure/express'
import { RedisSharedBaseline } from '@backpressure/redis'
import express from 'express'
import { Redis } from 'ioredis'

export interface FleetJoinInstanceConfig {
  readonly dbPort: number
  /** Share the baseline through this Redis and key; without it, each instance measures its own. */
  readonly shared?: { readonly redisPort: number; readonly key: string }
}

export type FleetJoinInstanceMessage =
  | { type: 'ready'; port: number }
  | { type: 'report'; served: number; limit: number; baselineMs: number }

const config = JSON.parse(process.argv[2] ?? '{}') as FleetJoinInstanceConfig

// The shared database: one connection, queries told apart by id (answers come back in any order).
const db = connect(config.dbPort, '127.0.0.1')
db.setNoDelay(true)
db.setEncoding('utf8')
await new Promise((resolve, reject) => db.once('connect', resolve).once('error', reject))
const pending = new Map<number, () => void>()
let nextId = 0
let buffered = ''
db.on('data', (chunk: string) => {
  buffered += chunk
  let end = buffered.indexOf('\n')
  while (end !== -1) {
    const id = Number(buffered.slice(0, end))
    buffered = buffered.slice(end + 1)
    pending.get(id)?.()
    pending.delete(id)
    end = buffered.indexOf('\n')
  }
})
const query = () =>
  new Promise<void>((resolve) => {
    const id = nextId++
    pending.set(id, resolve)
    db.write(`${id}\n`)
  })

let sharedBaseline: RedisSharedBaseline | undefined
if (config.shared !== undefined) {
  const redis = new Redis({ host: '127.0.0.1', port: config.shared.redisPort, maxRetriesPerRequest: 1 })
  sharedBaseline = new RedisSharedBaseline({ client: redis, key: config.shared.key })
}
const limiter = backpressure(sharedBaseline === undefined ? {} : { maxConcurrency: { sharedBaseline } })
let served = 0
const app = express()
app.use(limiter)
app.get('/work', async (_req, res) => {
  await query()
  served++
  res.send('ok')
})

const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const send = (message: FleetJoinInstanceMessage) => process.send?.(message)
send({ type: 'ready', port: (server.address() as AddressInfo).port })
process.on('message', (message: { type: string }) => {
  if (message.type === 'report')
    send({
      type: 'report',
      served,
      limit: limiter.controller.limit,
      // Read for the report only: the limit's baseline is not public.
      baselineMs:
        (limiter.controller as unknown as { limiter: { baselineMs?: number } }).limiter.baselineMs ?? 0,
    })
})
process.on('disconnect', () => process.exit(0))
