import { type Clock, systemClock, type TimerHandle } from './clock.js'
import { ClientLimitError, InvalidOptionError } from './errors.js'
import { assertOptions, clockOption, integerOption, numberOption } from './validate.js'

export interface ConcurrencyLimitOptions {
  /**
   * Requests each origin may have in flight before it has answered anything.
   * @default 20
   */
  initialLimit?: number
  /**
   * The least the limit falls to, however overloaded the origin: what keeps probing it.
   * @default 1
   */
  minLimit?: number
  /**
   * The most the limit grows to.
   * @default 1000
   */
  maxLimit?: number
  /**
   * How long a request may wait locally for a free slot, in milliseconds (never past the call's own
   * deadline). A request that would not get one in time fails at once with a `ClientLimitError` and is
   * never sent.
   * @default 200
   */
  maxQueueWaitMs?: number
  /**
   * Requests that may wait locally per origin; past it they fail at once (`queue_full`).
   * @default 1000
   */
  maxQueueDepth?: number
  /**
   * Origins tracked at once; past it, the origin idle the longest is forgotten (its limit starts again
   * from `initialLimit`).
   * @default 1000
   */
  maxOrigins?: number
  /** Time source, for tests. */
  clock?: Clock
}

const LIMIT_OPTION_KEYS: readonly string[] = Object.keys({
  initialLimit: true,
  minLimit: true,
  maxLimit: true,
  maxQueueWaitMs: true,
  maxQueueDepth: true,
  maxOrigins: true,
  clock: true,
} satisfies Record<keyof ConcurrencyLimitOptions, true>)

/** How an attempt ended, as the limit reads it. */
export type LimitOutcome =
  /** An answer that was not an overload rejection: its round-trip time is a sample. */
  | 'ok'
  /** 503, 429, a timeout or a network error: the origin cannot take what is sent. */
  | 'drop'
  /** The caller aborted: says nothing about the origin. */
  | 'ignore'

// Vegas's lower bound (TCP Vegas; Netflix concurrency-limits' VegasLimit): the number of requests
// queued at the origin is estimated as limit · (1 − minRTT / RTT). Below ALPHA the origin has room and
// the limit grows by one per round trip; above it the limit holds. It does not shrink on round trips
// alone, as Vegas does above its upper bound: a server at its capacity queues a little by design (ours
// keeps its round trips near twice the no-load time), and shrinking for that held back requests the
// server would have served (measured at 1× C: 1,746-1,895 of 2,000 requests held locally; 829-1,705
// without the shrink). Only a drop (503, 429, timeout) cuts the limit, by DROP_RATIO at most once per
// round trip, as TCP does per window: the rejections of one burst all report the same congestion.
// Tried and dropped: growing while requests wait here for a slot. It held 77-928 at 1×, but probed an
// overloaded server into 0.3-0.84 rejections per request served at 10× (0.05-0.07 without) and cost
// 1-4 points of goodput there.
const ALPHA = 3
const DROP_RATIO = 0.9
/** The minimum RTT is the least of this window and the one before: it follows an origin that got slower for good. */
const MIN_RTT_WINDOW_MS = 30_000
/** Weight of a new sample in the smoothed RTT used to estimate waits. */
const RTT_SMOOTHING = 0.1
/** Round trips without any attempt coming back, two or more in flight, that make a stall of the origin. */
const STALL_ROUND_TRIPS = 3

/**
 * A per-origin adaptive concurrency limit for the caller's own requests (Netflix concurrency-limits'
 * client limiters, Breakwater's idea): each origin gets a limit on requests in flight that follows
 * what it can take — it grows while round trips stay near their minimum (Vegas) and a 503, 429 or
 * timeout cuts it (a drop). A
 * request past the limit waits in a small local queue bounded by time; one that cannot be sent in time
 * fails at once with a `ClientLimitError` and is never sent, so an overloaded origin does not spend its
 * CPU turning away work its callers could have kept.
 *
 * `createFetch` uses one process-wide instance by default; pass your own to keep a separate limit, or
 * `concurrencyLimit: false` for none.
 *
 * @example
 * ```ts
 * const limit = new ConcurrencyLimit({ maxQueueWaitMs: 100 })
 * const api = createFetch({ concurrencyLimit: limit })
 * ```
 */
