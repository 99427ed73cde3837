import type { Writable } from 'node:stream'
import { retryAfterSeconds as clampRetryAfter } from './bounds.js'
import { type Clock, type RandomSource, systemClock, type TimerHandle } from './clock.js'
import {
  CumulativeHistogram,
  DURATION_BUCKETS_SECONDS,
  RETRY_AFTER_BUCKETS_SECONDS,
} from './cumulative-histogram.js'
import { DeadlineHeap, type HeapEntry } from './deadline-heap.js'
import {
  type BackpressureError,
  createBackpressureError,
  InvalidOptionError,
  REJECTION_REASONS,
  type RejectionCode,
  type RejectionReason,
} from './errors.js'
import {
  EventLoopShedder,
  type EventLoopSheddingOptions,
  loopUtilizationReader,
  resolveEventLoopShedding,
} from './event-loop-shedding.js'
import { type BackpressureEventName, type BackpressureListener, EventHub } from './events.js'
import { LatencyWindow } from './latency-window.js'
import { type ConcurrencyLimit, FixedLimit, type LimitOption, resolveLimit } from './limit.js'
import { type MapOptions, mapWithController } from './map.js'
import { PriorityQueue, QueueEntry } from './priority-queue.js'
import { createNodeSampler, type ProcessSampler, ProcessSignals } from './process-signals.js'
import { type RetryAfterOption, type RetryAfterPolicy, resolveRetryAfter } from './retry-after.js'
import { type BackpressureStats, isClientCaused, overloadRejectionRate } from './stats.js'
import {
  assertKnownKeys,
  assertObject,
  booleanOption,
  functionOption,
  integerOption,
  numberOption,
  optionalLimit,
} from './validate.js'
import { type WritableOptions, writableWithController } from './writable.js'

export interface BackpressureOptions {
  /**
   * Requests in flight at once: a fixed number, or an adaptive limit that follows measured latency
   * (`'adaptive'`, or the options of the gradient or AIMD limit). The adaptive default protects a
   * server whose downstream capacity nobody told us; see docs/adaptive-limit.md.
   * @default 'adaptive'
   */
  readonly maxConcurrency?: LimitOption
  /** Requests allowed to wait for a slot; `0` means no queue. @default 1000 */
  readonly maxQueueDepth?: number
  /** A request that waited this long is rejected (`queue_timeout`) and never started. @default 10000 */
  readonly maxQueueWaitMs?: number
  /**
   * Standing-queue control (CoDel as Facebook applies it to RPC queues): while the queue has not been
   * drained by service for `intervalMs` (a queue emptied only by shedding still stands), a request
   * that waited longer than `targetMs` is shed (`queue_delay`); otherwise waits are bounded by
   * `intervalMs`. Under a standing queue, an arrival that would wait past the target is turned away at
   * once. When a slot frees and every waiter is past its bound, the newest of the highest priority
   * gets it rather than nobody. `false` turns it off (only `maxQueueWaitMs` bounds waits).
   * @default on with { targetMs: 5, intervalMs: 50 } when the limit is adaptive, off with a fixed limit
   */
  readonly codel?: boolean | { readonly targetMs?: number; readonly intervalMs?: number }
  /**
   * Under a standing queue, serve the newest waiter first (its client is most likely still there);
   * waits stay bounded by the CoDel target and `maxQueueWaitMs`, so nobody starves forever.
   * @default false
   */
  readonly adaptiveLifo?: boolean
  /** Shed early when p99 latency over the window is above this. @default 1000 */
  readonly latencyThresholdMs?: number
  /** Whether latency above `latencyThresholdMs` sheds requests with a probability that grows with the overage (capped at 0.9). @default true */
  readonly adaptiveRejection?: boolean
  /** Length of the sliding window p99 is computed over. @default 10000 */
  readonly latencyWindowMs?: number
  /** Fewest samples in the window before p99 is trusted; below it, latency never sheds. @default 100 */
  readonly latencyMinSamples?: number
  /** What rejected clients are told to wait, in whole seconds, jittered. @default { min: 5, max: 15 } */
  readonly retryAfter?: RetryAfterOption
  /** Shed while the event loop's p99 delay over the sample interval is above this. Off unless set. */
  readonly maxEventLoopDelayMs?: number
  /** Shed while event-loop utilization over the sample interval is above this (0–1). Off unless set. */
  readonly maxEventLoopUtilization?: number
  /** Shed while heap used is above this many bytes. Off unless set. */
  readonly maxHeapUsedBytes?: number
  /** Shed while the resident set size is above this many bytes. Off unless set. */
  readonly maxRssBytes?: number
  /** How often the process signals are sampled. @default 1000 */
  readonly sampleIntervalMs?: number
  /**
   * Shed a fraction of arrivals when the server's own event loop is the bottleneck (routes that spend
   * CPU), so its lag stays at `targetLagMs`: a PI controller on the shed fraction, lower priorities
   * first, and an arrival read in a loop turn that already ran twice the target is shed at once (see
   * docs/adaptive-limit.md). On by default with { targetLagMs: 15, intervalMs: 25, maxFraction: 1 };
   * `false` turns it off.
   * @default true
   */
  readonly eventLoopShedding?: boolean | EventLoopSheddingOptions
  /** Told apart in metrics and events by this label. @default 'default' */
  readonly name?: string
  /** Time source; tests pass a ManualClock. @default the monotonic system clock with unref'd timers */
  readonly clock?: Clock
  /** Random source in [0, 1) for jitter and probabilistic shedding. @default Math.random */
  readonly random?: RandomSource
  /** Reads the process for the signals above; tests inject one. @default perf_hooks and process.memoryUsage */
  readonly processSampler?: ProcessSampler
}

