import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BackpressureController, InvalidOptionError, type Permit } from '@backpressure/core'
import amqplib, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestPool } from '../../../test/support/pool.js'
import { AmqpConsumer, FAILURES_HEADER } from '../src/index.js'
import { type RabbitServer, rabbitAvailable, startRabbit } from './rabbitmq-server.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const childFile = fileURLToPath(new URL('./fixtures/consumer-child.ts', import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

/** Messages in the kill-and-restart test: 5,000 (12.5 s of work at the pool's 400/s; the bench runs 10,000). */
const KILL_MESSAGES = Number(process.env.BP_CONSUMER_JOBS ?? 5_000)

describe('options', () => {
  const controller = new BackpressureController({ maxConcurrency: 4 })
  const connection = { createConfirmChannel() {} } as unknown as ChannelModel
  const handler = async () => undefined
  const base = { controller, connection, queue: 'q' }

  it.each([
    ['handler', () => new AmqpConsumer('x' as never, base)],
    ['controller', () => new AmqpConsumer(handler, { ...base, controller: {} as never })],
    ['connection', () => new AmqpConsumer(handler, { ...base, connection: {} as never })],
    ['queue', () => new AmqpConsumer(handler, { ...base, queue: '' })],
    ['maxDeliveries', () => new AmqpConsumer(handler, { ...base, maxDeliveries: 0 })],
    ['shedDelayMs', () => new AmqpConsumer(handler, { ...base, shedDelayMs: 1.5 })],
    ['deadLetterExchange', () => new AmqpConsumer(handler, { ...base, deadLetterExchange: 3 as never })],
    ['priority', () => new AmqpConsumer(handler, { ...base, priority: 'high' as never })],
    ['prefetch', () => new AmqpConsumer(handler, { ...base, prefetch: 10 } as never)],
  ])('refuses a bad %s with an InvalidOptionError naming it', (name, build) => {
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(name)
  })
})

