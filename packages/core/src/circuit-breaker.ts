import { retryAfterSeconds } from './bounds.js'
import { type Clock, type RandomSource, systemClock } from './clock.js'
import { createBackpressureError, InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject, functionOption, integerOption, numberOption } from './validate.js'

/** `closed`: calls pass. `open`: calls fail fast for the cool-down. `half_open`: a few trial calls probe the downstream. */
export type CircuitState = 'closed' | 'open' | 'half_open'

/** What an `onStateChange` listener receives. */
export interface CircuitStateChange {
  readonly name: string
  readonly from: CircuitState
  readonly to: CircuitState
}

export interface CircuitBreakerOptions {
  /**
   * Opens the circuit when, over the rolling window, at least `minimumCalls` calls completed and this
   * share of them failed (0 < x ≤ 1).
   * @default 0.5
   */
  readonly failureRateThreshold?: number
  /** Fewest completed calls in the window before the failure rate is trusted. @default 10 */
  readonly minimumCalls?: number
  /** Length of the rolling window outcomes are counted over (10 buckets), in ms. @default 10000 */
  readonly windowMs?: number
  /** How long the circuit stays open before trial calls are let through, in ms. @default 10000 */
  readonly coolDownMs?: number
  /** Trial calls let through while half-open; that many successes close the circuit, one failure re-opens it. @default 1 */
  readonly halfOpenMaxCalls?: number
  /**
   * Which errors count as failures of the downstream. Errors it returns false for (a 404, a validation
   * error) count as successes: the downstream answered. @default every error
   */
  readonly isFailure?: (error: unknown) => boolean
  /** Told apart in state-change events by this label. @default 'default' */
  readonly name?: string
  /** Time source; tests pass a ManualClock. @default the monotonic system clock */
  readonly clock?: Clock
  /** Random source in [0, 1) for Retry-After jitter. @default Math.random */
  readonly random?: RandomSource
}

/** Every key of CircuitBreakerOptions (the compiler keeps the two in step): any other is refused. */
const CIRCUIT_BREAKER_OPTION_KEYS: readonly string[] = Object.keys({
  failureRateThreshold: true,
  minimumCalls: true,
  windowMs: true,
  coolDownMs: true,
  halfOpenMaxCalls: true,
  isFailure: true,
  name: true,
  clock: true,
  random: true,
} satisfies Record<keyof CircuitBreakerOptions, true>)

const BUCKETS = 10

/**
 * A circuit breaker for calls to a downstream (a database, another service). Policy: over a rolling
 * time window (`windowMs`, in 10 buckets), once at least `minimumCalls` calls completed and the share
 * that failed reaches `failureRateThreshold`, the circuit opens. While open, calls fail at once with a
 * `BackpressureError` (`circuit_open`, 503) whose `Retry-After` is the remaining cool-down, rounded up
 * and jittered upwards (never earlier than the cool-down's end). After `coolDownMs` it is half-open:
 * `halfOpenMaxCalls` trial calls go through; as many successes close it (with a fresh window), a
 * failure re-opens it for another cool-down.
 *
 * No timers: the open → half-open transition happens when the breaker is next used or read, and
 * `onStateChange` listeners hear about it then. Outcomes of calls started before a transition are
 * ignored, so a slow call from before the circuit opened cannot close it.
 *
 * @example
 * const breaker = new CircuitBreaker({ failureRateThreshold: 0.5, coolDownMs: 5000 })
 * const user = await breaker.execute(() => db.findUser(id)) // throws BackpressureError while open
 * app.use(backpressure({ circuitBreaker: breaker })) // and while open, requests get 503 at once
 */
export class CircuitBreaker {
  readonly name: string
  readonly options: Readonly<{
    failureRateThreshold: number
    minimumCalls: number
    windowMs: number
    coolDownMs: number
    halfOpenMaxCalls: number
  }>
  private readonly clock: Clock
  private readonly random: RandomSource
  private readonly isFailure: ((error: unknown) => boolean) | undefined
  private readonly bucketMs: number
  private readonly successes = new Float64Array(BUCKETS)
  private readonly failures = new Float64Array(BUCKETS)
  private readonly epochs = new Float64Array(BUCKETS).fill(-1)
  private current: CircuitState = 'closed'
  /** Bumped on every transition: an outcome is counted only in the generation its call started in. */
  private generation = 0
  private openUntil = 0
  private trialsInFlight = 0
  private trialSuccesses = 0
  private readonly listeners: ((change: CircuitStateChange) => void)[] = []

  constructor(options: CircuitBreakerOptions = {}) {
    assertObject('options', options as unknown)
    assertKnownKeys('', options, CIRCUIT_BREAKER_OPTION_KEYS)
    const windowMs = numberOption('windowMs', options.windowMs, 10_000, BUCKETS)
    this.options = Object.freeze({
      failureRateThreshold: numberOption(
        'failureRateThreshold',
        options.failureRateThreshold,
        0.5,
        0,
        1,
        true,
      ),
      minimumCalls: integerOption('minimumCalls', options.minimumCalls, 10, 1),
      windowMs,
      coolDownMs: numberOption('coolDownMs', options.coolDownMs, 10_000, 0, Number.POSITIVE_INFINITY, true),
      halfOpenMaxCalls: integerOption('halfOpenMaxCalls', options.halfOpenMaxCalls, 1, 1),
    })
    if (!Number.isFinite(windowMs))
      throw new InvalidOptionError('windowMs', `a finite number from ${BUCKETS} and up`, windowMs)
    this.bucketMs = windowMs / BUCKETS
    this.isFailure = functionOption('isFailure', options.isFailure)
    this.random = functionOption<RandomSource>('random', options.random) ?? Math.random
    this.clock = options.clock ?? systemClock
    const name = options.name ?? 'default'
    if (typeof name !== 'string' || name.length === 0)
      throw new InvalidOptionError('name', 'a non-empty string', name)
    this.name = name
  }