/** Every key of BackpressureOptions (the compiler keeps the two in step): any other is refused. */
export const CONTROLLER_OPTION_KEYS: readonly string[] = Object.keys({
  maxConcurrency: true,
  maxQueueDepth: true,
  maxQueueWaitMs: true,
  codel: true,
  adaptiveLifo: true,
  latencyThresholdMs: true,
  adaptiveRejection: true,
  latencyWindowMs: true,
  latencyMinSamples: true,
  retryAfter: true,
  maxEventLoopDelayMs: true,
  maxEventLoopUtilization: true,
  maxHeapUsedBytes: true,
  maxRssBytes: true,
  sampleIntervalMs: true,
  eventLoopShedding: true,
  name: true,
  clock: true,
  random: true,
  processSampler: true,
} satisfies Record<keyof BackpressureOptions, true>)

const CODEL_OPTION_KEYS = ['targetMs', 'intervalMs']

interface ResolvedOptions {
  readonly maxQueueDepth: number
  readonly maxQueueWaitMs: number
  /** CoDel target and interval in ms, or undefined when off. */
  readonly codel: { readonly targetMs: number; readonly intervalMs: number } | undefined
  readonly adaptiveLifo: boolean
  readonly latencyThresholdMs: number
  readonly adaptiveRejection: boolean
  readonly latencyWindowMs: number
  readonly latencyMinSamples: number
  readonly name: string
}

/**
 * What admission needs of an abort signal. An `AbortSignal` is one; the HTTP layer passes a lighter
 * object of its own, so a queued request costs no AbortController (an EventTarget, and a DOMException
 * with a stack trace when it fires).
 */
export interface AbortSignalLike {
  readonly aborted: boolean
  readonly reason?: unknown
  addEventListener(type: 'abort', listener: { handleEvent(): void }, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: { handleEvent(): void }): void
}

export interface AcquireOptions {
  /** Higher runs first; FIFO within a priority. @default 0 */
  readonly priority?: number
  /** Aborting leaves the queue at once; the work never starts. */
  readonly signal?: AbortSignalLike | undefined
  /** Clock time (ms, the controller clock's) after which the work must not start. */
  readonly deadline?: number | undefined
}

/** Why a request was turned away, as a value: the hot path builds no Error per rejection. */
export class Rejection {
  readonly code: RejectionCode
  readonly status: 503 | 429

  constructor(
    readonly reason: RejectionReason,
    readonly retryAfterSeconds: number,
  ) {
    const entry = REJECTION_REASONS[reason]
    this.code = entry.code
    this.status = entry.status
  }

  toError(): BackpressureError {
    return createBackpressureError(this.reason, this.retryAfterSeconds)
  }
}

/** The right to run one request. Release it exactly when the work is done; extra calls do nothing. */
export class Permit {
  private released = false

  /** @internal */
  constructor(
    private readonly controller: BackpressureController,
    /** When the work started (clock ms). */
    readonly startedAt: number,
    /** How long the request waited in the queue, in ms. */
    readonly queuedMs: number,
  ) {}

  get isReleased(): boolean {
    return this.released
  }

  release(): void {
    if (this.released) return
    this.released = true
    this.controller._release(this)
  }

  /**
   * Releases a permit whose work was given up on without ending (its client left and the route never
   * ended): counted apart (`abandoned` in stats, the `abandon` event), since that work may still run.
   */
  abandon(): void {
    if (this.released) return
    this.released = true
    this.controller._abandon(this)
  }
}

type Settle = (result: Permit | Rejection) => void

class Waiter extends QueueEntry implements HeapEntry {
  settle: Settle | undefined = undefined
  heapIndex = -1
  /**
   * Kept past the CoDel bound because a less important waiter was shed in its place; from then on
   * only maxQueueWaitMs (through the deadline heap) and its own deadline bound its wait.
   */
  spared = false

  constructor(
    priority: number,
    enqueuedAt: number,
    readonly controller: BackpressureController,
    readonly signal: AbortSignalLike | undefined,
    public deadline: number,
  ) {
    super(priority, enqueuedAt)
  }

  /** The abort listener: the waiter object itself, so no closure is made per queued request. */
  handleEvent(): void {
    this.controller._abortWaiter(this)
  }
}

function noop(): void {}

/**
 * Admission control: a concurrency limit with a bounded priority queue in front of it, and early
 * shedding on latency and process signals.
 *
 * @example
 * const controller = new BackpressureController({ maxConcurrency: 50, maxQueueDepth: 200 })
 * const rows = await controller.submit(() => db.query(sql), { priority: 10 })
 */
