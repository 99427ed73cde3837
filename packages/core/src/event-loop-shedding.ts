import { performance } from 'node:perf_hooks'
import { clamp } from './bounds.js'
import type { Clock, RandomSource, TimerHandle } from './clock.js'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject, numberOption } from './validate.js'

/**
 * `eventLoopShedding`: shed a fraction of arrivals when the server's own event loop is the
 * bottleneck. Off by default (`true` or options turn it on).
 */
export interface EventLoopSheddingOptions {
  /** Event-loop lag the controller holds the loop at under CPU overload, in ms. @default 20 */
  readonly targetLagMs?: number
  /** How often the lag is read and the shed fraction updated, in ms. @default 25 */
  readonly intervalMs?: number
  /** The largest share of arrivals ever shed for the event loop (0–1). @default 1 */
  readonly maxFraction?: number
}

const OPTION_KEYS: readonly string[] = Object.keys({
  targetLagMs: true,
  intervalMs: true,
  maxFraction: true,
} satisfies Record<keyof EventLoopSheddingOptions, true>)

// The controller's gains, per unit of relative error (lag − target) / target, in velocity form. The
// integral term (its error capped at ±1, so a loop back under its target pulls the fraction down as
// fast as one above it pushes it up) finds the fraction that balances arrivals against what the loop
// can do; the proportional term answers a lag that climbs at once, and damps the integral so the
// fraction settles instead of swinging (a fixed threshold sheds in on/off waves).
const INTEGRAL_GAIN = 1
const PROPORTIONAL_GAIN = 0.1
// The error the proportional term sees at most: 10 targets of lag.
const MAX_ERROR = 10
// Lag counts as the loop's own only when it was busy at least this share of the tick.
const BUSY_UTILIZATION = 0.8
// The loop's utilization the fraction holds it under: a loop busier than this for ticks on end never
// catches up with what arrives.
const TARGET_UTILIZATION = 0.98
// ... and only while requests arrive at some rate: a few now and then on a starved machine are not
// what keeps the loop busy, and turning them away relieves nothing (at 25 ms ticks: 120 a second).
const MIN_ARRIVALS_PER_TICK = 3
// Arrivals by priority are counted with this decay per tick (~a second's memory at 25 ms), so the
// share of each priority reflects the recent mix.
const PRIORITY_DECAY = 0.97

/** The loop's utilization since the previous call, from perf_hooks (about a microsecond a call). */
export function loopUtilizationReader(): () => number {
  let last = performance.eventLoopUtilization()
  return () => {
    const now = performance.eventLoopUtilization()
    const { utilization } = performance.eventLoopUtilization(now, last)
    last = now
    return utilization
  }
}

/**
 * Event-loop shedding, opt-in. When routes spend CPU (JSON, templates, crypto, validation),
 * requests wait in socket buffers and in the event loop before any middleware sees them; the work a
 * permit measures stays fast, so the concurrency limit sees nothing. The loop does: one unref'd timer
 * every `intervalMs` measures how late it fires (lag) and the loop's utilization since the last tick.
 * A PI controller (after Uber's Cinnamon) turns the larger of their distances from target into a
 * fraction of arrivals to turn away, so the lag stays at its target and the loop idles now and then;
 * lower priorities are shed first. The loop idle, the fraction is 0 and admission pays one comparison.
 */
export class EventLoopShedder {
  /** The share of arrivals being shed now, 0–maxFraction. */
  fraction = 0
  /** The lag of the last tick, in ms. */
  lagMs = 0
  private readonly targetLagMs: number
  private readonly intervalMs: number
  private readonly maxFraction: number
  private lastError = -1
  private wasOver = false
  /** Arrivals since the last tick, and per tick lately (a five-tick moving average). */
  private arrivalsThisTick = 0
  private recentArrivals = 0
  private timer: TimerHandle | undefined
  private dueAt = 0
  /** Recent arrivals by priority (decayed); priority 0, the common case, without a Map lookup. */
  private zeroArrivals = 0
  private readonly arrivals = new Map<number, number>()
  /** Below `cutoff` every arrival is shed, at `cutoff` a share `cutoffShare`, above it none. */
  private cutoff = Number.NEGATIVE_INFINITY
  private cutoffShare = 0
  private readonly tick = (): void => {
    const now = this.clock.now()
    this.update(Math.max(0, now - this.dueAt), this.utilization())
    this.arm(now)
  }

  /**
   * `utilization` reads the loop's utilization since its last call (0–1): lag counts only while the
   * loop itself was busy. A process starved of CPU by its neighbours, or one long task, also makes a
   * timer late, and turning requests away helps neither.
   */
  constructor(
    options: EventLoopSheddingOptions,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    private readonly utilization: () => number,
  ) {
    assertKnownKeys('eventLoopShedding', options, OPTION_KEYS)
    this.targetLagMs = numberOption('eventLoopShedding.targetLagMs', options.targetLagMs, 20, 0, 60_000, true)
    this.intervalMs = numberOption('eventLoopShedding.intervalMs', options.intervalMs, 25, 1, 60_000)
    this.maxFraction = numberOption('eventLoopShedding.maxFraction', options.maxFraction, 1, 0, 1)
  }

