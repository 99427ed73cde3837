import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BackpressureController, InvalidOptionError, type Permit } from '@backpressure/core'
import { type Job, Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestPool } from '../../../test/support/pool.js'
import { type RedisServer, redisAvailable, startRedis } from '../../redis/test/redis-server.js'
import { BackpressureWorker } from '../src/index.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const childFile = fileURLToPath(new URL('./fixtures/worker-child.ts', import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

/** Jobs in the kill-and-restart test: 5,000 (12.5 s of work at the pool’s 400 jobs/s; the bench runs 10,000), so the file stays well under a minute on a loaded machine. */
const KILL_JOBS = Number(process.env.BP_CONSUMER_JOBS ?? 5_000)

describe('options', () => {
  const controller = new BackpressureController({ maxConcurrency: 4 })
  const worker = { connection: { host: '127.0.0.1', port: 1 }, autorun: false }
  const handler = async () => undefined

  it.each([
    ['queueName', () => new BackpressureWorker('', handler, { controller, worker })],
    ['handler', () => new BackpressureWorker('q', 'x' as never, { controller, worker })],
    ['controller', () => new BackpressureWorker('q', handler, { controller: {} as never, worker })],
    ['worker', () => new BackpressureWorker('q', handler, { controller, worker: {} as never })],
    [
      'worker.concurrency',
      () =>
        new BackpressureWorker('q', handler, { controller, worker: { ...worker, concurrency: 5 } as never }),
    ],
    ['priority', () => new BackpressureWorker('q', handler, { controller, worker, priority: 3 as never })],
    ['shedDelayMs', () => new BackpressureWorker('q', handler, { controller, worker, shedDelayMs: 0 })],
    ['shedDelay', () => new BackpressureWorker('q', handler, { controller, worker, shedDelay: 5 } as never)],
  ])('refuses a bad %s with an InvalidOptionError naming it', (name, build) => {
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(name)
  })
})