export class BackpressureController {
  readonly options: Readonly<ResolvedOptions>
  readonly name: string
  /** The controller's time source: deadlines given to `admit` are in its milliseconds. */
  readonly clock: Clock
  private readonly random: RandomSource
  private readonly retryAfterPolicy: RetryAfterPolicy
  private readonly limiter: ConcurrencyLimit
  /**
   * When a slot was last free with nobody waiting: CoDel's "has the queue stood for an interval?".
   * Under steady overload the queue also empties when a sweep sheds a batch of stale waiters (the
   * event loop was busy writing the previous batch's 503s), and slots then free with nobody waiting:
   * that is not spare capacity, so idleness within an interval of a `queue_delay` shed does not count.
   * Counting it let waits run to the interval bound every ~55 ms at 10× load.
   */
  private lastIdleAt: number
  private lastDelayShedAt = Number.NEGATIVE_INFINITY
  /** Requests started per ms over the last CoDel interval or more, for the standing queue's depth. */
  private startsPerMs = 0
  private startsInWindow = 0
  private startsWindowAt = 0
  private readonly queue = new PriorityQueue<Waiter>()
  /** Waiters with a deadline of their own, earliest first (the queue's bound expires the rest). */
  private readonly deadlines = new DeadlineHeap<Waiter>()
  private readonly latency: LatencyWindow
  private readonly signals: ProcessSignals | undefined
  private readonly loopShedder: EventLoopShedder | undefined
  /** The reason of the last rejection for overload (not the client's doing), for /health. */
  private lastPressureReason: RejectionReason | undefined = undefined
  private readonly stopSampler: () => void
  private readonly events = new EventHub()
  private readonly durationHistogram = new CumulativeHistogram(DURATION_BUCKETS_SECONDS)
  private readonly queueWaitHistogram = new CumulativeHistogram(DURATION_BUCKETS_SECONDS)
  private readonly retryAfterHistogram = new CumulativeHistogram(RETRY_AFTER_BUCKETS_SECONDS)
  private readonly rejectionCounts: Record<RejectionReason, number>
  private inFlightCount = 0
  private requestCount = 0
  private admittedCount = 0
  private completedCount = 0
  private rejectedCount = 0
  private abandonedCount = 0
  private bodyTimeoutCount = 0
  private timeoutTimer: TimerHandle | undefined = undefined
  private timeoutTimerAt = 0
  private closed = false
  private closedPromise: Promise<void> | undefined = undefined
  private resolveClosed: () => void = noop
  private activeSince = -1
  private lastPressureAt = Number.NEGATIVE_INFINITY
  private activeMsTotal = 0
  private readonly onTimeoutTimer = (): void => this.expireWaiters()
  /** Resolved at the next release or close, for map/writable waiting outside the queue; see _nextRoom. */
  private room: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined = undefined

  constructor(options: BackpressureOptions = {}) {
    assertObject('options', options as unknown)
    assertKnownKeys('', options, CONTROLLER_OPTION_KEYS)
    this.clock = options.clock ?? systemClock
    this.random = functionOption<RandomSource>('random', options.random) ?? Math.random
    const name = options.name ?? 'default'
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidOptionError('name', 'a non-empty string', name)
    }
    this.name = name
    const now = this.clock.now()
    const epochOffsetMs = this.clock.epochOffsetMs
    if (epochOffsetMs !== undefined && !Number.isFinite(epochOffsetMs)) {
      throw new InvalidOptionError('clock.epochOffsetMs', 'a finite number of milliseconds', epochOffsetMs)
    }
    this.limiter = resolveLimit(
      options.maxConcurrency,
      now,
      this.random,
      (previous, limit) => {
        this.onLimitChange(previous, limit)
      },
      epochOffsetMs ?? 0,
      // Read when the limit takes its first baseline, by then the shedder (below) exists.
      () => this.loopShedder?.stalledAt ?? Number.NEGATIVE_INFINITY,
    )
    const resolved: ResolvedOptions = {
      maxQueueDepth: integerOption('maxQueueDepth', options.maxQueueDepth, 1000, 0),
      maxQueueWaitMs: numberOption(
        'maxQueueWaitMs',
        options.maxQueueWaitMs,
        10_000,
        0,
        Number.POSITIVE_INFINITY,
        true,
      ),
      codel: resolveCodel(options.codel, !(this.limiter instanceof FixedLimit)),
      adaptiveLifo: booleanOption('adaptiveLifo', options.adaptiveLifo, false),
      latencyThresholdMs: numberOption(
        'latencyThresholdMs',
        options.latencyThresholdMs,
        1000,
        0,
        Number.POSITIVE_INFINITY,
        true,
      ),
      adaptiveRejection: booleanOption('adaptiveRejection', options.adaptiveRejection, true),
      latencyWindowMs: numberOption('latencyWindowMs', options.latencyWindowMs, 10_000, 100),
      latencyMinSamples: integerOption('latencyMinSamples', options.latencyMinSamples, 100, 1),
      name,
    }
    this.options = Object.freeze(resolved)
    this.retryAfterPolicy = resolveRetryAfter(options.retryAfter, this.random)

    const limits = {
      maxEventLoopDelayMs: optionalLimit('maxEventLoopDelayMs', options.maxEventLoopDelayMs),
      maxEventLoopUtilization: optionalLimit('maxEventLoopUtilization', options.maxEventLoopUtilization, 1),
      maxHeapUsedBytes: optionalLimit('maxHeapUsedBytes', options.maxHeapUsedBytes),
      maxRssBytes: optionalLimit('maxRssBytes', options.maxRssBytes),
    }
    const sampleIntervalMs = numberOption('sampleIntervalMs', options.sampleIntervalMs, 1000, 1)
    const injectedSampler = functionOption<ProcessSampler>('processSampler', options.processSampler)

    this.latency = new LatencyWindow(resolved.latencyWindowMs, 10, 0.99, now)
    this.lastIdleAt = now
    this.startsWindowAt = now
    this.rejectionCounts = Object.fromEntries(
      Object.keys(REJECTION_REASONS).map((reason) => [reason, 0]),
    ) as Record<RejectionReason, number>

