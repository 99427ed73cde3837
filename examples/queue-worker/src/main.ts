/**
 * `pnpm --filter @backpressure/example-queue-worker start`: starts a throwaway redis-server on a free
 * port (or uses REDIS_PORT), runs the queue worker over 4,000 jobs, prints its progress and summary,
 * and stops. Ctrl-C stops it gracefully: the jobs in flight finish first.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { runQueueWorker } from './index.js'

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

let redisPort = Number(process.env.REDIS_PORT ?? 0)
let stopRedis = () => {}
if (redisPort === 0) {
  redisPort = await freePort()
  const redis = spawn(
    'redis-server',
    [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      tmpdir(),
    ],
    { stdio: 'ignore' },
  )
  redis.once('error', () => {
    console.error('redis-server is not installed: install it (or set REDIS_PORT to a running Redis)')
    process.exit(1)
  })
  stopRedis = () => redis.kill('SIGKILL')
  // BullMQ's connection retries until the server is up; a short wait keeps the first lines tidy.
  await new Promise((resolve) => setTimeout(resolve, 300))
  console.log(`redis-server on 127.0.0.1:${redisPort}`)
}

try {
  const summary = await runQueueWorker({
    redisPort,
    jobs: Number(process.env.JOBS ?? 4000),
    log: console.log,
  })
  console.log(
    `done: ${summary.completed} completed, ${summary.failed} failed, ${summary.shed} shed; limit ${summary.limitBefore} before the drop, ${summary.limitAfter} after; at most ${summary.maxConcurrencySeen} jobs at once`,
  )
} finally {
  stopRedis()
}
