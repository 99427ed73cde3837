import {
  assertKnownKeys,
  type BackpressureController,
  type BackpressureStats,
  InvalidOptionError,
  Permit,
} from '@backpressure/core'
import type { ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib'

/** Handles one message under a permit; resolving acks it, throwing counts a failed delivery. */
export type MessageHandler = (message: ConsumeMessage) => Promise<unknown>

/**
 * The header that counts a message's failed deliveries. RabbitMQ's own `x-delivery-count` exists only
 * on quorum queues, and there it also counts every requeue, sheds included; this one counts only the
 * handler's failures, on any queue type, and travels with the message when it is republished.
 */
export const FAILURES_HEADER = 'x-backpressure-failures'

export interface AmqpConsumerOptions {
  /**
   * Admits every message. Its limit (fixed or adaptive) becomes the channel's prefetch, and follows
   * it while it moves. The consumer never closes it: it may also guard HTTP traffic in the process.
   */
  readonly controller: BackpressureController
  /**
   * The amqplib connection (`await amqplib.connect(url)`). The consumer opens a confirm channel of
   * its own on it and closes that channel on `close()`; the connection stays yours.
   */
  readonly connection: ChannelModel
  /** The queue to consume. It must exist (declare it with `assertQueue` first). */
  readonly queue: string
  /**
   * After this many failed deliveries (the handler threw) a message is dead-lettered instead of
   * retried. Retries go to the back of the queue.
   * @default 5
   */
  readonly maxDeliveries?: number
  /**
   * Where a message goes after `maxDeliveries` failures: published to this exchange (it must exist;
   * checked on `start()`) with the failure count and the last error in its headers, then acked. Leave
   * it out to `nack` the message without requeue instead, so the queue's own `x-dead-letter-exchange`
   * (if it has one) takes it, with RabbitMQ's `x-death` header.
   * @default undefined
   */
  readonly deadLetterExchange?: string
  /** Routing key for the dead-letter exchange. @default the message's own routing key */
  readonly deadLetterRoutingKey?: string
  /**
   * The controller's priority for a message (higher first).
   * @default the message's AMQP `priority` property (0–255), or 0
   */
  readonly priority?: (message: ConsumeMessage) => number
  /**
   * A message the controller sheds is held this long (ms) before it is `nack`ed back to the queue:
   * while held it fills a prefetch slot, so the broker does not redeliver it, and others, at once to a
   * consumer that is shedding.
   * @default 1000
   */
  readonly shedDelayMs?: number
}

const OPTION_KEYS: readonly string[] = Object.keys({
  controller: true,
  connection: true,
  queue: true,
  maxDeliveries: true,
  deadLetterExchange: true,
  deadLetterRoutingKey: true,
  priority: true,
  shedDelayMs: true,
} satisfies Record<keyof AmqpConsumerOptions, true>)

/** Longest error message copied into a dead-lettered message's headers. */
const MAX_ERROR_LENGTH = 512

function amqpPriority(message: ConsumeMessage): number {
  const priority = message.properties.priority
  return typeof priority === 'number' ? priority : 0
}

function prefetchFor(limit: number): number {
  return Math.max(1, Math.floor(limit))
}

function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidOptionError(name, 'an integer from 1 and up', value)
  }
  return value
}

function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new InvalidOptionError(name, 'a string', value)
  return value
}

/**
 * A RabbitMQ consumer (amqplib) whose prefetch is the controller's limit. Each message runs under a
 * permit and is acked only after its handler resolved; a message the controller sheds is `nack`ed
 * back to the queue (not a failure, no count); a handler that throws is retried by republishing the
 * message with its failure count, and after `maxDeliveries` failures it is dead-lettered.
 *
 * @example
 * const connection = await amqplib.connect('amqp://127.0.0.1')
 * const consumer = new AmqpConsumer((message) => save(JSON.parse(message.content.toString())), {
 *   controller: new BackpressureController(),
 *   connection,
 *   queue: 'orders',
 *   deadLetterExchange: 'orders.dead',
 * })
 * await consumer.start()
 * process.on('SIGTERM', () => consumer.close())
 */
