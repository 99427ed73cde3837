/**
 * Message-queue consumers on real brokers (tier `consumers`): a BullMQ worker (redis-server) and an
 * AMQP consumer (RabbitMQ), each given the default adaptive controller and a handler that runs one
 * query on the simulated pool (P = 4 connections × S = 10 ms: capacity 400 messages/s).
 *
 * - Throughput: the queue is filled with `messages` messages first, then the consumer drains it; the
 *   rate is messages over the time from its start to the last one handled, against the pool's capacity
 *   (target: ≥ 95%). In-flight handlers are counted at each start against the limit in force.
 * - Kill and restart: a consumer process (the tests' fixture, a fixed limit of 8) is SIGKILLed once a
 *   third of the messages were handled and a fresh one started: messages processed at least once (all
 *   of them, or some were lost), duplicates, and how many were in flight at the kill.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { AmqpConsumer } from '@backpressure/amqp'
import { BackpressureWorker } from '@backpressure/bullmq'
import { BackpressureController } from '@backpressure/core'
import amqplib from 'amqplib'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { type RabbitServer, rabbitAvailable, startRabbit } from '../../packages/amqp/test/rabbitmq-server.js'
import { type RedisServer, redisAvailable, startRedis } from '../../packages/redis/test/redis-server.js'
import { SimPool } from './sim-db.js'
import { round } from './stats.js'

const POOL_SIZE = 4
const QUERY_MS = 10
const CAPACITY = (POOL_SIZE * 1000) / QUERY_MS
const KILL_LIMIT = 8
/** The fixed limit measured beside the adaptive one: twice the pool, so the pool never idles for want of work. */
const FIXED_LIMIT = 8

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const CHILDREN = {
  bullmq: fileURLToPath(new URL('../../packages/bullmq/test/fixtures/worker-child.ts', import.meta.url)),
  amqp: fileURLToPath(new URL('../../packages/amqp/test/fixtures/consumer-child.ts', import.meta.url)),
}

export type Broker = 'bullmq' | 'amqp'
/** A throughput row's consumer: a broker, or `none` for the pool alone. */
export type Consumer = Broker | 'none'

export interface ThroughputRun {
  readonly broker: Consumer
  /** `adaptive` (the default options) or `fixed N` (a fixed limit: the consumer's own overhead, apart from the limit's). */
  readonly limit: string
  readonly run: number
  readonly messages: number
  readonly durationMs: number
  readonly perSecond: number
  /** perSecond over the pool's capacity. */
  readonly ratio: number
  readonly limitMedian: number
  readonly limitMin: number
  readonly limitMax: number
  /** Handler starts that found more handlers running than the limit in force: must be 0. */
  readonly overLimit: number
  readonly failed: number
}

export interface KillRun {
  readonly broker: Broker
  readonly run: number
  readonly messages: number
  readonly handledAtKill: number
  /** BullMQ: jobs active at the kill; AMQP: handlers started and not finished at the kill. */
  readonly inFlightAtKill: number
  readonly processed: number
  readonly lost: number
  readonly duplicates: number
  readonly overLimit: number
  readonly durationMs: number
}

export interface ConsumersResults {
  readonly scenario: { poolSize: number; queryMs: number; capacity: number; killLimit: number }
  readonly messages: number
  readonly runs: number
  readonly startedAt: string
  readonly command: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly throughput: ThroughputRun[]
  readonly kill: KillRun[]
  /** Brokers not measured because their server is not installed. */
  readonly skipped: Broker[]
}