  /** The state now (reading it may move an open circuit whose cool-down ended to half-open). */
  get state(): CircuitState {
    this.refresh(this.clock.now())
    return this.current
  }

  /** Milliseconds left of the cool-down while open; 0 otherwise. */
  get remainingCoolDownMs(): number {
    const now = this.clock.now()
    this.refresh(now)
    return this.current === 'open' ? this.openUntil - now : 0
  }

  /**
   * 0 when a call would go through now (closed, or half-open with a trial slot free); otherwise the
   * whole seconds to tell callers to wait: the remaining cool-down rounded up, jittered upwards over
   * `[s, s + max(1, ⌊s/2⌋)]`. The HTTP layer's check; takes no trial slot.
   */
  retryAfterSeconds(): number {
    const now = this.clock.now()
    this.refresh(now)
    if (this.current === 'closed') return 0
    if (this.current === 'half_open' && this.hasTrialSlot()) return 0
    return this.jittered(now)
  }

  /**
   * Runs `fn` if the circuit lets it through and records how it ended. Rejects at once with a
   * `BackpressureError` (`circuit_open`, status 503, `Retry-After`) while the circuit is open or every
   * half-open trial slot is taken; otherwise settles as `fn` does.
   * @example
   * const rows = await breaker.execute(() => pool.query(sql))
   */
  async execute<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    const now = this.clock.now()
    this.refresh(now)
    const trial = this.current === 'half_open'
    if (this.current === 'open' || (trial && !this.hasTrialSlot())) {
      throw createBackpressureError('circuit_open', this.jittered(now))
    }
    if (trial) this.trialsInFlight++
    const generation = this.generation
    let result: T
    try {
      result = await fn()
    } catch (error) {
      this.record(generation, trial, this.isFailure === undefined || this.isFailure(error))
      throw error
    }
    this.record(generation, trial, false)
    return result
  }

  /** Same as `execute`. */
  run<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    return this.execute(fn)
  }

  /** Listens to transitions; returns a function that stops listening. A throwing listener is reported as a warning. */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    this.listeners.push(listener)
    return () => {
      const index = this.listeners.indexOf(listener)
      if (index !== -1) this.listeners.splice(index, 1)
    }
  }

  /** Closes the circuit and forgets the window (an operator's override). */
  reset(): void {
    this.transition('closed')
  }

  private hasTrialSlot(): boolean {
    return this.trialsInFlight + this.trialSuccesses < this.options.halfOpenMaxCalls
  }

  private jittered(now: number): number {
    const remaining = this.current === 'open' ? this.openUntil - now : 0
    const base = retryAfterSeconds(remaining / 1000)
    const spread = Math.max(1, Math.floor(base / 2))
    // Kept a valid header (at most a day) even for a cool-down of years or Infinity.
    return retryAfterSeconds(base + Math.floor(this.random() * (spread + 1)))
  }

  private refresh(now: number): void {
    if (this.current === 'open' && now >= this.openUntil) this.transition('half_open')
  }

  private record(generation: number, trial: boolean, failed: boolean): void {
    if (trial && generation === this.generation) this.trialsInFlight--
    if (generation !== this.generation) return
    const now = this.clock.now()
    if (this.current === 'half_open') {
      if (failed) this.open(now)
      else if (++this.trialSuccesses >= this.options.halfOpenMaxCalls) this.transition('closed')
      return
    }
    if (this.current !== 'closed') return
    const epoch = Math.floor(now / this.bucketMs)
    const i = epoch % BUCKETS
    if (this.epochs[i] !== epoch) {
      this.epochs[i] = epoch
      this.successes[i] = 0
      this.failures[i] = 0
    }
    if (!failed) {
      this.successes[i]!++
      return
    }
    this.failures[i]!++
    let calls = 0
    let failures = 0
    for (let j = 0; j < BUCKETS; j++) {
      if (this.epochs[j]! > epoch - BUCKETS) {
        calls += this.successes[j]! + this.failures[j]!
        failures += this.failures[j]!
      }
    }
    if (calls >= this.options.minimumCalls && failures / calls >= this.options.failureRateThreshold)
      this.open(now)
  }

  private open(now: number): void {
    this.openUntil = now + this.options.coolDownMs
    this.transition('open')
  }

  private transition(to: CircuitState): void {
    const from = this.current
    this.generation++
    this.current = to
    this.trialsInFlight = 0
    this.trialSuccesses = 0
    if (to === 'closed') this.epochs.fill(-1)
    if (from === to) return
    const change: CircuitStateChange = { name: this.name, from, to }
    for (const listener of this.listeners.slice()) {
      try {
        listener(change)
      } catch (error) {
        process.emitWarning(
          error instanceof Error ? error : new Error(String(error)),
          'BackpressureListenerWarning',
        )
      }
    }
  }
}