export class AmqpConsumer {
  readonly controller: BackpressureController
  readonly queue: string
  private readonly connection: ChannelModel
  private readonly handler: MessageHandler
  private readonly maxDeliveries: number
  private readonly deadLetterExchange: string | undefined
  private readonly deadLetterRoutingKey: string | undefined
  private readonly priorityOf: (message: ConsumeMessage) => number
  private readonly shedDelayMs: number
  private channel: ConfirmChannel | undefined = undefined
  private consumerTag: string | undefined = undefined
  private unsubscribe: (() => void) | undefined = undefined
  private prefetchCount = 0
  /** Messages delivered and not yet acked or nacked: close() waits for them. */
  private unsettled = 0
  private settledAll: (() => void) | undefined = undefined
  private readonly held = new Map<ReturnType<typeof setTimeout>, ConsumeMessage>()
  private starting: Promise<void> | undefined = undefined
  private closing: Promise<void> | undefined = undefined
  private counts = { shed: 0, retried: 0, deadLettered: 0 }

  constructor(handler: MessageHandler, options: AmqpConsumerOptions) {
    if (typeof handler !== 'function') throw new InvalidOptionError('handler', 'a function', handler)
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'an object', options)
    }
    assertKnownKeys('', options, OPTION_KEYS)
    const { controller, connection, queue, priority } = options
    if (typeof controller?.admit !== 'function' || typeof controller.on !== 'function') {
      throw new InvalidOptionError('controller', 'a BackpressureController', controller)
    }
    if (typeof connection?.createConfirmChannel !== 'function') {
      throw new InvalidOptionError('connection', 'an amqplib connection (from amqplib.connect)', connection)
    }
    if (typeof queue !== 'string' || queue.length === 0) {
      throw new InvalidOptionError('queue', 'a non-empty string', queue)
    }
    if (priority !== undefined && typeof priority !== 'function') {
      throw new InvalidOptionError('priority', 'a function of the message', priority)
    }
    this.controller = controller
    this.connection = connection
    this.queue = queue
    this.handler = handler
    this.maxDeliveries = positiveInteger('maxDeliveries', options.maxDeliveries, 5)
    this.shedDelayMs = positiveInteger('shedDelayMs', options.shedDelayMs, 1000)
    this.deadLetterExchange = optionalString('deadLetterExchange', options.deadLetterExchange)
    this.deadLetterRoutingKey = optionalString('deadLetterRoutingKey', options.deadLetterRoutingKey)
    this.priorityOf = priority ?? amqpPriority
  }

  /** The prefetch last sent to the broker (the controller's limit, at least 1). */
  get prefetch(): number {
    return this.prefetchCount
  }

  /** Messages shed (nacked back to the queue), retried after a failure, and dead-lettered so far. */
  get counters(): { readonly shed: number; readonly retried: number; readonly deadLettered: number } {
    return { ...this.counts }
  }

  /** The controller's stats: in flight, limit, latency, rejections by reason (shed messages included). */
  stats(): BackpressureStats {
    return this.controller.stats()
  }

  /**
   * Opens the consumer's channel, checks the dead-letter exchange, sets the prefetch to the limit and
   * starts consuming. Rejects when the queue or the exchange does not exist.
   */
  start(): Promise<void> {
    this.starting ??= this.open()
    return this.starting
  }

  /**
   * Stops consuming (the broker sends nothing more), nacks back the messages held after a shed, waits
   * for the messages in flight to be handled and acked, then closes the channel. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown()
    return this.closing
  }

  private async open(): Promise<void> {
    if (this.deadLetterExchange !== undefined && this.deadLetterExchange !== '') {
      // A missing exchange closes the channel that asked: ask on one of its own.
      const probe = await this.connection.createChannel()
      probe.on('error', () => {})
      try {
        await probe.checkExchange(this.deadLetterExchange)
      } catch {
        throw new InvalidOptionError(
          'deadLetterExchange',
          'an exchange that exists on the broker',
          this.deadLetterExchange,
        )
      }
      await probe.close()
    }
    const channel = await this.connection.createConfirmChannel()
    this.channel = channel
    await channel.checkQueue(this.queue)
    // Channel-wide (global) prefetch: RabbitMQ applies a new value at once to the consumer already
    // running, where a per-consumer one only applies to consumers started after it.
    this.prefetchCount = prefetchFor(this.controller.limit)
    await channel.prefetch(this.prefetchCount, true)
    this.unsubscribe = this.controller.on('limit', ({ limit }) => this.followLimit(limit))
    const { consumerTag } = await channel.consume(this.queue, (message) => {
      if (message !== null) this.onMessage(message)
    })
    this.consumerTag = consumerTag
  }

  private followLimit(limit: number): void {
    const prefetch = prefetchFor(limit)
    if (prefetch === this.prefetchCount || this.channel === undefined || this.closing !== undefined) return
    this.prefetchCount = prefetch
    // A failed basic.qos means the channel is closing; the channel's own error says why.
    this.channel.prefetch(prefetch, true).catch(() => {})
  }

  private onMessage(message: ConsumeMessage): void {
    this.unsettled++
    const admitted = this.controller.admit(this.priorityOf(message))
    if (admitted instanceof Permit) {
      this.run(message, admitted)
    } else if (admitted instanceof Promise) {
      admitted.then((settled) => {
        if (settled instanceof Permit) this.run(message, settled)
        else this.shed(message)
      })
    } else {
      this.shed(message)
    }
  }

  private shed(message: ConsumeMessage): void {
    this.counts.shed++
    if (this.closing !== undefined) {
      this.settle(() => this.channel?.nack(message, false, true))
      return
    }
    const timer = setTimeout(() => {
      this.held.delete(timer)
      this.settle(() => this.channel?.nack(message, false, true))
    }, this.shedDelayMs)
    this.held.set(timer, message)
  }

  private async run(message: ConsumeMessage, permit: Permit): Promise<void> {
    try {
      await this.handler(message)
      this.settle(() => this.channel?.ack(message))
    } catch (error) {
      await this.failed(message, error).catch(() => {
        // The channel is gone: the broker requeues the message itself, its count unchanged.
      })
      this.settle()
    } finally {
      permit.release()
    }
  }

  /**
   * A failed delivery: republished with its count raised (to the back of the queue), or dead-lettered
   * once the count reaches maxDeliveries. The copy is confirmed by the broker before the original is
   * acked, so a crash in between leaves a duplicate, never a loss.
   */
  private async failed(message: ConsumeMessage, error: unknown): Promise<void> {
    const channel = this.channel!
    const previous = Number(message.properties.headers?.[FAILURES_HEADER] ?? 0)
    const failures = (Number.isFinite(previous) ? previous : 0) + 1
    if (failures < this.maxDeliveries) {
      this.counts.retried++
      await publish(channel, '', this.queue, message, { [FAILURES_HEADER]: failures })
      channel.ack(message)
      return
    }
    this.counts.deadLettered++
    if (this.deadLetterExchange === undefined) {
      channel.nack(message, false, false)
      return
    }
    const reason = error instanceof Error ? error.message : String(error)
    await publish(
      channel,
      this.deadLetterExchange,
      this.deadLetterRoutingKey ?? message.fields.routingKey,
      message,
      {
        [FAILURES_HEADER]: failures,
        'x-backpressure-queue': this.queue,
        'x-backpressure-error': reason.slice(0, MAX_ERROR_LENGTH),
      },
    )
    channel.ack(message)
  }

  private settle(action?: () => void): void {
    try {
      action?.()
    } catch {
      // The channel closed under us: the broker requeues every unacked message by itself.
    }
    this.unsettled--
    if (this.unsettled === 0) this.settledAll?.()
  }

  private async shutDown(): Promise<void> {
    await this.starting?.catch(() => {})
    this.unsubscribe?.()
    const channel = this.channel
    if (channel === undefined) return
    if (this.consumerTag !== undefined) await channel.cancel(this.consumerTag).catch(() => {})
    for (const [timer, message] of this.held) {
      clearTimeout(timer)
      this.held.delete(timer)
      this.settle(() => channel.nack(message, false, true))
    }
    if (this.unsettled > 0) {
      await new Promise<void>((resolve) => {
        this.settledAll = resolve
      })
    }
    await channel.close().catch(() => {})
  }
}

/** Publishes a copy of `message` with extra headers and resolves when the broker confirmed it. */
function publish(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  message: ConsumeMessage,
  headers: Record<string, unknown>,
): Promise<void> {
  const { properties } = message
  const options: Options.Publish = {
    headers: { ...properties.headers, ...headers },
    persistent: properties.deliveryMode === 2,
    contentType: properties.contentType,
    contentEncoding: properties.contentEncoding,
    priority: properties.priority,
    correlationId: properties.correlationId,
    replyTo: properties.replyTo,
    expiration: properties.expiration,
    messageId: properties.messageId,
    timestamp: properties.timestamp,
    type: properties.type,
    appId: properties.appId,
  }
  return new Promise((resolve, reject) => {
    channel.publish(exchange, routingKey, message.content, options, (error) => {
      if (error === null || error === undefined) resolve()
      else reject(error instanceof Error ? error : new Error(String(error)))
    })
  })
}
