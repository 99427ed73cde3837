/**
 * The queue worker: jobs are "import this order" messages, each one query on a database of 4
 * connections × 10 ms (400 jobs/s). The BullMQ worker's concurrency is the adaptive limit, so nobody
 * had to tell it the database's size; halfway through, the database loses 3 of its 4 connections and
 * the limit (and with it the worker's concurrency) follows it down. Nothing fails, nothing is lost.
 */
import { BackpressureWorker } from '@backpressure/bullmq'
import { BackpressureController } from '@backpressure/core'
import { SimulatedPool } from '@backpressure/example-shared'
import { Queue } from 'bullmq'

export interface RunOptions {
  readonly redisPort: number
  /** Jobs to enqueue and process. @default 4000 */
  readonly jobs?: number
  /** Called once a second with a progress line. */
  readonly log?: (line: string) => void
}

export interface RunSummary {
  readonly completed: number
  readonly failed: number
  readonly shed: number
  readonly limitBefore: number
  readonly limitAfter: number
  readonly maxConcurrencySeen: number
}

export async function runQueueWorker({
  redisPort,
  jobs = 4000,
  log = () => {},
}: RunOptions): Promise<RunSummary> {
  const connection = { host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: null }
  const queue = new Queue<{ order: number }>('orders-import', { connection })
  await queue.obliterate({ force: true })
  for (let start = 0; start < jobs; start += 1000) {
    const batch = []
    for (let order = start; order < Math.min(jobs, start + 1000); order++)
      batch.push({ name: 'import', data: { order } })
    await queue.addBulk(batch)
  }

  // Both sizes would have to be guessed for a fixed concurrency; the adaptive limit finds them.
  const pool = new SimulatedPool({ connections: 4, queryMs: 10 })
  const controller = new BackpressureController({ name: 'orders-import' })
  let running = 0
  let maxConcurrencySeen = 0
  const consumer = new BackpressureWorker<{ order: number }>(
    queue.name,
    async (job) => {
      running++
      maxConcurrencySeen = Math.max(maxConcurrencySeen, running)
      try {
        await pool.query(() => job.data.order)
      } finally {
        running--
      }
    },
    { controller, worker: { connection } },
  )

  let completed = 0
  let failed = 0
  let limitBefore = 0
  // The limit every 50 ms: before and after the drop are compared by their medians, not by one reading
  // that may fall on a probe (the limit halves for a few queries to re-measure its baseline).
  const before: number[] = []
  const after: number[] = []
  let dropped = false
  const sampler = setInterval(() => (dropped ? after : before).push(controller.limit), 50)
  consumer.worker.on('failed', () => failed++)
  const finished = new Promise<void>((resolve) => {
    consumer.worker.on('completed', () => {
      completed++
      if (completed === Math.floor(jobs / 2)) {
        limitBefore = median(before.slice(-20))
        dropped = true
        // The database loses three of its four connections (a failover, a noisy neighbour).
        pool.resize(1)
        log(`database: 4 connections → 1 (limit was ${limitBefore})`)
      }
      if (completed === jobs) resolve()
    })
  })
  let last = 0
  const progress = setInterval(() => {
    const { limit, inFlight, p50LatencyMs } = consumer.stats()
    log(
      `${completed}/${jobs} done (${completed - last}/s), limit ${limit}, in flight ${inFlight}, worker concurrency ${consumer.worker.concurrency}, p50 ${p50LatencyMs.toFixed(0)} ms`,
    )
    last = completed
  }, 1000)
  await finished
  clearInterval(progress)
  clearInterval(sampler)
  // The second half of the time since the drop: the limit has followed it by then.
  const limitAfter = after.length === 0 ? controller.limit : median(after.slice(Math.floor(after.length / 2)))
  // Graceful stop: no more fetching, the jobs in flight finish, then the connections close.
  await consumer.close()
  await controller.close()
  await queue.close()
  return { completed, failed, shed: consumer.shed, limitBefore, limitAfter, maxConcurrencySeen }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}