export class ConcurrencyLimit {
  readonly initialLimit: number
  readonly minLimit: number
  readonly maxLimit: number
  readonly maxQueueWaitMs: number
  readonly maxQueueDepth: number
  readonly maxOrigins: number
  /** @internal */
  readonly clock: Clock
  private readonly origins = new Map<string, OriginLimit>()
  /** Requests that waited locally for a slot (sent or not), since creation. */
  held = 0
  /** Requests failed locally and never sent, since creation. */
  refused = 0

  constructor(options?: ConcurrencyLimitOptions) {
    assertOptions(options, LIMIT_OPTION_KEYS)
    this.minLimit = integerOption('minLimit', options?.minLimit, 1, 1)
    this.maxLimit = integerOption('maxLimit', options?.maxLimit, Math.max(1000, this.minLimit), this.minLimit)
    this.initialLimit = integerOption('initialLimit', options?.initialLimit, 20, 1)
    if (this.initialLimit < this.minLimit || this.initialLimit > this.maxLimit) {
      throw new InvalidOptionError(
        'initialLimit',
        `an integer from minLimit (${this.minLimit}) to maxLimit (${this.maxLimit})`,
        this.initialLimit,
      )
    }
    this.maxQueueWaitMs = numberOption('maxQueueWaitMs', options?.maxQueueWaitMs, 200, 0)
    this.maxQueueDepth = integerOption('maxQueueDepth', options?.maxQueueDepth, 1000, 0)
    this.maxOrigins = integerOption('maxOrigins', options?.maxOrigins, 1000, 1)
    this.clock = clockOption(options?.clock, systemClock)
  }

  /** The limit of one origin (`http://host:port`) now; `initialLimit` for one not seen yet. */
  limit(origin: string): number {
    return Math.floor(this.origins.get(origin)?.limit ?? this.initialLimit)
  }

  /** Requests in flight to one origin now. */
  inFlight(origin: string): number {
    return this.origins.get(origin)?.inFlight ?? 0
  }

  /**
   * @internal A slot for one attempt to `origin`: at once (the common case, no promise), after a wait,
   * or a rejected promise (`ClientLimitError`) when none can be had within `remainingMs` (the call's
   * time left, if it has a deadline).
   */
  acquire(
    origin: string,
    remainingMs: number | undefined,
    signal: AbortSignal,
  ): OriginLimit | Promise<OriginLimit> {
    const state = this.originState(origin)
    if (state.queue.size === 0 && state.inFlight < Math.floor(state.limit)) {
      // Gaps between answers count from here when nothing was in flight: an idle origin is no stall.
      if (state.inFlight === 0) state.lastReleaseAt = this.clock.now()
      state.inFlight++
      return state
    }
    const now = this.clock.now()
    let until = now + this.maxQueueWaitMs
    if (remainingMs !== undefined && now + remainingMs < until) until = now + remainingMs
    if (state.queue.size >= this.maxQueueDepth) return this.refuse('queue_full', origin)
    // Fail fast: the slots free about limit per round trip, so the waiters ahead of this one (and it)
    // need that many round trips' share; a request that could not be sent in time is refused now.
    const expectedWaitMs = ((state.queue.size + 1) * state.smoothedRttMs) / Math.max(1, state.limit)
    if (now + expectedWaitMs > until) return this.refuse('queue_timeout', origin)
    this.held++
    return state.queue.push(this, state, until, signal)
  }

  /** @internal Gives a slot back and learns from how the attempt went. */
  release(state: OriginLimit, outcome: LimitOutcome, rttMs: number): void {
    const now = this.clock.now()
    state.noteRelease(now)
    state.inFlight--
    state.lastUsed = now
    if (outcome === 'ok') state.sample(rttMs, now, this)
    else if (outcome === 'drop') state.drop(now, this)
    state.dispatch()
  }

