import { performance } from 'node:perf_hooks'
import { clamp } from './bounds.js'
import type { Clock, RandomSource, TimerHandle } from './clock.js'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject, numberOption } from './validate.js'

/**
 * `eventLoopShedding`: shed a fraction of arrivals when the server's own event loop is the
 * bottleneck. On by default; `false` turns it off.
 */
export interface EventLoopSheddingOptions {
  /**
   * Event-loop lag the controller holds the loop at under CPU overload, in ms; a loop turn that ran
   * twice this is cut short. @default 15
   */
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

// The controller's gains, per unit of relative error (lag − target) / target. The integral term finds
// the fraction that balances arrivals against what the loop can do: it climbs at up to 3 per second of
// relative error (a lag far above target is a backlog to drain, and every 25 ms at too low a fraction
// adds to it), and falls at up to 1 per second. The proportional term answers a lag that climbs at
// once, sheds a little less while the lag is under target, and damps the integral so the fraction
// settles instead of swinging.
const INTEGRAL_GAIN = 1
const MAX_INTEGRAL_ERROR = 3
const PROPORTIONAL_GAIN = 0.1
// The error the proportional term sees at most: 3 targets of lag. Larger, a loop that stalled for
// seconds (lag 30 targets) swung the fraction from 0 to 1 and back on every tick.
const MAX_ERROR = 3
// Lag counts as the loop's own only when it was busy at least this share of the tick.
const BUSY_UTILIZATION = 0.8
// ... only once it lasted two ticks in a row and this long: a GC pause or one long task makes one tick
// late, a burst of arrivals on a loop below capacity a tick or two by a few ms ...
const SUSTAINED_MS = 75
// ... and only while requests arrive at some rate: a few now and then on a starved machine are not
// what keeps the loop busy, and turning them away relieves nothing (at 25 ms ticks: 120 a second).
const MIN_ARRIVALS_PER_TICK = 3
// A turn is cut short only once it has read more than this many arrivals since the last tick: a flood,
// not one long request (a big export, say) with a few read after it.
const STALL_ARRIVALS = 8
// A tick that fires late integrates the time it missed, but no more than this many intervals: one long
// stall is one reading.
const MAX_ELAPSED_INTERVALS = 10
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
 * Event-loop shedding, on by default. When routes spend CPU (JSON, templates, crypto, validation),
 * requests wait in socket buffers and in the event loop before any middleware sees them; the work a
 * permit measures stays fast, so the concurrency limit sees nothing. The loop does: one unref'd timer
 * every `intervalMs` measures how late it fires (lag), about as long as a request read now waited for
 * JavaScript. A PI controller (after Uber's Cinnamon) turns the lag's distance from its target into a
 * fraction of arrivals to turn away, so the lag stays at its target; lower priorities are shed first;
 * and an arrival read in a loop turn that already ran too long is shed at once (`shouldShed`). The
 * loop idle, the fraction is 0 and admission pays two comparisons.
 */
export class EventLoopShedder {
  /** The share of arrivals being shed now, 0–maxFraction. */
  fraction = 0
  /** The lag of the last tick, in ms. */
  lagMs = 0
  /** When a tick last found the loop stalled (lag of twice the target or more), on the clock. */
  stalledAt = Number.NEGATIVE_INFINITY
  private readonly targetLagMs: number
  private readonly intervalMs: number
  private readonly maxFraction: number
  /** The integral term: the fraction that balances arrivals against the loop, as learned so far. */
  private integral = 0
  /** Ticks in a row whose lag was above target, and the time they covered. */
  private overTicks = 0
  private overMs = 0
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
  /** The highest priority in the recent mix (in a stall it is shed last), and whether it is the only one. */
  private topPriority = 0
  private onePriority = true
  /** When the first arrival since the last tick was seen (Infinity: none yet). */
  private workSince = Number.POSITIVE_INFINITY
  private readonly stallMs: number
  private readonly tick = (): void => {
    const now = this.clock.now()
    const lag = Math.max(0, now - this.dueAt)
    if (lag >= this.stallMs) this.stalledAt = now
    this.update(lag, this.utilization(), this.intervalMs + lag)
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
    this.targetLagMs = numberOption('eventLoopShedding.targetLagMs', options.targetLagMs, 15, 0, 60_000, true)
    this.intervalMs = numberOption('eventLoopShedding.intervalMs', options.intervalMs, 25, 1, 60_000)
    this.maxFraction = numberOption('eventLoopShedding.maxFraction', options.maxFraction, 1, 0, 1)
    this.stallMs = 2 * this.targetLagMs
  }

  start(): void {
    if (this.timer === undefined) this.arm(this.clock.now())
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.fraction = 0
    this.integral = 0
  }

  /**
   * Whether an arrival of this priority is turned away now (`now` from the same clock). Counts it
   * either way.
   *
   * The fraction changes only between ticks, and a tick runs only between the loop's turns; when
   * arrivals come faster than the loop serves them, one turn reads every socket that became readable
   * during the last, and each turn is longer than the one before (measured at 5× capacity with 4,000
   * connected clients and no fraction yet: the timer 110 ms late, then 690 ms). So arrivals also check the turn they are read in: once the work
   * admitted since the timer fell due has run more than twice the target lag, and more than a few
   * arrivals were read since the last tick, the rest of the turn is shed (the highest priority in the
   * mix only after twice that; no more than `maxFraction` of it), and the turn ends soon. Time before
   * the turn's first arrival does not count: a GC pause or a starved process stalls the loop too, and
   * the few requests read after it are not what made it late.
   */
  shouldShed(priority: number, now: number): boolean {
    this.arrivalsThisTick++
    if (priority === 0) this.zeroArrivals++
    else this.arrivals.set(priority, (this.arrivals.get(priority) ?? 0) + 1)
    if (this.workSince === Number.POSITIVE_INFINITY) this.workSince = now
    const stalledMs = now - Math.max(this.dueAt, this.workSince)
    if (
      stalledMs > this.stallMs &&
      this.arrivalsThisTick > STALL_ARRIVALS &&
      (priority < this.topPriority || this.onePriority || stalledMs > 2 * this.stallMs) &&
      (this.maxFraction === 1 || this.random() < this.maxFraction)
    ) {
      return true
    }
    if (this.fraction === 0) return false
    if (priority < this.cutoff) return true
    if (priority > this.cutoff) return false
    return this.random() < this.cutoffShare
  }

  /**
   * One reading of lag and utilization: the fraction moves toward what holds the lag at its target.
   * `elapsedMs` is the time since the previous reading (late ticks integrate the time they missed).
   */
  update(lagMs: number, utilization: number, elapsedMs = this.intervalMs): void {
    this.lagMs = lagMs
    this.recentArrivals = 0.8 * this.recentArrivals + 0.2 * this.arrivalsThisTick
    this.arrivalsThisTick = 0
    this.workSince = Number.POSITIVE_INFINITY
    // Lag above its target on a busy loop: requests wait for JavaScript, about as long as the timer
    // did. Lag on a mostly idle loop is a process starved of CPU by its neighbours: shedding relieves
    // nothing there. (Utilization alone is no measure of waiting: a loop that serves exactly what
    // arrives reads 1; holding it under 0.98 kept Express at 56% of C at 2×, the lag alone at 95%.)
    let error =
      utilization >= BUSY_UTILIZATION
        ? clamp((lagMs - this.targetLagMs) / this.targetLagMs, -1, MAX_ERROR)
        : -1
    // Only an excess that lasts, while requests arrive, raises the fraction: one late tick (a GC pause,
    // one long task, a test runner compiling a module) is not overload, nor a few requests on a starved
    // machine. Such a reading counts as on target: neither term moves on it.
    // Nor does shedding begin below twice the target: a loop near its capacity (a fresh process
    // compiling its routes, a burst) runs 15–26 ms late for a few hundred ms and catches up by itself,
    // while overload keeps adding to its backlog and passes any threshold within tens of ms. Once
    // shedding, the target holds.
    const over = error > 0 && (this.integral > 0 || lagMs >= this.stallMs)
    this.overTicks = over ? this.overTicks + 1 : 0
    this.overMs = over ? this.overMs + elapsedMs : 0
    const counts =
      this.overTicks >= 2 && this.overMs >= SUSTAINED_MS && this.recentArrivals >= MIN_ARRIVALS_PER_TICK
    if (error > 0 && !(over && counts)) error = 0
    const seconds = Math.min(elapsedMs, MAX_ELAPSED_INTERVALS * this.intervalMs) / 1000
    // Positional form, the integral held within [0, maxFraction] (no windup): a lag below target on an
    // idle loop keeps the fraction at 0 however it moves.
    this.integral = clamp(
      this.integral + INTEGRAL_GAIN * clamp(error, -1, MAX_INTEGRAL_ERROR) * seconds,
      0,
      this.maxFraction,
    )
    this.fraction = clamp(this.integral + PROPORTIONAL_GAIN * error, 0, this.maxFraction)
    this.placeCutoff()
  }

  /** The priority below which everything is shed, and the share shed at it, for the current fraction. */
  private placeCutoff(): void {
    this.zeroArrivals *= PRIORITY_DECAY
    for (const [priority, count] of this.arrivals) {
      if (count < 0.01) this.arrivals.delete(priority)
      else this.arrivals.set(priority, count * PRIORITY_DECAY)
    }
    const withZero = this.zeroArrivals >= 0.01 || this.arrivals.size === 0
    let top = withZero ? 0 : Number.NEGATIVE_INFINITY
    for (const priority of this.arrivals.keys()) if (priority > top) top = priority
    this.topPriority = top
    this.onePriority = this.arrivals.size + (withZero ? 1 : 0) <= 1
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
  if (option === false) return undefined
  if (option === true || option === undefined) return {}
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