  start(): void {
    if (this.timer === undefined) this.arm(this.clock.now())
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.fraction = 0
  }

  /** Whether an arrival of this priority is turned away now. Counts it either way. */
  shouldShed(priority: number): boolean {
    this.arrivalsThisTick++
    if (priority === 0) this.zeroArrivals++
    else this.arrivals.set(priority, (this.arrivals.get(priority) ?? 0) + 1)
    if (this.fraction === 0) return false
    if (priority < this.cutoff) return true
    if (priority > this.cutoff) return false
    return this.random() < this.cutoffShare
  }

  /** One reading of lag and utilization: the fraction moves toward what holds the loop at its targets. */
  update(lagMs: number, utilization: number): void {
    this.lagMs = lagMs
    this.recentArrivals = 0.8 * this.recentArrivals + 0.2 * this.arrivalsThisTick
    this.arrivalsThisTick = 0
    // Two errors, the larger rules. Lag above its target on a busy loop: requests wait for JavaScript.
    // Utilization above its target: the loop is never idle, so requests also wait where no timer can
    // see them (in socket buffers and the accept queue: measured, a saturated Express loop ran its
    // timer 8-15 ms late while requests waited for hundreds of ms); a loop that idles now and then has
    // read everything that arrived.
    const lagError = utilization >= BUSY_UTILIZATION ? (lagMs - this.targetLagMs) / this.targetLagMs : -1
    const busyError = (utilization - TARGET_UTILIZATION) / (1 - TARGET_UTILIZATION)
    let error = clamp(Math.max(lagError, busyError), -1, MAX_ERROR)
    // Only an excess that lasts, while requests arrive, raises the fraction: one late tick (a GC pause,
    // one long task, a test runner compiling a module) is not overload, nor a few requests on a starved
    // machine. Such a reading leaves the error as it was: neither term moves up on it.
    const over = error > 0
    const counts = over && this.wasOver && this.recentArrivals >= MIN_ARRIVALS_PER_TICK
    this.wasOver = over
    if (over && !counts) error = Math.min(this.lastError, 0)
    const step =
      INTEGRAL_GAIN * clamp(error, -1, 1) * (this.intervalMs / 1000) +
      PROPORTIONAL_GAIN * (error - this.lastError)
    this.lastError = error
    this.fraction = clamp(this.fraction + step, 0, this.maxFraction)
    this.placeCutoff()
  }

  /** The priority below which everything is shed, and the share shed at it, for the current fraction. */
  private placeCutoff(): void {
    this.zeroArrivals *= PRIORITY_DECAY
    for (const [priority, count] of this.arrivals) {
      if (count < 0.01) this.arrivals.delete(priority)
      else this.arrivals.set(priority, count * PRIORITY_DECAY)
    }
    if (this.fraction === 0) {
      this.cutoff = Number.NEGATIVE_INFINITY
      return
    }
    if (this.arrivals.size === 0) {
      this.cutoff = 0
      this.cutoffShare = this.fraction
      return
    }
    // Once per tick, over the few priorities in use: lowest first, until their share covers the fraction.
    const counts: [number, number][] = [...this.arrivals]
    if (this.zeroArrivals > 0) counts.push([0, this.zeroArrivals])
    counts.sort((a, b) => a[0] - b[0])
    const total = counts.reduce((sum, [, count]) => sum + count, 0)
    let below = 0
    for (const [priority, count] of counts) {
      const share = count / total
      if (below + share >= this.fraction) {
        this.cutoff = priority
        this.cutoffShare = (this.fraction - below) / share
        return
      }
      below += share
    }
    const last = counts.at(-1)!
    this.cutoff = last[0]
    this.cutoffShare = 1
  }

  private arm(now: number): void {
    this.dueAt = now + this.intervalMs
    this.timer = this.clock.setTimeout(this.tick, this.intervalMs)
  }
}

/** `eventLoopShedding` resolved: options for the shedder, or undefined when turned off. */
export function resolveEventLoopShedding(option: unknown): EventLoopSheddingOptions | undefined {
  // Off unless asked for: measured on real servers, it turned away requests a CPU-bound Express
  // server could have served (155 at 0.9x; 76% of C at 2x where no protection served 93%), see
  // docs/adaptive-limit.md.
  if (option === false || option === undefined) return undefined
  if (option === true) return {}
  if (typeof option !== 'object' || option === null || Array.isArray(option)) {
    throw new InvalidOptionError(
      'eventLoopShedding',
      'false, true or { targetLagMs, intervalMs, maxFraction }',
      option,
    )
  }
  assertObject('eventLoopShedding', option)
  return option as EventLoopSheddingOptions
}