  /** @internal */
  refuse(reason: 'queue_full' | 'queue_timeout', origin: string): Promise<never> {
    this.refused++
    return Promise.reject(new ClientLimitError(reason, origin, this.limit(origin)))
  }

  private originState(origin: string): OriginLimit {
    let state = this.origins.get(origin)
    if (state !== undefined) return state
    if (this.origins.size >= this.maxOrigins) this.forgetIdlest()
    state = new OriginLimit(origin, this.initialLimit, this.clock.now())
    this.origins.set(origin, state)
    return state
  }

  /** Past maxOrigins (a client fanning out to many hosts): the idle origin used longest ago goes. */
  private forgetIdlest(): void {
    let idlest: OriginLimit | undefined
    for (const state of this.origins.values()) {
      if (state.inFlight > 0 || state.queue.size > 0) continue
      if (idlest === undefined || state.lastUsed < idlest.lastUsed) idlest = state
    }
    if (idlest !== undefined) this.origins.delete(idlest.origin)
  }
}

/** @internal The limit, in-flight count and local queue of one origin. */
export class OriginLimit {
  inFlight = 0
  readonly queue = new WaitQueue()
  /** Smoothed RTT, for wait estimates; starts at a guess a first round trip replaces. */
  smoothedRttMs = 0
  private minRttMs = Number.POSITIVE_INFINITY
  private windowMinRttMs = Number.POSITIVE_INFINITY
  private previousWindowMinRttMs = Number.POSITIVE_INFINITY
  private windowStart: number
  private lastDropAt = Number.NEGATIVE_INFINITY
  /** When an attempt last came back (or one was sent with nothing in flight). */
  lastReleaseAt = Number.NEGATIVE_INFINITY
  /** When the last stall of the origin ended: attempts begun before it do not feed the wait estimate. */
  private stallEndedAt = Number.NEGATIVE_INFINITY

  constructor(
    readonly origin: string,
    public limit: number,
    public lastUsed: number,
  ) {
    this.windowStart = lastUsed
  }

  /**
   * Notes an attempt coming back. Two or more in flight, none back for STALL_ROUND_TRIPS smoothed
   * round trips, and no such gap just before: the origin stalled (a blocked event loop, a pause).
   * Each attempt that spanned the stall reports its length; averaged into the round trip that waits
   * are estimated from, they made the fail-fast rule refuse the backlog the origin went on to serve
   * in time (simulated 0.9× C, a 250 ms stall: 27 requests refused, 11 without those samples).
   */
  noteRelease(now: number): void {
    const roundTrip = this.smoothedRttMs
    const gap = now - this.lastReleaseAt
    if (roundTrip > 0 && this.inFlight > 1 && gap > STALL_ROUND_TRIPS * roundTrip) {
      // Stalls one after another are no stall: the origin got slower (a caller that sends in bursts
      // sees each burst come back late), and its round trips are what the estimate must learn.
      this.stallEndedAt = now - this.stallEndedAt < 2 * gap ? Number.NEGATIVE_INFINITY : now
    }
    this.lastReleaseAt = now
  }

  sample(rttMs: number, now: number, owner: ConcurrencyLimit): void {
    if (now - this.windowStart >= MIN_RTT_WINDOW_MS) {
      this.previousWindowMinRttMs = this.windowMinRttMs
      this.windowMinRttMs = Number.POSITIVE_INFINITY
      this.windowStart = now
    }
    if (rttMs < this.windowMinRttMs) this.windowMinRttMs = rttMs
    this.minRttMs = Math.min(this.windowMinRttMs, this.previousWindowMinRttMs)
    if (now - rttMs >= this.stallEndedAt)
      this.smoothedRttMs =
        this.smoothedRttMs === 0 ? rttMs : this.smoothedRttMs + RTT_SMOOTHING * (rttMs - this.smoothedRttMs)
    // Only a caller that uses at least half its limit learns from round trips (Netflix's "app-limited"
    // check): an idle caller proves nothing about a larger limit, and round trips that grow while it
    // sends little are not its own requests queueing (a busy machine, a slow query); shrinking then
    // would hold back a caller well under the origin's capacity.
    if (this.inFlight + 1 < this.limit / 2) return
    const queued = this.limit * (1 - this.minRttMs / Math.max(rttMs, this.minRttMs))
    if (queued < ALPHA) this.limit = Math.min(owner.maxLimit, this.limit + 1 / this.limit)
  }