    const loopShedding = resolveEventLoopShedding(options.eventLoopShedding)
    // An injected process sampler stands for the loop in tests: its utilization is the shedder's too.
    // The process's own utilization means something only on the system clock.
    this.loopShedder =
      loopShedding === undefined
        ? undefined
        : new EventLoopShedder(
            loopShedding,
            this.clock,
            this.random,
            injectedSampler !== undefined
              ? () => injectedSampler().eventLoopUtilization
              : this.clock === systemClock
                ? loopUtilizationReader()
                : // A clock of the test's own (a simulation) has no loop of its own to read.
                  () => 0,
          )
    this.loopShedder?.start()

    const wantsSignals = Object.values(limits).some((limit) => limit !== undefined)
    if (wantsSignals) {
      const node = injectedSampler === undefined ? createNodeSampler(limits) : undefined
      this.signals = new ProcessSignals(
        limits,
        sampleIntervalMs,
        this.clock,
        injectedSampler ?? node!.sampler,
      )
      this.signals.start()
      this.stopSampler = node?.stop ?? noop
    } else {
      this.signals = undefined
      this.stopSampler = noop
    }
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.inFlightCount
  }

  /** Requests waiting now. */
  get queueDepth(): number {
    return this.queue.size
  }

  /** The concurrency limit in force now. */
  get limit(): number {
    return this.limiter.value
  }

  /** Requests completed per second over the latency window. */
  get throughputPerSecond(): number {
    return this.latency.count / (this.options.latencyWindowMs / 1000)
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this.closed
  }

  /**
   * The non-throwing admission the HTTP adapters use: a Permit at once when a slot is free, a Rejection
   * when the request is turned away, or a promise of either when it waits. Never rejects.
   */
  admit(
    priority = 0,
    signal?: AbortSignalLike,
    deadline: number = Number.POSITIVE_INFINITY,
  ): Permit | Rejection | Promise<Permit | Rejection> {
    const now = this.clock.now()
    this.requestCount++
    if (this.closed) return this.reject('shutting_down', priority, now)

    const shed = this.shedReason(now, priority)
    if (shed !== undefined && !this.displaceForSignal(shed, priority, now))
      return this.reject(shed, priority, now)
    if (now >= deadline) return this.reject('deadline_exceeded', priority, now)
    // A caller that is gone already never gets a permit, free slot or not.
    if (signal?.aborted) return this.reject('aborted', priority, now)

    if (this.queue.size === 0 && this.inFlightCount < this.limiter.value) {
      this.markIdle(now)
      return this.start(priority, now, now)
    }
    // No free slot: a limit that waits on releases (a probe) may find none are coming and open slots.
    const limiter = this.limiter
    if (limiter.onBlocked !== undefined) {
      limiter.onBlocked(now, this.inFlightCount)
      if (this.queue.size === 0 && this.inFlightCount < limiter.value) return this.start(priority, now, now)
    }
    // Waiters whose time is up leave before a newcomer is judged against the queue's length: a timer
    // that fires late (a busy event loop) must not turn fresh requests away as queue_full.
    if (this.timeoutTimer !== undefined && this.timeoutTimerAt <= now) this.expireWaiters()

    // Under a standing queue, an arrival that would wait past the CoDel target is turned away now, as
    // its own request is handled, rather than held for the target and shed in a sweep: no waiter to
    // keep, and no burst of 503s for the event loop to write while answers from the downstream wait.
    const standingDepth = this.standingDepth(now)
    const maxQueueDepth = Math.min(this.options.maxQueueDepth, standingDepth)
    if (this.queue.size >= maxQueueDepth) {
      const lowest = this.queue.lowestPriority
      if (lowest === undefined || priority <= lowest) {
        const full = this.queue.size >= this.options.maxQueueDepth
        return this.reject(full ? 'queue_full' : 'queue_delay', priority, now)
      }
      // A higher-priority arrival takes the place of the newest low-priority waiter, so important
      // traffic is never shed while less important traffic waits.
      const victim = this.queue.popNewestOfLowest()!
      this.settleWaiter(victim, this.reject('displaced', victim.priority, now))
    }
    return this.enqueue(priority, signal, deadline, now)
  }

  /**
   * Waits for a permit. Rejects with a BackpressureError when the request is shed, times out, is
   * displaced, or the controller closes; rejects with the signal's reason when aborted.
   */
  acquire(options: AcquireOptions = {}): Promise<Permit> {
    const signal = options.signal
    const result = this.admit(options.priority ?? 0, signal, options.deadline)
    if (result instanceof Permit) return Promise.resolve(result)
    if (result instanceof Rejection) return Promise.reject(errorFor(result, signal))
    return result.then((settled) => {
      if (settled instanceof Permit) return settled
      throw errorFor(settled, signal)
    })
  }

  /** A permit now, or a Rejection (`concurrency_limit` when every slot is busy): never waits, never throws. */
  tryAcquire(options: { readonly priority?: number } = {}): Permit | Rejection {
    const now = this.clock.now()
    const priority = options.priority ?? 0
    this.requestCount++
    if (this.closed) return this.reject('shutting_down', priority, now)
    const shed = this.shedReason(now, priority)
    if (shed !== undefined) return this.reject(shed, priority, now)
    if (this.inFlightCount < this.limiter.value && this.queue.size === 0)
      return this.start(priority, now, now)
    return this.reject('concurrency_limit', priority, now)
  }

  /**
   * Runs `fn` under a permit and releases it however `fn` ends (the permit is held until then, whatever
   * happens to the caller). `fn` gets the caller's signal, to pass on to the work it starts; a caller
   * whose signal has aborted never gets a permit.
   * @example
   * const user = await controller.submit(() => db.findUser(id), { priority: 5, signal })
   */
  async submit<T>(fn: (signal: AbortSignal) => T | PromiseLike<T>, options: AcquireOptions = {}): Promise<T> {
    const permit = await this.acquire(options)
    try {
      return await fn(signalFor(options.signal))
    } finally {
      permit.release()
    }
  }

  /**
   * Runs `fn` over every item of `source` under the controller, up to its limit at once (an adaptive
   * limit is followed as it moves), and yields the results. An item is pulled only when the items
   * pulled and not yet taken are fewer than the limit, so a slow consumer or a full controller stops
   * the pulling; one more may wait for its permit. A rejection (queue full, timed out, shed) never
   * drops an item: it waits for a release or a limit change and asks again. An error from `fn` or the
   * source ends the iteration with it; work in flight is then aborted (through `fn`'s signal) and
   * awaited, and the source's `return()` is called — as when the consumer breaks out of its loop.
   * @example
   * for await (const row of controller.map(ids, (id, signal) => db.load(id, { signal }), { ordered: true })) {
   *   process(row)
   * }
   */
  map<T, R>(
    source: Iterable<T> | AsyncIterable<T>,
    fn: (item: T, signal: AbortSignal) => R | PromiseLike<R>,
    options?: MapOptions,
  ): AsyncIterableIterator<R> {
    return mapWithController(this, source, fn, options)
  }

  /**
   * An object-mode `stream.Writable` that runs `fn` for each chunk under the controller, up to its
   * limit at once. A write calls back as soon as its chunk has a permit and has started, so while
   * every slot is busy the stream's buffer fills and a piped source pauses by itself. A rejection
   * never drops a chunk (it waits for room); `final` waits for the work in flight; an error from `fn`
   * destroys the stream with it.
   * @example
   * await pipeline(createReadStream(file), splitLines(), controller.writable((line) => db.insert(line)))
   */
  writable<T>(fn: (chunk: T, signal: AbortSignal) => unknown, options?: WritableOptions): Writable {
    return writableWithController(this, fn, options)
  }

  /** Builds a Rejection the way admission does (counted, evented, Retry-After drawn), for callers such as a circuit breaker or rate limiter that decide outside the queue. */
  rejectWith(reason: RejectionReason, priority = 0, retryAfterSeconds?: number): Rejection {
    this.requestCount++
    return this.reject(reason, priority, this.clock.now(), retryAfterSeconds)
  }

  /**
   * The rejection for a request that was admitted and ran, but whose route's downstream call gave up
   * (`downstream_overloaded`): counted and evented like any rejection (the request itself was counted
   * at admission), with the downstream's Retry-After when it gave one, else one drawn as usual.
   */
  rejectDownstream(retryAfterSeconds?: number): Rejection {
    return this.reject('downstream_overloaded', 0, this.clock.now(), retryAfterSeconds)
  }

  on<E extends BackpressureEventName>(event: E, listener: BackpressureListener<E>): () => void {
    return this.events.on(event, listener)
  }

  /**
   * Stops admitting: every waiter is rejected with `shutting_down`, timers stop, and the promise
   * resolves once the work in flight has finished. Idempotent.
   */
  close(): Promise<void> {
    if (this.closedPromise !== undefined) return this.closedPromise
    this.closed = true
    this.closedPromise = new Promise<void>((resolve) => {
      this.resolveClosed = resolve
    })
    if (this.timeoutTimer !== undefined) this.clock.clearTimeout(this.timeoutTimer)
    this.timeoutTimer = undefined
    this.signals?.stop()
    this.stopSampler()
    this.loopShedder?.stop()
    this.limiter.stop()
    const now = this.clock.now()
    this.deadlines.clear()
    for (const waiter of this.queue.drain()) {
      this.settleWaiter(waiter, this.reject('shutting_down', waiter.priority, now))
    }
    if (this.room !== undefined) this.openRoom()
    if (this.inFlightCount === 0) this.resolveClosed()
    return this.closedPromise
  }

  stats(): BackpressureStats {
    const now = this.clock.now()
    const active = this.updateActive(now)
    const activeMs = this.activeMsTotal + (this.activeSince >= 0 ? now - this.activeSince : 0)
    const rejections = { ...this.rejectionCounts }
    const sample = this.signals?.last
    return {
      name: this.name,
      queueDepth: this.queue.size,
      maxQueueDepth: this.options.maxQueueDepth,
      inFlight: this.inFlightCount,
      limit: this.limiter.value,
      p50LatencyMs: this.latency.quantile(0.5, now),
      p99LatencyMs: this.latency.quantile(0.99, now),
      requests: this.requestCount,
      admitted: this.admittedCount,
      completed: this.completedCount,
      rejected: this.rejectedCount,
      abandoned: this.abandonedCount,
      bodyTimeouts: this.bodyTimeoutCount,
      rejections,
      rejectionRate: overloadRejectionRate(this.requestCount, this.rejectedCount, rejections),
      throughputPerSecond: this.throughputPerSecond,
      backpressureActive: active,
      activeSeconds: activeMs / 1000,
      shuttingDown: this.closed,
      eventLoopDelayMs: sample?.eventLoopDelayMs ?? 0,
      eventLoopUtilization: sample?.eventLoopUtilization ?? 0,
      eventLoopLagMs: this.loopShedder?.lagMs ?? 0,
      eventLoopShedFraction: this.loopShedder?.fraction ?? 0,
      pressureReason: active ? this.lastPressureReason : undefined,
      histograms: {
        requestDurationSeconds: this.durationHistogram.snapshot(),
        queueWaitSeconds: this.queueWaitHistogram.snapshot(),
        retryAfterSeconds: this.retryAfterHistogram.snapshot(),
      },
    }
  }

  /** @internal Called by Permit.release() exactly once per permit. */
  _release(permit: Permit): void {
    const now = this.clock.now()
    this.inFlightCount--
    this.completedCount++
    const serviceMs = now - permit.startedAt
    this.latency.record(serviceMs + permit.queuedMs, now)
    this.durationHistogram.observe(serviceMs / 1000)
    this.limiter.onSample(permit.startedAt, serviceMs, this.inFlightCount + 1)
    this.handOn(now)
  }

  /** A slot came back: the next waiter gets it; a closing controller may be done. */
  private handOn(now: number): void {
    this.drain(now)
    if (this.room !== undefined) this.openRoom()
    if (this.closed && this.inFlightCount === 0) this.resolveClosed()
  }

  /**
   * @internal Resolves at the next release (or close): when a slot may have come free. `map` and
   * `writable` wait on it instead of joining the queue while every slot is taken (a waiter of theirs
   * would be shed as a standing queue and counted as pressure), and after a rejection, instead of
   * sleeping a fixed time. One promise is shared by every caller until it resolves.
   */
  _nextRoom(): Promise<void> {
    if (this.room === undefined) {
      let resolve: () => void = noop
      const promise = new Promise<void>((settle) => {
        resolve = settle
      })
      this.room = { promise, resolve }
    }
    return this.room.promise
  }

  private openRoom(): void {
    const room = this.room!
    this.room = undefined
    room.resolve()
  }

  /**
   * @internal Called by Permit.abandon() exactly once per permit, in place of _release. The hold says
   * nothing about the service time (the bound chose it), so it is no latency sample: recorded, it
   * would raise the p99 that the bound is derived from, and shed healthy requests as `latency`.
   */
  _abandon(permit: Permit): void {
    const now = this.clock.now()
    this.abandonedCount++
    if (this.events.wants('abandon')) {
      this.events.emit('abandon', { name: this.name, heldMs: now - permit.startedAt })
    }
    this.inFlightCount--
    this.completedCount++
    this.handOn(now)
  }

  /** @internal Counts a request answered 408 because its body did not arrive in time. */
  countBodyTimeout(): void {
    this.bodyTimeoutCount++
  }

  /** p99 latency (queue wait + service) over the latency window, in ms; 0 with no samples. */
  p99LatencyMs(): number {
    return this.latency.quantile(0.99, this.clock.now())
  }

  /** @internal The abort listener of a waiter. */
  _abortWaiter(waiter: Waiter): void {
    if (!this.queue.remove(waiter)) return
    this.settleWaiter(waiter, this.reject('aborted', waiter.priority, this.clock.now()))
  }

  private start(priority: number, enqueuedAt: number, now: number): Permit {
    this.countStarts(now, 1)
    this.inFlightCount++
    this.admittedCount++
    const queuedMs = now - enqueuedAt
    this.queueWaitHistogram.observe(queuedMs / 1000)
    if (this.events.wants('admit')) this.events.emit('admit', { name: this.name, priority, queuedMs })
    return new Permit(this, now, queuedMs)
  }

  private enqueue(
    priority: number,
    signal: AbortSignalLike | undefined,
    deadline: number,
    now: number,
  ): Promise<Permit | Rejection> {
    const waiter = new Waiter(priority, now, this, signal, deadline)
    const promise = new Promise<Permit | Rejection>((resolve) => {
      waiter.settle = resolve
    })
    this.queue.push(waiter)
    if (deadline !== Number.POSITIVE_INFINITY) this.deadlines.push(waiter)
    signal?.addEventListener('abort', waiter, { once: true })
    this.armTimeoutTimer(now)
    if (this.events.wants('queue')) {
      this.events.emit('queue', { name: this.name, priority, queueDepth: this.queue.size })
    }
    return promise
  }

  /** Hands freed slots straight to waiters, so a newcomer can never barge past the queue. */
  private drain(now: number): void {
    while (this.inFlightCount < this.limiter.value && this.queue.size > 0) {
      const standing = this.isStanding(now)
      // Shedding a waiter for its wait when a slot is free helps only if a fresher waiter takes the
      // slot. When every waiter is past the bound (the event loop ran late), the freshest of the
      // highest priority gets the slot instead of nobody; the rest are shed as usual.
      const allLate = this.allPastTarget(now, standing)
      const waiter =
        (standing && this.options.adaptiveLifo) || allLate
          ? this.queue.popNewestOfHighest()!
          : this.queue.shift()!
      const overdue = this.overdueReason(waiter, now, standing)
      // Priority orders shedding here too: a waiter past the CoDel bound is still served when less
      // important ones wait behind it (they are shed first, by the sweep).
      const outranks = overdue === 'queue_delay' && this.outranksLowest(waiter.priority)
      if (overdue !== undefined && !(overdue === 'queue_delay' && (allLate || outranks))) {
        this.settleWaiter(waiter, this.reject(overdue, waiter.priority, now))
        continue
      }
      this.settleWaiter(waiter, this.start(waiter.priority, waiter.enqueuedAt, now))
    }
    if (this.queue.size === 0 && this.inFlightCount < this.limiter.value) this.markIdle(now)
  }

  private markIdle(now: number): void {
    const codel = this.options.codel
    if (codel !== undefined && now - this.lastDelayShedAt > codel.intervalMs) this.lastIdleAt = now
  }

  /**
   * How many waiters a standing queue may hold: as many as start within the CoDel target at the rate
   * requests have been starting (at least one), so a newcomer beyond them would wait past the target.
   * Without a standing queue, only maxQueueDepth bounds the queue.
   */
  private standingDepth(now: number): number {
    const codel = this.options.codel
    if (codel === undefined || !this.isStanding(now)) return Number.POSITIVE_INFINITY
    this.countStarts(now, 0)
    return Math.max(1, Math.ceil(this.startsPerMs * codel.targetMs))
  }

  /** Counts `started` starts now, and closes the rate window once it spans a CoDel interval. */
  private countStarts(now: number, started: number): void {
    this.startsInWindow += started
    const elapsed = now - this.startsWindowAt
    if (elapsed >= (this.options.codel?.intervalMs ?? Number.POSITIVE_INFINITY)) {
      this.startsPerMs = this.startsInWindow / elapsed
      this.startsInWindow = 0
      this.startsWindowAt = now
    }
  }

  /** Whether even the newest waiter (if any) has waited past the current bound. */
  private allPastTarget(now: number, standing: boolean): boolean {
    const newest = this.queue.newest
    return newest === undefined || newest.enqueuedAt + this.waitBound(standing) <= now
  }

  /** A standing queue: one that has not emptied for a whole CoDel interval. */
  private isStanding(now: number): boolean {
    const codel = this.options.codel
    return codel !== undefined && this.queue.size > 0 && now - this.lastIdleAt > codel.intervalMs
  }

  /** The longest a request may wait now: the CoDel target under a standing queue, else its interval, never past maxQueueWaitMs. */
  private waitBound(standing: boolean): number {
    const codel = this.options.codel
    const maxWait = this.options.maxQueueWaitMs
    if (codel === undefined) return maxWait
    return Math.min(maxWait, standing ? codel.targetMs : codel.intervalMs)
  }

  private overdueReason(waiter: Waiter, now: number, standing: boolean): RejectionReason | undefined {
    if (waiter.enqueuedAt + this.options.maxQueueWaitMs <= now) return 'queue_timeout'
    if (now >= waiter.deadline) return 'deadline_exceeded'
    if (!waiter.spared && waiter.enqueuedAt + this.waitBound(standing) <= now) return 'queue_delay'
    return undefined
  }

  private settleWaiter(waiter: Waiter, result: Permit | Rejection): void {
    if (waiter.heapIndex !== -1) this.deadlines.remove(waiter)
    waiter.signal?.removeEventListener('abort', waiter)
    const settle = waiter.settle
    waiter.settle = undefined
    settle?.(result)
  }

  private reject(
    reason: RejectionReason,
    priority: number,
    now: number,
    retryAfterSeconds?: number,
  ): Rejection {
    this.rejectedCount++
    this.rejectionCounts[reason]++
    if (reason === 'queue_delay') this.lastDelayShedAt = now
    // A client that left, spent its own rate limit or declared a deadline already spent is not pressure:
    // any client could otherwise turn health to degraded.
    if (!isClientCaused(reason)) {
      this.markPressure(now)
      this.lastPressureReason = reason
    }
    // A caller's own number (a duck-typed breaker's 0.25, a store's 1e22) is made a valid header here,
    // once for every rejectWith caller.
    const seconds =
      retryAfterSeconds === undefined
        ? this.retryAfterPolicy(reason, this)
        : clampRetryAfter(retryAfterSeconds)
    this.retryAfterHistogram.observe(seconds)
    if (this.events.wants('reject')) {
      this.events.emit('reject', {
        name: this.name,
        reason,
        priority,
        retryAfterSeconds: seconds,
        queueDepth: this.queue.size,
        inFlight: this.inFlightCount,
      })
    }
    return new Rejection(reason, seconds)
  }

  private shedReason(now: number, priority: number): RejectionReason | undefined {
    const processReason = this.signals?.overloadReason
    if (processReason !== undefined) return processReason
    if (this.loopShedder?.shouldShed(priority, now)) return 'event_loop_delay'
    if (this.options.adaptiveRejection) {
      const threshold = this.options.latencyThresholdMs
      const p99 = this.latency.value(now, this.options.latencyMinSamples)
      if (p99 > threshold && this.random() < Math.min(0.9, (p99 - threshold) / threshold)) return 'latency'
    }
    return undefined
  }

  /**
   * One timer for the whole queue: the arrival list's head has the earliest shared bound, and the
   * deadline heap the earliest deadline of a caller's own; the timer is set for the sooner of the two
   * and re-armed after each sweep, instead of one timer per waiter.
   */
  private armTimeoutTimer(now: number): void {
    const oldest = this.oldestUnspared()
    const bound = this.waitBound(this.isStanding(now))
    const due = Math.min(
      oldest === undefined ? Number.POSITIVE_INFINITY : oldest.enqueuedAt + bound,
      this.deadlines.first?.deadline ?? Number.POSITIVE_INFINITY,
    )
    if (!Number.isFinite(due)) return
    if (this.timeoutTimer !== undefined && this.timeoutTimerAt <= due) return
    if (this.timeoutTimer !== undefined) this.clock.clearTimeout(this.timeoutTimer)
    this.timeoutTimerAt = due
    this.timeoutTimer = this.clock.setTimeout(this.onTimeoutTimer, Math.max(0, due - now))
  }

  /** The oldest waiter the shared bound still applies to (spared ones are few: each cost a shed). */
  private oldestUnspared(): Waiter | undefined {
    let entry = this.queue.oldest
    while (entry?.spared) entry = entry.arrivalNext as Waiter | undefined
    return entry
  }

  private expireWaiters(): void {
    if (this.timeoutTimer !== undefined) this.clock.clearTimeout(this.timeoutTimer)
    this.timeoutTimer = undefined
    const now = this.clock.now()
    // A probe waiting on work that does not end gets its slots before anyone is shed for waiting.
    this.limiter.onBlocked?.(now, this.inFlightCount)
    const standing = this.isStanding(now)
    const bound = this.waitBound(standing)
    for (
      let first = this.deadlines.first;
      first !== undefined && first.deadline <= now;
      first = this.deadlines.first
    ) {
      this.queue.remove(first)
      this.settleWaiter(
        first,
        this.reject(this.overdueReason(first, now, standing) ?? 'deadline_exceeded', first.priority, now),
      )
    }
    // Arrival order: the same sum as the timer's due time, so float rounding cannot re-arm a timer that
    // expires nothing.
    let entry = this.queue.oldest
    while (entry !== undefined && entry.enqueuedAt + bound <= now) {
      if (entry.spared) {
        entry = entry.arrivalNext as Waiter | undefined
        continue
      }
      const reason = this.overdueReason(entry, now, standing) ?? 'queue_delay'
      if (reason === 'queue_delay' && this.outranksLowest(entry.priority)) {
        // A standing queue sheds the least important first: the oldest of the lowest priority goes in
        // this waiter's place, and this one stays.
        const victim = this.queue.oldestOfLowest!
        this.spare(entry)
        this.queue.remove(victim)
        this.settleWaiter(victim, this.reject('queue_delay', victim.priority, now))
        entry = entry.arrivalNext as Waiter | undefined
        continue
      }
      const next = entry.arrivalNext as Waiter | undefined
      this.queue.remove(entry)
      this.settleWaiter(entry, this.reject(reason, entry.priority, now))
      entry = next
    }
    this.armTimeoutTimer(now)
  }

  private spare(waiter: Waiter): void {
    waiter.spared = true
    const cap = waiter.enqueuedAt + this.options.maxQueueWaitMs
    if (cap >= waiter.deadline) return
    if (waiter.heapIndex !== -1) this.deadlines.remove(waiter)
    waiter.deadline = cap
    this.deadlines.push(waiter)
  }

  /** Whether a waiter of this priority outranks the least important one waiting. */
  private outranksLowest(priority: number): boolean {
    const lowest = this.queue.lowestPriority
    return lowest !== undefined && lowest < priority
  }

  /**
   * Process and latency signals shed the least important work first: an arrival that outranks a
   * waiter takes its place (the waiter gets the signal's rejection) instead of being turned away.
   */
  private displaceForSignal(reason: RejectionReason, priority: number, now: number): boolean {
    if (!this.outranksLowest(priority)) return false
    const victim = this.queue.popNewestOfLowest()!
    this.settleWaiter(victim, this.reject(reason, victim.priority, now))
    return true
  }

  private onLimitChange(previous: number, limit: number): void {
    if (this.events.wants('limit')) this.events.emit('limit', { name: this.name, previous, limit })
    // A raised limit frees slots that waiters should get now, not at the next release.
    if (limit > previous && !this.closed) this.drain(this.clock.now())
  }

  private markPressure(now: number): void {
    if (this.activeSince < 0) this.activeSince = now
    this.lastPressureAt = now
  }

  /**
   * Backpressure counts as active while requests are being queued or turned away, and for one second
   * after the last time; the accumulated time feeds `backpressure_active_seconds_total`.
   */
  private updateActive(now: number): boolean {
    if (this.queue.size > 0 && this.queue.size >= this.options.maxQueueDepth * 0.8) this.markPressure(now)
    if (this.activeSince < 0) return false
    const endsAt = this.lastPressureAt + ACTIVE_HOLD_MS
    if (now < endsAt) return true
    this.activeMsTotal += endsAt - this.activeSince
    this.activeSince = -1
    return false
  }
}