interface Options {
  readonly quick: boolean
  readonly runs: number
  readonly log: (line: string) => void
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

/** Runs `handle` for each message on the simulated pool, checking the limit; resolves to the limit samples. */
function meter(controller: BackpressureController) {
  const limits: number[] = [controller.limit]
  controller.on('limit', ({ limit }) => limits.push(limit))
  const pool = new SimPool({ size: POOL_SIZE, queryMs: QUERY_MS })
  let running = 0
  let overLimit = 0
  return {
    pool,
    limits,
    get overLimit() {
      return overLimit
    },
    async handle(): Promise<void> {
      running++
      if (running > controller.limit) overLimit++
      try {
        await pool.query()
      } finally {
        running--
      }
    },
  }
}

async function bullmqThroughput(
  redis: RedisServer,
  messages: number,
  run: number,
  maxConcurrency: number | undefined,
): Promise<ThroughputRun> {
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }
  const queue = new Queue(`throughput-${run}-${maxConcurrency ?? 'adaptive'}`, { connection })
  for (let start = 0; start < messages; start += 1000) {
    const batch = []
    for (let id = start; id < Math.min(messages, start + 1000); id++) batch.push({ name: 'm', data: { id } })
    await queue.addBulk(batch)
  }
  const controller = new BackpressureController(
    maxConcurrency === undefined ? { name: 'bench-bullmq' } : { name: 'bench-bullmq', maxConcurrency },
  )
  const m = meter(controller)
  await m.pool.calibrate()
  let handled = 0
  let failed = 0
  const startedAt = performance.now()
  let finishedAt = 0
  const consumer = new BackpressureWorker(queue.name, () => m.handle(), {
    controller,
    worker: { connection, removeOnComplete: { count: 0 } },
  })
  consumer.worker.on('failed', () => failed++)
  // Listening right after construction misses nothing: no job completes before the next tick.
  await new Promise<void>((resolve) => {
    consumer.worker.on('completed', () => {
      if (++handled === messages) {
        finishedAt = performance.now()
        resolve()
      }
    })
  })
  await consumer.close()
  await queue.obliterate({ force: true })
  await queue.close()
  m.pool.close()
  return throughputRow(
    'bullmq',
    maxConcurrency,
    run,
    messages,
    finishedAt - startedAt,
    m.limits,
    m.overLimit,
    failed,
  )
}

async function amqpThroughput(
  rabbit: RabbitServer,
  messages: number,
  run: number,
  maxConcurrency: number | undefined,
): Promise<ThroughputRun> {
  const connection = await amqplib.connect(rabbit.url)
  const publisher = await connection.createConfirmChannel()
  const queue = `throughput-${run}-${maxConcurrency ?? 'adaptive'}`
  await publisher.assertQueue(queue, { durable: false })
  for (let id = 0; id < messages; id++) publisher.sendToQueue(queue, Buffer.from(String(id)))
  await publisher.waitForConfirms()
  const controller = new BackpressureController(
    maxConcurrency === undefined ? { name: 'bench-amqp' } : { name: 'bench-amqp', maxConcurrency },
  )
  const m = meter(controller)
  await m.pool.calibrate()
  let handled = 0
  let finishedAt = 0
  let resolveDone: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve
  })
  const consumer = new AmqpConsumer(
    async () => {
      await m.handle()
      if (++handled === messages) {
        finishedAt = performance.now()
        resolveDone()
      }
    },
    { controller, connection, queue },
  )
  const startedAt = performance.now()
  await consumer.start()
  await done
  await consumer.close()
  const failed = consumer.counters.retried + consumer.counters.deadLettered
  await publisher.deleteQueue(queue)
  await connection.close()
  m.pool.close()
  return throughputRow(
    'amqp',
    maxConcurrency,
    run,
    messages,
    finishedAt - startedAt,
    m.limits,
    m.overLimit,
    failed,
  )
}

/**
 * The pool alone, in this process, with no broker: `messages` queries, 8 in flight, as fast as it
 * answers. On an idle machine it runs at the pool's capacity; on a loaded one it shows what the
 * machine let any consumer reach, to read the consumers' rows against.
 */
