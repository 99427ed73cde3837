/**
 * The database a fleet shares, in its own process: one SimPool (`size` connections × `queryMs`) behind
 * a TCP port. Each line a client sends (a request id) is one query; the same line comes back when the
 * query is done. Over IPC it says its port, and on `report` the pool's state: queries waiting now, and
 * the longest and summed waits for a connection since the last report.
 */
import { createServer, type Socket } from 'node:net'
import { SimPool } from './sim-db.js'

export interface FleetDbConfig {
  readonly size: number
  readonly queryMs: number
}

export type FleetDbMessage =
  | { type: 'ready'; port: number }
  | { type: 'report'; waiting: number; busy: number; queries: number; waitMaxMs: number; waitSumMs: number }

const config = JSON.parse(process.argv[2] ?? '{}') as FleetDbConfig
const pool = new SimPool({ size: config.size, queryMs: config.queryMs })
let queries = 0
let waitMaxMs = 0
let waitSumMs = 0

function serve(socket: Socket): void {
  socket.setNoDelay(true)
  socket.setEncoding('utf8')
  let buffered = ''
  socket.on('data', (chunk: string) => {
    buffered += chunk
    let end = buffered.indexOf('\n')
    while (end !== -1) {
      const id = buffered.slice(0, end)
      buffered = buffered.slice(end + 1)
      const arrivedAt = performance.now()
      void pool.query().then(
        () => {
          // The query held its connection queryMs; the rest of its time here it waited for one.
          const waited = Math.max(0, performance.now() - arrivedAt - config.queryMs)
          queries++
          waitSumMs += waited
          if (waited > waitMaxMs) waitMaxMs = waited
          if (!socket.destroyed) socket.write(`${id}\n`)
        },
        () => socket.destroy(),
      )
      end = buffered.indexOf('\n')
    }
  })
  socket.on('error', () => socket.destroy())
}

await pool.calibrate()
const server = createServer(serve)
server.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const send = (message: FleetDbMessage) => process.send?.(message)
send({ type: 'ready', port: (server.address() as { port: number }).port })
process.on('message', (message: { type: string }) => {
  if (message.type !== 'report') return
  send({ type: 'report', waiting: pool.waiting, busy: pool.busy, queries, waitMaxMs, waitSumMs })
  queries = 0
  waitMaxMs = 0
  waitSumMs = 0
})
process.on('disconnect', () => process.exit(0))