  drop(now: number, owner: ConcurrencyLimit): void {
    if (now - this.lastDropAt < this.smoothedRttMs) return
    this.lastDropAt = now
    this.limit = Math.max(owner.minLimit, this.limit * DROP_RATIO)
  }

  /** Hands freed slots to the waiters, oldest first. */
  dispatch(): void {
    while (this.queue.size > 0 && this.inFlight < Math.floor(this.limit)) {
      this.inFlight++
      this.queue.shift()!.grant(this)
    }
  }
}

/** A waiter in an origin's local queue: a node of a doubly linked list, so a timeout removes it in O(1). */
class Waiter {
  prev: Waiter | undefined = undefined
  next: Waiter | undefined = undefined
  timer: TimerHandle
  resolve!: (state: OriginLimit) => void
  reject!: (error: unknown) => void
  onAbort: (() => void) | undefined = undefined

  constructor(
    readonly owner: ConcurrencyLimit,
    readonly queue: WaitQueue,
    readonly signal: AbortSignal,
    readonly origin: string,
    until: number,
  ) {
    const clock = owner.clock
    this.timer = clock.setTimeout(() => this.expire(), Math.max(0, until - clock.now()))
  }

  grant(state: OriginLimit): void {
    this.settle()
    this.resolve(state)
  }

  private expire(): void {
    this.queue.remove(this)
    this.settle()
    this.owner.refused++
    this.reject(new ClientLimitError('queue_timeout', this.origin, this.owner.limit(this.origin)))
  }

  abort(): void {
    this.queue.remove(this)
    this.settle()
    this.reject(this.signal.reason)
  }

  private settle(): void {
    this.owner.clock.clearTimeout(this.timer)
    if (this.onAbort !== undefined) this.signal.removeEventListener('abort', this.onAbort)
  }
}

class WaitQueue {
  private head: Waiter | undefined = undefined
  private tail: Waiter | undefined = undefined
  size = 0

  push(
    owner: ConcurrencyLimit,
    state: OriginLimit,
    until: number,
    signal: AbortSignal,
  ): Promise<OriginLimit> {
    if (signal.aborted) return Promise.reject(signal.reason)
    const waiter = new Waiter(owner, this, signal, state.origin, until)
    const promise = new Promise<OriginLimit>((resolve, reject) => {
      waiter.resolve = resolve
      waiter.reject = reject
    })
    waiter.onAbort = () => waiter.abort()
    signal.addEventListener('abort', waiter.onAbort, { once: true })
    waiter.prev = this.tail
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.size++
    return promise
  }

  shift(): Waiter | undefined {
    const waiter = this.head
    if (waiter !== undefined) this.remove(waiter)
    return waiter
  }

  remove(waiter: Waiter): void {
    if (waiter.prev === undefined && this.head !== waiter) return
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = undefined
    waiter.next = undefined
    this.size--
  }
}

/** Round-trip times want better than Date.now()'s whole milliseconds; nothing here compares against a date. */
const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: systemClock.setTimeout,
  clearTimeout: systemClock.clearTimeout,
}

/**
 * The process-wide limit `createFetch` uses unless told otherwise: every caller in one process shares
 * what an origin can take, as one client would.
 */
export const defaultConcurrencyLimit = new ConcurrencyLimit({ clock: monotonicClock })