async function poolAlone(messages: number, run: number): Promise<ThroughputRun> {
  const pool = new SimPool({ size: POOL_SIZE, queryMs: QUERY_MS })
  await pool.calibrate()
  let next = 0
  const startedAt = performance.now()
  const lane = async (): Promise<void> => {
    while (next < messages) {
      next++
      await pool.query()
    }
  }
  await Promise.all(Array.from({ length: FIXED_LIMIT }, lane))
  const durationMs = performance.now() - startedAt
  pool.close()
  const row = throughputRow('bullmq', FIXED_LIMIT, run, messages, durationMs, [FIXED_LIMIT], 0, 0)
  return { ...row, broker: 'none' }
}

function throughputRow(
  broker: Broker,
  maxConcurrency: number | undefined,
  run: number,
  messages: number,
  durationMs: number,
  limits: number[],
  overLimit: number,
  failed: number,
): ThroughputRun {
  const perSecond = (messages * 1000) / durationMs
  return {
    broker,
    limit: maxConcurrency === undefined ? 'adaptive' : `fixed ${maxConcurrency}`,
    run,
    messages,
    durationMs: round(durationMs),
    perSecond: round(perSecond, 1),
    ratio: round(perSecond / CAPACITY, 4),
    limitMedian: median(limits),
    limitMin: Math.min(...limits),
    limitMax: Math.max(...limits),
    overLimit,
    failed,
  }
}

/** A fixture consumer process; `onLine` sees each line it prints; resolves once it says `ready`. */
async function startChild(
  broker: Broker,
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', tsx, CHILDREN[broker]], {
    cwd: root,
    env: { ...process.env, ...env, LIMIT: String(KILL_LIMIT) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`${broker} consumer exited with ${code} before it was ready`)),
    )
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) {
        if (line === 'ready') resolve()
        else onLine(line)
      }
    })
  })
  return child
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

async function bullmqKill(redis: RedisServer, messages: number, run: number): Promise<KillRun> {
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }
  const queue = new Queue(`kill-${run}`, { connection })
  const client = new Redis(connection)
  for (let start = 0; start < messages; start += 1000) {
    const batch = []
    for (let id = start; id < Math.min(messages, start + 1000); id++) batch.push({ name: 'm', data: { id } })
    await queue.addBulk(batch)
  }
  const env = { REDIS_PORT: String(redis.port), QUEUE: queue.name }
  const done = `${queue.name}:done`
  const began = performance.now()
  const first = await startChild('bullmq', env, () => {})
  await until(async () => (await client.llen(done)) >= messages / 3, 300_000, 'a third of the jobs')
  first.kill('SIGKILL')
  await once(first, 'exit')
  const inFlightAtKill = await queue.getActiveCount()
  const handledAtKill = await client.llen(done)
  const second = await startChild('bullmq', env, () => {})
  await until(async () => (await queue.getCompletedCount()) === messages, 600_000, 'every job')
  const durationMs = performance.now() - began
  second.kill('SIGTERM')
  await once(second, 'exit')
  const ids = await client.lrange(done, 0, -1)
  const processed = new Set(ids).size
  const overLimit = Number(await client.get(`${queue.name}:over-limit`))
  await queue.obliterate({ force: true })
  await queue.close()
  client.disconnect()
  return {
    broker: 'bullmq',
    run,
    messages,
    handledAtKill,
    inFlightAtKill,
    processed,
    lost: messages - processed,
    duplicates: ids.length - processed,
    overLimit,
    durationMs: round(durationMs),
  }
}