const ACTIVE_HOLD_MS = 1000

function resolveCodel(option: unknown, adaptive: boolean): ResolvedOptions['codel'] {
  if (option === false || (option === undefined && !adaptive)) return undefined
  if (option === true || option === undefined) return { targetMs: 5, intervalMs: 50 }
  assertObject('codel', option)
  assertKnownKeys('codel', option, CODEL_OPTION_KEYS)
  const { targetMs, intervalMs } = option as { targetMs?: unknown; intervalMs?: unknown }
  const interval = numberOption('codel.intervalMs', intervalMs, 50, 0, Number.POSITIVE_INFINITY, true)
  return Object.freeze({
    targetMs: numberOption('codel.targetMs', targetMs, 5, 0, interval, true),
    intervalMs: interval,
  })
}

/** One signal that never aborts, for work submitted without a signal of its caller's. */
const NEVER_ABORTED = new AbortController().signal

/** The standard AbortSignal to hand `fn`: the caller's own, or the one behind an HTTP request's state. */
function signalFor(signal: AbortSignalLike | undefined): AbortSignal {
  if (signal === undefined) return NEVER_ABORTED
  if (signal instanceof AbortSignal) return signal
  const standard = (signal as { readonly signal?: unknown }).signal
  return standard instanceof AbortSignal ? standard : NEVER_ABORTED
}

function errorFor(rejection: Rejection, signal: AbortSignalLike | undefined): unknown {
  if (rejection.reason === 'aborted' && signal?.aborted) return signal.reason
  return rejection.toError()
}