describe.skipIf(!rabbitAvailable)('on a real RabbitMQ', () => {
  let rabbit: RabbitServer
  let connection: ChannelModel
  let publisher: ConfirmChannel
  let queueNumber = 0

  beforeAll(async () => {
    rabbit = await startRabbit()
    connection = await amqplib.connect(rabbit.url)
    publisher = await connection.createConfirmChannel()
  }, 90_000)

  afterAll(async () => {
    await connection?.close().catch(() => {})
    await rabbit?.stop()
  })

  async function freshQueue(): Promise<string> {
    const name = `q${++queueNumber}`
    await publisher.assertQueue(name, { durable: false })
    return name
  }

  async function publishMany(queue: string, count: number): Promise<void> {
    for (let id = 0; id < count; id++) publisher.sendToQueue(queue, Buffer.from(String(id)))
    await publisher.waitForConfirms()
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

  const ready = async (queue: string) => (await publisher.checkQueue(queue)).messageCount

  it('opens no more deliveries than the limit: the broker honours the prefetch set from it', async () => {
    const queue = await freshQueue()
    await publishMany(queue, 40)
    const controller = new BackpressureController({ maxConcurrency: 3 })
    let unsettled = 0
    let maxUnsettled = 0
    let handled = 0
    const consumer = new AmqpConsumer(
      async () => {
        unsettled++
        maxUnsettled = Math.max(maxUnsettled, unsettled)
        await new Promise((resolve) => setTimeout(resolve, 20))
        unsettled--
        handled++
      },
      { controller, connection, queue },
    )
    // Counted at delivery, before admission: more than 3 here would mean the broker pushed past the prefetch.
    let delivered = 0
    let maxDelivered = 0
    const admit = controller.admit.bind(controller)
    controller.admit = (...args) => {
      delivered++
      maxDelivered = Math.max(maxDelivered, delivered - handled)
      return admit(...args)
    }
    await consumer.start()
    expect(consumer.prefetch).toBe(3)
    await until(() => handled === 40, 20_000, 'every message')
    await consumer.close()
    expect(maxDelivered).toBeLessThanOrEqual(3)
    expect(maxUnsettled).toBeLessThanOrEqual(3)
    expect(await ready(queue)).toBe(0)
  })

  it('handles messages over a 4 × 10 ms pool, never more at once than the limit, and the capacity drop mid-run moves the limit and the prefetch with nothing failed', async () => {
    const queue = await freshQueue()
    const total = 1200
    await publishMany(queue, total)
    const pool = new TestPool(4, 10)
    const controller = new BackpressureController({ name: 'amqp-drop' })
    let running = 0
    let overLimit = 0
    let handled = 0
    let prefetchBehind = 0
    const limits: { at: number; limit: number }[] = []
    controller.on('limit', ({ limit }) => limits.push({ at: pool.completed, limit }))
    const consumer = new AmqpConsumer(
      async () => {
        running++
        if (running > controller.limit) overLimit++
        if (consumer.prefetch !== Math.max(1, Math.floor(controller.limit))) prefetchBehind++
        try {
          await pool.query()
          if (pool.completed === total / 2) pool.resize(1)
        } finally {
          running--
          handled++
        }
      },
      { controller, connection, queue },
    )
    // Deliveries not yet handled, counted when each arrives over the last quarter: the broker's view of
    // the prefetch. Had basic.qos not reached the running consumer, it would stay at the starting limit.
    let delivered = 0
    let maxOutstandingLate = 0
    const admit = controller.admit.bind(controller)
    controller.admit = (...args) => {
      delivered++
      // A delivery shed by the controller was nacked back at once: not outstanding (it comes again).
      if (pool.completed > (total * 3) / 4)
        maxOutstandingLate = Math.max(maxOutstandingLate, delivered - handled - consumer.counters.shed)
      return admit(...args)
    }
    await consumer.start()
    const startingPrefetch = consumer.prefetch
    await until(() => handled === total, 60_000, 'every message')
    await consumer.close()
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN
    const medianBefore = median(
      limits.filter((s) => s.at > total / 4 && s.at < total / 2).map((s) => s.limit),
    )
    const medianAfter = median(limits.filter((s) => s.at > (total * 3) / 4).map((s) => s.limit))
    // The highest limit in force from 5/8 of the run on (the samples there, and the one in force when it began).
    const inForce = limits.filter((s) => s.at <= (total * 5) / 8).at(-1)
    const maxLimitLate = Math.max(
      inForce?.limit ?? startingPrefetch,
      ...limits.filter((s) => s.at > (total * 5) / 8).map((s) => s.limit),
    )
    console.log(
      `amqp capacity drop: limit median ${medianBefore} at 4 connections, ${medianAfter} at 1; prefetch ${startingPrefetch} at start; at most ${maxOutstandingLate} deliveries outstanding in the last quarter (limit at most ${maxLimitLate} from 5/8 of the run on)`,
    )
    // One over: a lower prefetch reaches the broker a round trip after the limit moved, and what it sent
    // before stays outstanding. Without the change the broker would keep the starting prefetch's worth out.
    expect(maxOutstandingLate).toBeLessThanOrEqual(maxLimitLate + 1)
    expect(maxLimitLate + 1).toBeLessThan(startingPrefetch)
    expect(medianAfter).toBeLessThan(startingPrefetch)
    expect(overLimit).toBe(0)
    expect(prefetchBehind).toBe(0)
    // Nothing failed: no retries, no dead letters. A shed message is nacked back and handled later;
    // in some runs the limit sits at 14-17 before the drop (8-10 in most, on this code and the code
    // before it), and one connection then cannot start all it already holds within CoDel's interval,
    // so one may be shed (2 runs in 22 here; none in 10 on the code before the probe grid). A prefetch
    // that did not follow the limit would hold the starting prefetch's worth at every drop, and the
    // checks above catch it.
    expect(consumer.counters.retried).toBe(0)
    expect(consumer.counters.deadLettered).toBe(0)
    expect(consumer.counters.shed).toBeLessThanOrEqual(total / 100)
    expect(pool.completed).toBe(total)
    expect(medianAfter).toBeLessThan(medianBefore)
    expect(await ready(queue)).toBe(0)
  }, 90_000)

  it('nacks a shed message back to the queue without counting a failure, and acks it once handled', async () => {
    const queue = await freshQueue()
    const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
    const outside = controller.tryAcquire() as Permit
    const seen: ConsumeMessage[] = []
    const consumer = new AmqpConsumer(
      async (message) => {
        seen.push(message)
      },
      { controller, connection, queue, shedDelayMs: 20 },
    )
    await consumer.start()
    await publishMany(queue, 1)
    await until(() => consumer.counters.shed >= 3, 10_000, 'three sheds')
    expect(seen).toHaveLength(0)
    outside.release()
    await until(() => seen.length === 1, 10_000, 'the message to be handled')
    await consumer.close()
    expect(seen[0]!.fields.redelivered).toBe(true)
    expect(seen[0]!.properties.headers?.[FAILURES_HEADER]).toBeUndefined()
    expect(consumer.counters.retried).toBe(0)
    expect(consumer.counters.deadLettered).toBe(0)
    expect(controller.stats().rejections.queue_full).toBe(consumer.counters.shed)
    expect(await ready(queue)).toBe(0)
  })

  it('retries a failing message and dead-letters it after maxDeliveries failed deliveries', async () => {
    const queue = await freshQueue()
    await publisher.assertExchange('dead', 'fanout', { durable: false })
    const { queue: deadQueue } = await publisher.assertQueue('', { exclusive: true })
    await publisher.bindQueue(deadQueue, 'dead', '')
    const controller = new BackpressureController({ maxConcurrency: 2 })
    const attempts = new Map<string, number>()
    const consumer = new AmqpConsumer(
      async (message) => {
        const id = message.content.toString()
        attempts.set(id, (attempts.get(id) ?? 0) + 1)
        if (id === 'poison') throw new Error('cannot parse')
      },
      { controller, connection, queue, maxDeliveries: 3, deadLetterExchange: 'dead' },
    )
    await consumer.start()
    publisher.sendToQueue(queue, Buffer.from('poison'), { messageId: 'm1' })
    publisher.sendToQueue(queue, Buffer.from('fine'))
    await publisher.waitForConfirms()
    const dead = await new Promise<ConsumeMessage>((resolve) => {
      void publisher.consume(deadQueue, (message) => {
        if (message !== null) resolve(message)
      })
    })
    await consumer.close()
    expect(attempts.get('poison')).toBe(3)
    expect(attempts.get('fine')).toBe(1)
    expect(dead.content.toString()).toBe('poison')
    expect(dead.properties.messageId).toBe('m1')
    expect(dead.properties.headers).toMatchObject({
      [FAILURES_HEADER]: 3,
      'x-backpressure-queue': queue,
      'x-backpressure-error': 'cannot parse',
    })
    expect(consumer.counters).toEqual({ shed: 0, retried: 2, deadLettered: 1 })
    expect(await ready(queue)).toBe(0)
  })

  it('refuses to start when the dead-letter exchange does not exist', async () => {
    const queue = await freshQueue()
    const consumer = new AmqpConsumer(async () => undefined, {
      controller: new BackpressureController(),
      connection,
      queue,
      deadLetterExchange: 'no-such-exchange',
    })
    await expect(consumer.start()).rejects.toThrow(InvalidOptionError)
    await consumer.close()
  })

  it('finishes the messages in flight on close, then stops consuming', async () => {
    const queue = await freshQueue()
    await publishMany(queue, 50)
    const controller = new BackpressureController({ maxConcurrency: 5 })
    let started = 0
    let finished = 0
    const consumer = new AmqpConsumer(
      async () => {
        started++
        await new Promise((resolve) => setTimeout(resolve, 100))
        finished++
      },
      { controller, connection, queue },
    )
    await consumer.start()
    await until(() => started >= 5, 10_000, 'five messages to start')
    await consumer.close()
    expect(finished).toBe(started)
    expect(controller.inFlight).toBe(0)
    // Acked ones are gone; the rest are back in the queue, none lost.
    await until(async () => (await ready(queue)) === 50 - finished, 5_000, 'the rest back in the queue')
  })

  it(`loses no message across a SIGKILL of the consumer process and a restart (${KILL_MESSAGES} messages); duplicates only among those in flight`, async () => {
    const queue = await freshQueue()
    await publishMany(queue, KILL_MESSAGES)
    const limit = 8
    const done: string[] = []
    let starts = 0
    let over = 0
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['--import', tsx, childFile], {
        cwd: root,
        env: { ...process.env, AMQP_URL: rabbit.url, QUEUE: queue, LIMIT: String(limit) },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let buffered = ''
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`consumer exited with ${code} before it was ready`)))
        child.stdout!.on('data', (chunk: Buffer) => {
          buffered += chunk.toString()
          const lines = buffered.split('\n')
          buffered = lines.pop()!
          for (const line of lines) {
            if (line === 'ready') resolve()
            else if (line === 'over') over++
            else if (line.startsWith('start ')) starts++
            else if (line.startsWith('done ')) done.push(line.slice(5))
          }
        })
      })
      return child
    }
    const first = await start()
    await until(() => done.length >= KILL_MESSAGES / 3, 120_000, 'a third of the messages')
    first.kill('SIGKILL')
    await once(first, 'exit')
    const inFlightAtKill = starts - done.length
    const doneAtKill = done.length
    const second = await start()
    await until(
      async () => new Set(done).size === KILL_MESSAGES && (await ready(queue)) === 0,
      180_000,
      'every message',
    )
    second.kill('SIGTERM')
    await once(second, 'exit')
    const unique = new Set(done)
    const duplicates = done.length - unique.size
    console.log(
      `amqp kill: ${KILL_MESSAGES} messages, killed after ${doneAtKill} handled with ${inFlightAtKill} in the handler; ${unique.size} processed, ${duplicates} duplicates`,
    )
    expect(unique.size).toBe(KILL_MESSAGES)
    // Handled but not yet acked at the kill: at most the prefetch (the limit) of them.
    expect(duplicates).toBeLessThanOrEqual(limit)
    expect(inFlightAtKill).toBeLessThanOrEqual(limit)
    expect(over).toBe(0)
  }, 240_000)
})