async function amqpKill(rabbit: RabbitServer, messages: number, run: number): Promise<KillRun> {
  const connection = await amqplib.connect(rabbit.url)
  const publisher = await connection.createConfirmChannel()
  const queue = `kill-${run}`
  await publisher.assertQueue(queue, { durable: false })
  for (let id = 0; id < messages; id++) publisher.sendToQueue(queue, Buffer.from(String(id)))
  await publisher.waitForConfirms()
  const done: string[] = []
  let starts = 0
  let overLimit = 0
  const onLine = (line: string) => {
    if (line === 'over') overLimit++
    else if (line.startsWith('start ')) starts++
    else if (line.startsWith('done ')) done.push(line.slice(5))
  }
  const env = { AMQP_URL: rabbit.url, QUEUE: queue }
  const began = performance.now()
  const first = await startChild('amqp', env, onLine)
  await until(() => done.length >= messages / 3, 300_000, 'a third of the messages')
  first.kill('SIGKILL')
  await once(first, 'exit')
  const inFlightAtKill = starts - done.length
  const handledAtKill = done.length
  const second = await startChild('amqp', env, onLine)
  await until(
    async () => new Set(done).size === messages && (await publisher.checkQueue(queue)).messageCount === 0,
    600_000,
    'every message',
  )
  const durationMs = performance.now() - began
  second.kill('SIGTERM')
  await once(second, 'exit')
  const processed = new Set(done).size
  await publisher.deleteQueue(queue)
  await connection.close()
  return {
    broker: 'amqp',
    run,
    messages,
    handledAtKill,
    inFlightAtKill,
    processed,
    lost: messages - processed,
    duplicates: done.length - processed,
    overLimit,
    durationMs: round(durationMs),
  }
}

export async function runConsumers({ quick, runs, log }: Options): Promise<ConsumersResults> {
  const messages = quick ? 2000 : 10_000
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const throughput: ThroughputRun[] = []
  const kill: KillRun[] = []
  const skipped: Broker[] = []
  let redis: RedisServer | undefined
  let rabbit: RabbitServer | undefined
  try {
    if (redisAvailable) redis = await startRedis()
    else skipped.push('bullmq')
    if (rabbitAvailable) rabbit = await startRabbit()
    else skipped.push('amqp')
    for (let run = 1; run <= runs; run++) {
      const alone = await poolAlone(messages, run)
      log(
        `  pool alone (no broker) run ${run}: ${alone.perSecond}/s = ${(alone.ratio * 100).toFixed(1)}% of ${CAPACITY}/s`,
      )
      throughput.push(alone)
      // The default (adaptive) limit, then a fixed one: the consumer's own cost, apart from the limit's.
      for (const maxConcurrency of [undefined, FIXED_LIMIT]) {
        for (const broker of ['bullmq', 'amqp'] as const) {
          const t =
            broker === 'bullmq'
              ? redis === undefined
                ? undefined
                : await bullmqThroughput(redis, messages, run, maxConcurrency)
              : rabbit === undefined
                ? undefined
                : await amqpThroughput(rabbit, messages, run, maxConcurrency)
          if (t === undefined) continue
          log(
            `  ${broker} ${t.limit} run ${run}: ${t.perSecond}/s = ${(t.ratio * 100).toFixed(1)}% of ${CAPACITY}/s, limit ${t.limitMin}–${t.limitMax} (median ${t.limitMedian}), over limit ${t.overLimit}, failed ${t.failed}`,
          )
          throughput.push(t)
        }
      }
      if (redis !== undefined) {
        const k = await bullmqKill(redis, messages, run)
        log(
          `  bullmq kill run ${run}: ${k.processed}/${k.messages} processed, ${k.lost} lost, ${k.duplicates} duplicates, ${k.inFlightAtKill} in flight at the kill`,
        )
        kill.push(k)
      }
      if (rabbit !== undefined) {
        const k = await amqpKill(rabbit, messages, run)
        log(
          `  amqp kill run ${run}: ${k.processed}/${k.messages} processed, ${k.lost} lost, ${k.duplicates} duplicates, ${k.inFlightAtKill} in flight at the kill`,
        )
        kill.push(k)
      }
    }
  } finally {
    await redis?.stop()
    await rabbit?.stop()
  }
  return {
    scenario: { poolSize: POOL_SIZE, queryMs: QUERY_MS, capacity: CAPACITY, killLimit: KILL_LIMIT },
    messages,
    runs,
    startedAt,
    command: `pnpm bench ${process.argv.slice(2).join(' ')}`.trim(),
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    throughput,
    kill,
    skipped,
  }
}