describe.skipIf(!redisAvailable)('on a real Redis', () => {
  let redis: RedisServer
  let client: Redis
  let connection: { host: string; port: number; maxRetriesPerRequest: null }
  let queueNumber = 0

  beforeAll(async () => {
    redis = await startRedis()
    connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }
    client = new Redis(connection)
  })

  afterAll(async () => {
    client?.disconnect()
    await redis?.stop()
  })

  async function freshQueue(): Promise<Queue> {
    const queue = new Queue(`q${++queueNumber}`, { connection })
    await queue.waitUntilReady()
    return queue
  }

  async function addJobs(queue: Queue, count: number, opts: Record<string, unknown> = {}): Promise<void> {
    for (let start = 0; start < count; start += 1000) {
      const batch = []
      for (let id = start; id < Math.min(count, start + 1000); id++)
        batch.push({ name: 'j', data: { id }, opts })
      await queue.addBulk(batch)
    }
  }

  async function until(
    check: () => Promise<boolean> | boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  it('runs jobs over a 4 × 10 ms pool, never more at once than the limit, and the capacity drop mid-run moves the limit with nothing failed', async () => {
    const queue = await freshQueue()
    const total = 1200
    await addJobs(queue, total)
    const pool = new TestPool(4, 10)
    const controller = new BackpressureController({ name: 'bullmq-drop' })
    let running = 0
    let overLimit = 0
    let mismatched = 0
    const limits: { at: number; limit: number }[] = []
    controller.on('limit', ({ limit }) => limits.push({ at: pool.completed, limit }))
    const consumer = new BackpressureWorker(
      queue.name,
      async () => {
        running++
        if (running > controller.limit) overLimit++
        try {
          await pool.query()
          if (pool.completed === total / 2) pool.resize(1)
        } finally {
          running--
        }
      },
      { controller, worker: { connection } },
    )
    let failed = 0
    consumer.worker.on('failed', () => failed++)
    consumer.worker.on('completed', () => {
      if (consumer.worker.concurrency !== Math.max(1, Math.floor(controller.limit))) mismatched++
    })
    await until(async () => (await queue.getCompletedCount()) === total, 60_000, 'every job to complete')
    await consumer.close()
    const before = limits.filter((sample) => sample.at > total / 4 && sample.at < total / 2)
    const after = limits.filter((sample) => sample.at > (total * 3) / 4)
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN
    const medianBefore = median(before.map((sample) => sample.limit))
    const medianAfter = median(after.map((sample) => sample.limit))
    console.log(
      `bullmq capacity drop: limit median ${medianBefore} at 4 connections, ${medianAfter} at 1; shed ${consumer.shed}`,
    )
    expect(overLimit).toBe(0)
    expect(mismatched).toBe(0)
    expect(failed).toBe(0)
    expect(await queue.getFailedCount()).toBe(0)
    expect(pool.completed).toBe(total)
    expect(medianAfter).toBeLessThan(medianBefore)
    expect(consumer.stats().completed).toBe(total)
    await queue.close()
  }, 90_000)

  it('sends a shed job back to waiting: not failed, no attempt spent, done once the controller admits it', async () => {
    const queue = await freshQueue()
    // One slot, no queue: while something else (an HTTP request, say) holds the slot, the job is shed.
    const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
    const outside = controller.tryAcquire() as Permit
    let ran = 0
    const consumer = new BackpressureWorker(
      queue.name,
      async () => {
        ran++
      },
      { controller, worker: { connection }, shedDelayMs: 20 },
    )
    let failed = 0
    consumer.worker.on('failed', () => failed++)
    const job = await queue.add('j', { id: 1 }, { attempts: 1 })
    await until(() => consumer.shed >= 3, 10_000, 'three sheds')
    const waiting = (await queue.getJob(job.id!)) as Job
    expect(waiting.attemptsMade).toBe(0)
    expect(ran).toBe(0)
    outside.release()
    await until(async () => (await queue.getCompletedCount()) === 1, 10_000, 'the job to complete')
    await consumer.close()
    const done = (await queue.getJob(job.id!)) as Job
    expect(ran).toBe(1)
    expect(failed).toBe(0)
    expect(await queue.getFailedCount()).toBe(0)
    // Completing is its only attempt: attempts: 1 would have failed it had a shed counted.
    expect(done.attemptsMade).toBeLessThanOrEqual(1)
    expect(controller.stats().rejections.queue_full).toBe(consumer.shed)
    await queue.close()
  })

  it("admits with the job's BullMQ priority: none first, then 1, 2, … (higher controller priority first)", async () => {
    const queue = await freshQueue()
    const controller = new BackpressureController({ maxConcurrency: 4 })
    const seen: number[] = []
    const admit = controller.admit.bind(controller)
    controller.admit = (priority = 0, ...rest) => {
      seen.push(priority)
      return admit(priority, ...rest)
    }
    const consumer = new BackpressureWorker(queue.name, async () => undefined, {
      controller,
      worker: { connection },
    })
    await queue.add('j', { id: 1 })
    await queue.add('j', { id: 2 }, { priority: 7 })
    await until(async () => (await queue.getCompletedCount()) === 2, 10_000, 'both jobs')
    await consumer.close()
    expect(seen.sort((a, b) => a - b)).toEqual([-7, 0])
    await queue.close()
  })

  it('finishes the jobs in flight on close, then stops pulling', async () => {
    const queue = await freshQueue()
    await addJobs(queue, 50)
    const controller = new BackpressureController({ maxConcurrency: 5 })
    let started = 0
    let finished = 0
    const consumer = new BackpressureWorker(
      queue.name,
      async () => {
        started++
        await new Promise((resolve) => setTimeout(resolve, 100))
        finished++
      },
      { controller, worker: { connection } },
    )
    await until(() => started >= 5, 10_000, 'five jobs to start')
    await consumer.close()
    expect(finished).toBe(started)
    expect(controller.inFlight).toBe(0)
    expect(await queue.getActiveCount()).toBe(0)
    expect(await queue.getCompletedCount()).toBe(finished)
    expect(await queue.getWaitingCount()).toBe(50 - finished)
    await queue.close()
  })

  it(`loses no job across a SIGKILL of the consumer process and a restart (${KILL_JOBS} jobs); duplicates only among those in flight`, async () => {
    const queue = await freshQueue()
    await addJobs(queue, KILL_JOBS)
    const limit = 8
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['--import', tsx, childFile], {
        cwd: root,
        env: { ...process.env, REDIS_PORT: String(redis.port), QUEUE: queue.name, LIMIT: String(limit) },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`consumer exited with ${code} before it was ready`)))
        child.stdout!.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('ready')) resolve()
        })
      })
      return child
    }
    const done = `${queue.name}:done`
    const first = await start()
    await until(async () => (await client.llen(done)) >= KILL_JOBS / 3, 120_000, 'a third of the jobs')
    first.kill('SIGKILL')
    await once(first, 'exit')
    const activeAtKill = await queue.getActiveCount()
    const recordedAtKill = await client.llen(done)
    const second = await start()
    await until(async () => (await queue.getCompletedCount()) === KILL_JOBS, 180_000, 'every job to complete')
    second.kill('SIGTERM')
    await once(second, 'exit')
    const ids = (await client.lrange(done, 0, -1)).map(Number)
    const unique = new Set(ids)
    const duplicates = ids.length - unique.size
    console.log(
      `bullmq kill: ${KILL_JOBS} jobs, killed after ${recordedAtKill} recorded with ${activeAtKill} active; ${unique.size} processed, ${duplicates} duplicates`,
    )
    expect(unique.size).toBe(KILL_JOBS)
    expect(activeAtKill).toBeLessThanOrEqual(limit)
    expect(duplicates).toBeLessThanOrEqual(activeAtKill)
    expect(Number(await client.get(`${queue.name}:over-limit`))).toBe(0)
    expect(await queue.getFailedCount()).toBe(0)
    await queue.close()
  }, 240_000)
})
