import {
  assertKnownKeys,
  type BackpressureController,
  type BackpressureStats,
  InvalidOptionError,
  Permit,
} from '@backpressure/core'
import { type Job, Worker, type WorkerOptions } from 'bullmq'

/** Handles one job under a permit; `signal` aborts when the worker is closed with force or the job is cancelled. */
export type JobHandler<Data = unknown, Result = unknown> = (
  job: Job<Data, Result>,
  signal: AbortSignal | undefined,
) => Promise<Result>

export interface BackpressureWorkerOptions<Data = unknown, Result = unknown> {
  /**
   * Admits every job. Its limit (fixed or adaptive) becomes the worker's concurrency, and follows it
   * while it moves. The worker never closes it: it may also guard HTTP traffic in the same process.
   */
  readonly controller: BackpressureController
  /**
   * Options for the BullMQ `Worker` (`connection` at least). `concurrency` is not one of them: the
   * controller's limit sets it. `autorun` is honoured.
   */
  readonly worker: Omit<WorkerOptions, 'concurrency'>
  /**
   * The controller's priority for a job (higher first). By default BullMQ's own order: a job without
   * `opts.priority` (0) first, then `opts.priority` 1, 2, … (BullMQ's lower number = more important),
   * mapped to `-opts.priority`.
   * @default (job) => -(job.opts.priority ?? 0)
   */
  readonly priority?: (job: Job<Data, Result>) => number
  /**
   * When the controller sheds a job, BullMQ's rate limit holds the queue for this long (ms) before any
   * worker fetches again; the job itself goes straight back to waiting, its attempts untouched.
   * @default 1000
   */
  readonly shedDelayMs?: number
}

const OPTION_KEYS: readonly string[] = Object.keys({
  controller: true,
  worker: true,
  priority: true,
  shedDelayMs: true,
} satisfies Record<keyof BackpressureWorkerOptions, true>)

function bullmqPriority(job: Job): number {
  const priority = job.opts.priority ?? 0
  return priority === 0 ? 0 : -priority
}

/** BullMQ refuses a concurrency below 1 or not finite; the controller's limit is at least 1. */
function concurrencyFor(limit: number): number {
  return Math.max(1, Math.floor(limit))
}

/**
 * A BullMQ `Worker` whose concurrency is the controller's limit: it pulls a job only when a permit
 * can be free, and each job runs under one. A job the controller sheds (latency, process signals, a
 * closed controller, a full queue when HTTP traffic shares it) goes back to waiting through BullMQ's
 * rate-limit mechanism (`rateLimit` + `RateLimitError`): not failed, no attempt spent, its priority
 * kept. A handler that throws fails the job as BullMQ always does (attempts, backoff).
 *
 * @example
 * const controller = new BackpressureController({ maxConcurrency: 'adaptive' })
 * const consumer = new BackpressureWorker('emails', (job) => send(job.data), {
 *   controller,
 *   worker: { connection: { host: '127.0.0.1', port: 6379 } },
 * })
 * process.on('SIGTERM', () => consumer.close())
 */
export class BackpressureWorker<Data = unknown, Result = unknown> {
  /** The BullMQ worker: listen to its events (`completed`, `failed`, `error`) here. */
  readonly worker: Worker<Data, Result>
  readonly controller: BackpressureController
  private readonly handler: JobHandler<Data, Result>
  private readonly priorityOf: (job: Job<Data, Result>) => number
  private readonly shedDelayMs: number
  private readonly unsubscribe: () => void
  private closing: Promise<void> | undefined = undefined
  private shedCount = 0

  constructor(
    queueName: string,
    handler: JobHandler<Data, Result>,
    options: BackpressureWorkerOptions<Data, Result>,
  ) {
    if (typeof queueName !== 'string' || queueName.length === 0) {
      throw new InvalidOptionError('queueName', 'a non-empty string', queueName)
    }
    if (typeof handler !== 'function') throw new InvalidOptionError('handler', 'a function', handler)
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'an object', options)
    }
    assertKnownKeys('', options, OPTION_KEYS)
    const { controller, worker, priority, shedDelayMs = 1000 } = options
    if (typeof controller?.admit !== 'function' || typeof controller.on !== 'function') {
      throw new InvalidOptionError('controller', 'a BackpressureController', controller)
    }
    if (typeof worker !== 'object' || worker === null || worker.connection === undefined) {
      throw new InvalidOptionError('worker', 'BullMQ worker options with a `connection`', worker)
    }
    if ('concurrency' in worker) {
      throw new InvalidOptionError(
        'worker.concurrency',
        'no value: the controller’s limit sets the concurrency',
        (worker as { concurrency?: unknown }).concurrency,
      )
    }
    if (priority !== undefined && typeof priority !== 'function') {
      throw new InvalidOptionError('priority', 'a function of the job', priority)
    }
    if (typeof shedDelayMs !== 'number' || !Number.isInteger(shedDelayMs) || shedDelayMs < 1) {
      throw new InvalidOptionError('shedDelayMs', 'an integer from 1 and up', shedDelayMs)
    }
    this.controller = controller
    this.handler = handler
    this.priorityOf = priority ?? (bullmqPriority as (job: Job<Data, Result>) => number)
    this.shedDelayMs = shedDelayMs
    // Three declared parameters: BullMQ hands a processor an AbortSignal only when it declares one.
    const processor = (job: Job<Data, Result>, _token?: string, signal?: AbortSignal) =>
      this.process(job, signal)
    this.worker = new Worker<Data, Result>(queueName, processor, {
      ...worker,
      concurrency: concurrencyFor(controller.limit),
    })
    this.unsubscribe = controller.on('limit', ({ limit }) => {
      if (!this.worker.closing) this.worker.concurrency = concurrencyFor(limit)
    })
  }

  /** Jobs this worker sent back to waiting because the controller shed them. */
  get shed(): number {
    return this.shedCount
  }

  /** The controller's stats: in flight, limit, latency, rejections by reason (shed jobs included). */
  stats(): BackpressureStats {
    return this.controller.stats()
  }

  /**
   * Stops pulling jobs, lets the jobs in flight finish (their permits released), then closes the
   * worker's Redis connections. The controller stays open. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe()
      await this.worker.close()
    })()
    return this.closing
  }

  private async process(job: Job<Data, Result>, signal: AbortSignal | undefined): Promise<Result> {
    const admitted = this.controller.admit(this.priorityOf(job), signal)
    const settled = admitted instanceof Promise ? await admitted : admitted
    if (!(settled instanceof Permit)) {
      this.shedCount++
      // BullMQ's manual rate limit: the job moves from active back to waiting (or prioritized) with
      // attemptsMade untouched, and fetching pauses for the delay, so a shedding controller is not fed
      // the rest of the queue at once only to shed it too. BullMQ 6 marks Worker#rateLimit deprecated in
      // favour of Queue#rateLimit, which sets the same queue-wide key but needs a Queue (and a connection
      // of its own); if a later major drops it, that is the replacement.
      await this.worker.rateLimit(this.shedDelayMs)
      throw Worker.RateLimitError()
    }
    try {
      return await this.handler(job, signal)
    } finally {
      settled.release()
    }
  }
}