export const CONSUMERS_HEADING = 'Message-queue consumers on real brokers'

/** The report's section for this tier. */
export function consumersSection(c: ConsumersResults): string {
  const s = c.scenario
  const out: string[] = [`## ${CONSUMERS_HEADING}`, '']
  out.push(
    `A BullMQ worker (\`@backpressure/bullmq\`, on redis-server) and an AMQP consumer (\`@backpressure/amqp\`, on RabbitMQ), each with the default adaptive controller, drain a queue filled with ${c.messages} messages; each message runs one query on a pool of ${s.poolSize} connections × ${s.queryMs} ms (capacity ${s.capacity} messages/s). Throughput is messages over the time from the consumer's start to the last one handled; the row "pool alone" is the pool in the same process, with no broker and no consumer (8 queries always in flight): what this machine let any consumer reach at that moment, since the simulated database's answers wait for a busy event loop. "Over limit" counts handler starts that found more handlers running than the limit in force. Then a consumer process (fixed limit ${s.killLimit}) is killed with SIGKILL once a third of the messages were handled and a fresh one is started. Measured ${c.startedAt} with \`${c.command}\`, load average ${c.loadavgStart.join(' / ')} at the start, ${c.loadavgEnd.join(' / ')} at the end.`,
  )
  out.push('')
  if (c.skipped.length > 0) out.push(`Not measured (broker not installed): ${c.skipped.join(', ')}.`, '')
  out.push(
    '| consumer | limit | run | messages/s | of capacity | limit min–max (median) | over limit | failed |',
  )
  out.push('|---|---|---:|---:|---:|---|---:|---:|')
  for (const t of c.throughput) {
    out.push(
      `| ${t.broker === 'none' ? 'pool alone (no broker)' : t.broker} | ${t.broker === 'none' ? '8 queries in flight' : t.limit} | ${t.run} | ${t.perSecond.toFixed(1)} | **${(t.ratio * 100).toFixed(1)}%** | ${t.limitMin}–${t.limitMax} (${t.limitMedian}) | ${t.overLimit} | ${t.failed} |`,
    )
  }
  out.push('')
  out.push(
    '| consumer killed | run | messages | handled before the kill | in flight at the kill | processed | lost | duplicates |',
  )
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const k of c.kill) {
    out.push(
      `| ${k.broker} | ${k.run} | ${k.messages} | ${k.handledAtKill} | ${k.inFlightAtKill} | ${k.processed} | **${k.lost}** | ${k.duplicates} |`,
    )
  }
  out.push('')
  out.push(
    'Duplicates can only be messages whose handler had finished but whose completion (BullMQ) or ack (AMQP) had not reached the broker at the kill: at most the limit. A consumer row below 95% next to a "pool alone" row also below it was held back by the machine (other processes on its two cores), not by the consumer: the simulated database answers only as fast as a busy event loop reads.',
  )
  out.push('')
  return out.join('\n')
}

/** The targets table's cell: each consumer's median share of capacity (and range) by limit, then the kill counts. */
export function consumersSummary(c: ConsumersResults): string {
  const groups = new Map<string, number[]>()
  for (const t of c.throughput) {
    const key = t.broker === 'none' ? 'pool alone' : `${t.broker} ${t.limit}`
    groups.set(key, [...(groups.get(key) ?? []), t.ratio * 100])
  }
  const shares = [...groups].map(([key, values]) => {
    const range =
      values.length > 1 ? ` (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})` : ''
    return `${key} ${median(values).toFixed(1)}%${range}`
  })
  const lost = c.kill.reduce((sum, k) => sum + k.lost, 0)
  const duplicates = c.kill.reduce((sum, k) => sum + k.duplicates, 0)
  return `${shares.join(', ')}; killed ${c.kill.length}×: ${lost} lost, ${duplicates} duplicates`
}
