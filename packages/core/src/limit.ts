import { clamp } from './bounds.js'
import type { RandomSource } from './clock.js'
import { InvalidOptionError } from './errors.js'
import type { SharedBaseline } from './shared-baseline.js'
import { assertKnownKeys, integerOption, numberOption } from './validate.js'

/**
 * The concurrency limit the controller admits against. A fixed limit never moves; an adaptive one
 * learns from the service time of each completed request and reports changes through `onChange`.
 */
export interface ConcurrencyLimit {
  readonly value: number
  /** One completed request: when it started (clock ms), its service time, and the in-flight count beside it. */
  onSample(startedAt: number, serviceMs: number, inFlight: number): void
  /**
   * A request found no free slot. Called on arrivals, so a limit that waits for releases (a probe)
   * can tell when none will come: work that never ends (SSE, long polls) must not wedge it.
   */
  onBlocked?(now: number, inFlight: number): void
  stop(): void
}

export type LimitChangeListener = (previous: number, limit: number) => void

/** Options of the gradient limit (the default) — every field optional. */
export interface GradientLimitOptions {
  readonly algorithm?: 'gradient'
  /** Limit before anything is measured. @default 10 */
  readonly initialLimit?: number
  /** @default 2 */
  readonly minLimit?: number
  /** @default 1000 */
  readonly maxLimit?: number
  /** How much slower than the no-load time a request may run before the limit shrinks (b in (1+b)·minRTT/RTT). @default 0.5 */
  readonly tolerance?: number
  /** How often the limit is recomputed from the samples since the last update. @default 100 */
  readonly updateIntervalMs?: number
  /** Which percentile of each interval's service times is compared with the baseline. @default 0.5 */
  readonly percentile?: number
  /**
   * Time between re-measurements of the no-load baseline: the next comes ¾ of it to 1¾ after the
   * last, at a multiple of it in Unix time, so the instances of a fleet probe together (see
   * docs/adaptive-limit.md). @default 10000
   */
  readonly probeIntervalMs?: number
  /**
   * The no-load time of a downstream shared by a fleet (`RedisSharedBaseline` from
   * `@backpressure/redis`, or a `MemoryBaselineBoard` member in one process): every probe publishes
   * this instance's baseline, and an instance with none of its own yet starts from the fleet's
   * instead of measuring one on the queue its siblings keep. For instances joining a busy fleet; see
   * docs/fleet.md. @default undefined (each instance measures its own)
   */
  readonly sharedBaseline?: SharedBaseline
}

/** Options of additive-increase / multiplicative-decrease on a latency target. */
export interface AimdLimitOptions {
  readonly algorithm: 'aimd'
  /** @default 10 */
  readonly initialLimit?: number
  /** @default 2 */
  readonly minLimit?: number
  /** @default 1000 */
  readonly maxLimit?: number
  /** A request slower than this is a congestion signal. */
  readonly latencyTargetMs: number
  /** Factor the limit is multiplied by on congestion. @default 0.9 */
  readonly backoffRatio?: number
  /** @default 100 */
  readonly updateIntervalMs?: number
}

// Every key of each algorithm's options (the compiler keeps them in step with the interfaces).
const GRADIENT_OPTION_KEYS: readonly string[] = Object.keys({
  algorithm: true,
  initialLimit: true,
  minLimit: true,
  maxLimit: true,
  tolerance: true,
  updateIntervalMs: true,
  percentile: true,
  probeIntervalMs: true,
  sharedBaseline: true,
} satisfies Record<keyof GradientLimitOptions, true>)
const AIMD_OPTION_KEYS: readonly string[] = Object.keys({
  algorithm: true,
  initialLimit: true,
  minLimit: true,
  maxLimit: true,
  latencyTargetMs: true,
  backoffRatio: true,
  updateIntervalMs: true,
} satisfies Record<keyof AimdLimitOptions, true>)

/**
 * `maxConcurrency`: a fixed number of requests in flight, `'adaptive'` for the gradient limit with its
 * defaults, or the options of an adaptive limit.
 */
export type LimitOption = number | 'adaptive' | GradientLimitOptions | AimdLimitOptions

export class FixedLimit implements ConcurrencyLimit {
  constructor(readonly value: number) {}
  onSample(): void {}
  stop(): void {}
}

/**
 * Keeps the service times of one update interval; the percentile is taken once per interval by
 * sorting at most `capacity` samples, never per request. Past capacity it keeps a uniform reservoir.
 */
class IntervalSamples {
  private readonly values: Float64Array
  count = 0
  /** Samples offered since the last reset, kept or not: the completions of the interval. */
  seen = 0
  /** Of those, how many came from requests that started before the limit's `growthFrom`. */
  stale = 0
  maxInFlight = 0

  constructor(
    capacity: number,
    private readonly random: RandomSource,
  ) {
    this.values = new Float64Array(capacity)
  }

  add(value: number, inFlight: number, stale = false): void {
    this.seen++
    if (stale) this.stale++
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight
    if (this.count < this.values.length) {
      this.values[this.count++] = value
      return
    }
    const slot = Math.floor(this.random() * this.seen)
    if (slot < this.values.length) this.values[slot] = value
  }

  /** The q-quantile of the samples kept, or of those kept from `from` up to `to` (in the order added). */
  percentile(q: number, from = 0, to = this.count): number {
    const sorted = this.values.slice(from, to).sort()
    return sorted[Math.min(to - from - 1, Math.floor(q * (to - from)))] as number
  }

  /** Counts every sample so far as from a request that started before `growthFrom`. */
  markStale(): void {
    this.stale = this.seen
  }

  reset(): void {
    this.count = 0
    this.seen = 0
    this.stale = 0
    this.maxInFlight = 0
  }
}

const MIN_SAMPLES_PER_UPDATE = 5
// Service times below 1 ms count as 1 ms. A millisecond clock (Date.now) reads fast requests as 0 or
// 1 ms at random, and a clock that does not move during a request reads 0: a baseline of 0 made every
// later interval look infinitely slow (g = 0, clamped to 0.5, so the limit halved every interval) and
// 0 / 0 made the gradient NaN, which every clamp let through (Math.min/max propagate NaN) and which
// then admitted nothing ever again. Flooring both sides at the finest step any clock gives keeps the
// ratio finite and meaningful; what it gives up — reacting to queueing that still keeps requests under
// (1 + b) ms — costs callers nothing worth shedding for.
const MIN_SERVICE_MS = 1
// A probe's median must be steady even when service times vary a lot (exponential, say): the median
// of 5 samples ranged so widely there that the baseline, and with it the limit, collapsed.
const PROBE_MIN_SAMPLES = 20
// ... unless 8 or more agree: their middle half within 5% of their median. The test runs after every
// sample from the 8th, so a looser bound stops early on whichever few samples happen to cluster: with
// 10%, queries of 8-12 ms stopped on medians of 8.8 or 11.9 ms, and a fleet's instances, judging one
// shared round-trip time against baselines that far apart, settled at limits 3 to 16 (simulated,
// N = 10 at 10x: Jain's index 0.81 in the worst of eight seeds; 0.92 at 5%).
const PROBE_FEW_SAMPLES = 8
const PROBE_AGREEMENT = 0.05
// A probe whose later half of samples has its median above the upper quartile of the earlier half by
// more than that half's interquartile range measured something else using the downstream mid-probe
// (in a fleet, siblings whose probes ended first restoring their limits): it keeps the earlier half.
// Chance hardly ever does that (exponential service: a median of 10 past p75 + IQR of 10 others is
// 5 standard errors out); the queueing did, and taken whole, a probe of 10 ms queries read 13-23 ms
// and that instance's limit settled at 15 to its siblings' 3-6 (simulated, ten instances at 10x).
const BUSIER_MIN_HALF = 8
// A probe below DROP or above RISE times the baseline measured a changed downstream and replaces it;
// one between measured the same downstream, and is averaged with it.
const BASELINE_DROP = 0.8
const BASELINE_RISE = 1.25
// The first interval's service times agree when their middle half is within 10% of their median: one
// test, not repeated, so chance clusters do not select themselves.
const FIRST_INTERVAL_AGREEMENT = 0.1
// The share of the estimated no-queue concurrency a probe admits: half. Not the whole estimate: one
// inflated by queueing would measure that queueing again and never correct (measured: the simulated
// limit climbed to 4P); at half, any inflation up to 2x is corrected at once. Not more than half
// either: three quarters cost a single server less capacity per probe, but in a fleet sharing one
// pool each instance's probe then measured the others' queueing, and two instances' limits ratcheted
// apart (simulated, N = 2 at 2x: Jain's fairness index 0.97 at 1/2, 0.57-0.60 at 3/5 to 3/4).
const PROBE_SHARE = 0.5
// The share for the first probe under overload: a quarter. Its estimate comes from a baseline measured
// with whatever queue the load had built, and in a fleet that is the queue all the instances keep
// (about 2.2 times the no-load time in the simulation), past what half corrects: each instance's first
// probe then measured some of the others', and two instances' baselines came out 10% apart (simulated,
// 24 runs each of N = 2, 10, 50 at 2x and 10x: Jain's index below 0.9 in 2 of 144 runs at half, worst
// 0.894; none at a quarter, worst 0.907). A single server pays more for that one probe only when its
// estimate is 6 slots or more; below that, minLimit (2) sizes both.
const FIRST_PROBE_SHARE = 0.25
// The grid a repeated probe falls on: long enough that a fleet's probes, begun together, have all
// ended before it (simulated: a 100 ms grid split repeats over two points and left Jain's index at
// 0.51 for 50 instances at 10×; 250 ms kept it at 0.86 or more).
const REPEAT_GRID_MS = 250
// First intervals passed over for a stalled event loop, at most: a second's worth at the default
// update interval. A loop that stays stalled (CPU overload from the start) gets a baseline anyway.
const MAX_STALLED_FIRST_INTERVALS = 10
const neverStalled = (): number => Number.NEGATIVE_INFINITY
// A shared baseline more than this many times the first interval's service time is not taken.
const FLEET_BASELINE_MAX_RATIO = 4

// How much faster than a first, unprobed baseline an interval must run to replace it: warming code
// inflates the first intervals by half or more (Koa here: 15-25 ms medians for 10 ms queries once the
// stalls are passed over), chance moves medians of varied service times by less.
const PROVISIONAL_DROP = 0.75

type Phase = 'normal' | 'probe-drain' | 'probe-measure'

/**
 * The gradient limit (after Netflix's concurrency-limits): every interval,
 *   g = clamp((1 + b) · minRTT / RTT, 0.5, 2),   L ← g · L + √(g · L)
 * where RTT is a percentile of the interval's service times and minRTT the service time with nothing
 * queued downstream. While the downstream keeps up, g > 1 and the limit grows; once requests queue
 * downstream, RTT grows with the limit and g pulls it back, settling near (1 + b) times the
 * downstream's own concurrency plus a √ headroom — without anyone telling us that concurrency.
 *
 * The baseline must never absorb queueing delay, or the limit ratchets up to its maximum. So it is
 * re-measured by a short probe: the limit drops to half the estimated no-queue concurrency
 * (L · minRTT / RTT, and under overload no more than recent completions per ms · minRTT; never below
 * minLimit unless the downstream takes fewer at once; a quarter for the first probe under overload),
 * in-flight work drains to it, and only requests that
 * started after that count. Below the downstream's capacity nothing queues, so the probe sees the true
 * service time. Requests arriving meanwhile wait in our queue (under overload CoDel sheds the ones
 * past its target, as it would anyway). The probe takes 20 samples, or 8 when they agree (a steady
 * downstream): a few service times, since every one taken at the lowered limit costs capacity. Why
 * half, and a quarter: see PROBE_SHARE and FIRST_PROBE_SHARE. A probe that lowered
 * the baseline a lot is repeated at once, one that raised it a lot within about a second; otherwise
 * the next comes ¾ of an interval to 1¾ later, at a multiple of the interval in Unix time. Instances that
 * share a downstream (a fleet in front of one database) so probe in step: each drains its own work
 * while the others drain theirs, and measures the downstream empty rather than queued by its siblings
 * (probed at random moments, their baselines absorbed that queueing and ratcheted: in simulation, ten
 * instances' limits summed to 30 times the pool).
 */
export class GradientLimit implements ConcurrencyLimit {
  private limit: number
  private minRtt = Number.POSITIVE_INFINITY
  private lastRtt = 0
  private phase: Phase = 'normal'
  private probeLimit = 0
  private probeStartedAt = 0
  /** When the current probe began draining; a probe that lasts far too long is given up. */
  private probeBeganAt = 0
  /** Requests that started before the measurement and still run: they hold slots the probe counts. */
  private oldInFlight = 0
  /**
   * Slots added to the probe's limit for old requests that do not end (long-lived streams and polls):
   * without it, one SSE response under a probe limit of 1 admits nothing until it ends.
   */
  private stuckAllowance = 0
  private lastProgressAt = 0
  /**
   * Requests that start before this time are not judged for growth, nor are the intervals mostly
   * made of them. Set when a probe ends: the first requests after it find the downstream empty and
   * run at the no-queue time whatever the limit is, and judging the restored limit on them grew it by
   * half at once (18 → 32 for a pool of 4, 50 ms queries behind HAProxy), so the next probe, sized
   * from it, measured queueing and the baseline tripled. Requests that start a couple of service
   * times later find the downstream as the restored limit leaves it. Also set when the limit binds
   * after an interval that used at most half of it (see onBlocked).
   */
  private growthFrom = Number.NEGATIVE_INFINITY
  /** When the samples now kept began (the last update or probe end), and the completion rate per ms (a decaying maximum over intervals). */
  private countingSince: number
  private throughput = 0
  /** Whether a request found every slot taken since the last update (and so at the last update). */
  private blocked = false
  private saturated = false
  /** Whether the last interval used at most half the limit and never found it full. */
  private light = false
  private nextUpdateAt: number
  private nextProbeAt: number
  /** First intervals passed over because the event loop stalled in them. */
  private stalledIntervals = 0
  /** The first baseline, measured under load, before any probe has checked it: a faster interval lowers it. */
  private baselineProvisional = false
  /**
   * The probe now due repeats, under overload and off the fleet-wide schedule, one that lowered
   * (`drop`) or raised (`raise`) the baseline a lot: it may only lower the baseline. `none` otherwise.
   */
  private repeatOf: 'none' | 'drop' | 'raise' = 'none'
  /** Add to the clock's time for Unix time: the grid every instance of a fleet probes on. */
  private readonly epochOffsetMs: number
  private readonly samples: IntervalSamples
  private readonly minLimit: number
  private readonly maxLimit: number
  private readonly tolerance: number
  private readonly updateIntervalMs: number
  private readonly percentile: number
  private readonly probeIntervalMs: number
  private readonly sharedBaseline: SharedBaseline | undefined

  constructor(
    options: GradientLimitOptions,
    now: number,
    random: RandomSource,
    private readonly onChange: LimitChangeListener,
    epochOffsetMs = 0,
    private readonly loopStalledAt: () => number = neverStalled,
  ) {
    assertKnownKeys('maxConcurrency', options, GRADIENT_OPTION_KEYS)
    this.epochOffsetMs = epochOffsetMs
    ;({ minLimit: this.minLimit, maxLimit: this.maxLimit, initialLimit: this.limit } = resolveBounds(options))
    this.tolerance = numberOption('maxConcurrency.tolerance', options.tolerance, 0.5, 0, 10)
    this.updateIntervalMs = numberOption('maxConcurrency.updateIntervalMs', options.updateIntervalMs, 100, 1)
    this.percentile = numberOption('maxConcurrency.percentile', options.percentile, 0.5, 0, 1, true)
    this.probeIntervalMs = numberOption(
      'maxConcurrency.probeIntervalMs',
      options.probeIntervalMs,
      10_000,
      100,
    )
    const shared = options.sharedBaseline
    if (
      shared !== undefined &&
      (typeof shared !== 'object' ||
        shared === null ||
        typeof shared.current !== 'function' ||
        typeof shared.publish !== 'function')
    ) {
      throw new InvalidOptionError(
        'maxConcurrency.sharedBaseline',
        'an object with current() and publish() (a SharedBaseline)',
        shared,
      )
    }
    this.sharedBaseline = shared
    this.samples = new IntervalSamples(256, random)
    this.nextUpdateAt = this.onGrid(now, this.updateIntervalMs)
    this.countingSince = now
    // The first probe comes early: the first baseline may have been measured under load.
    this.nextProbeAt = this.onGrid(now + 500, 1000)
  }

  get value(): number {
    return this.phase === 'normal' ? Math.floor(this.limit) : this.probeLimit + this.stuckAllowance
  }

  /** The no-load service time the limit is judged against, in ms (Infinity before the first sample). */
  get baselineMs(): number {
    return this.minRtt
  }

  onSample(startedAt: number, rawServiceMs: number, inFlight: number): void {
    // A clock that returned NaN or Infinity has measured nothing.
    if (!Number.isFinite(rawServiceMs)) return
    const now = startedAt + rawServiceMs
    const serviceMs = Math.max(rawServiceMs, MIN_SERVICE_MS)
    if (this.phase === 'probe-drain') {
      // Work admitted under the old limit still shares the downstream; wait until it has drained, or
      // until it is clear that what is left does not end soon. A release is progress: a long queue
      // draining steadily is not stuck work. Counted from the probe's start, a cold Koa server's drain
      // of 83 requests into a pool of 4 (about 200 ms) outlasted three of its inflated service times
      // (186 ms), and all of them would have been given slots of their own and measured.
      this.lastProgressAt = now
      if (inFlight - 1 <= this.probeLimit) this.beginMeasure(now, inFlight - 1, 0)
      else this.checkProbe(now, inFlight - 1)
      return
    }
    if (this.phase === 'probe-measure') {
      if (startedAt < this.probeStartedAt) {
        if (this.oldInFlight > 0) this.oldInFlight--
        if (this.stuckAllowance > this.oldInFlight) this.setStuckAllowance(this.oldInFlight)
        this.checkProbe(now, inFlight - 1)
        return
      }
      this.lastProgressAt = now
      this.samples.add(serviceMs, inFlight)
      if (this.samples.count >= PROBE_MIN_SAMPLES || this.probeSettled()) this.finishProbe(now)
      else this.checkProbe(now, inFlight - 1)
      return
    }
    this.samples.add(serviceMs, inFlight, startedAt < this.growthFrom)
    if (now < this.nextUpdateAt || this.samples.count < MIN_SAMPLES_PER_UPDATE) return
    this.update(now)
  }

  onBlocked(now: number, inFlight: number): void {
    if (this.phase !== 'normal') {
      this.checkProbe(now, inFlight)
      return
    }
    if (!this.blocked && this.light) {
      // The limit binds after an interval that used at most half of it: load just rose past it.
      // Requests that started before now ran with less queued than the limit now lets in, and their
      // times do not say it can grow. Judged on them, the first interval of overload (its median not
      // yet caught up with the queue) grew the limit the warm-up left, 18 for a pool of 4, to 31-41,
      // and what that let in waited in the pool for 50-100 ms: each run's worst latencies. Not after
      // an interval near the limit: a fleet instance whose limit flickers at the edge of use then
      // grew later than its siblings (simulated, five leaving ten at 2×: Jain 0.78 against 0.93).
      this.growthFrom = Math.max(this.growthFrom, now)
      this.samples.markStale()
    }
    this.blocked = true
  }

  /**
   * A probe waits on releases, so it must notice when they stop coming: requests that hold their
   * slot for far longer than the service time are counted as stuck and get slots of their own, and a
   * probe that still has not finished after a bound is given up (the baseline stays as it was).
   */
  private checkProbe(now: number, inFlight: number): void {
    const serviceMs = Number.isFinite(this.minRtt) ? Math.max(this.minRtt, this.lastRtt) : this.lastRtt
    if (now - this.probeBeganAt >= Math.min(10_000, Math.max(500, 100 * serviceMs))) {
      this.abandonProbe(now)
      return
    }
    // A few service times without a release: short work would have ended (CoDel sheds at 50 ms).
    const stallMs = Math.max(20, 3 * serviceMs)
    if (now - this.lastProgressAt < stallMs) return
    this.lastProgressAt = now
    // Nothing released for a while: what is in flight does not end soon, and gets slots of its own.
    if (this.phase === 'probe-drain') this.beginMeasure(now, inFlight, inFlight)
    else if (this.stuckAllowance < this.oldInFlight) this.setStuckAllowance(this.oldInFlight)
  }

  /**
   * A probe may end early when its samples agree: a downstream whose service time hardly varies needs
   * no twenty of them, and every one taken at the probe's lowered limit costs capacity.
   */
  private probeSettled(): boolean {
    return this.samples.count >= PROBE_FEW_SAMPLES && this.samplesAgree(PROBE_AGREEMENT)
  }

  /** The middle half of the samples within `share` of their median. */
  private samplesAgree(share: number): boolean {
    const low = this.samples.percentile(0.25)
    const high = this.samples.percentile(0.75)
    return high - low <= share * this.samples.percentile(0.5)
  }

  private beginMeasure(now: number, inFlight: number, stuck: number): void {
    const previous = this.value
    this.phase = 'probe-measure'
    this.probeStartedAt = now
    this.lastProgressAt = now
    this.oldInFlight = inFlight
    this.stuckAllowance = stuck
    this.samples.reset()
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  private setStuckAllowance(stuck: number): void {
    const previous = this.value
    this.stuckAllowance = stuck
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  private abandonProbe(now: number): void {
    const previous = this.value
    this.phase = 'normal'
    this.stuckAllowance = 0
    this.samples.reset()
    this.nextUpdateAt = this.onGrid(now, this.updateIntervalMs)
    this.countingSince = now
    this.scheduleRegularProbe(now)
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  stop(): void {}

  private update(now: number): void {
    if (
      this.minRtt === Number.POSITIVE_INFINITY &&
      this.stalledIntervals < MAX_STALLED_FIRST_INTERVALS &&
      this.loopStalledAt() >= this.countingSince
    ) {
      // The first baseline is not taken from an interval in which our own event loop stalled: every
      // request in flight then waited for the stall, not for the downstream. A fresh process's first
      // requests compile code as they go (Koa's first here: 40-60 ms for a 10 ms query), and a first
      // baseline of 38-65 ms made every later interval look fast: the limit doubled each one (10 to 97
      // in 400 ms). The next interval is measured instead; after a second of stalls, whatever comes.
      this.stalledIntervals++
      this.samples.reset()
      this.nextUpdateAt = this.onGrid(now, this.updateIntervalMs)
      this.countingSince = now
      this.blocked = false
      return
    }
    const rtt = this.samples.percentile(this.percentile)
    // After the stall check: an interval the loop stalled in is passed over, shared baseline or not
    // (judged against the fleet's 10 ms, a cold joiner's 40-60 ms compile stalls halved its limit).
    if (this.minRtt === Number.POSITIVE_INFINITY && this.sharedBaseline !== undefined)
      this.adoptSharedBaseline(now, this.sharedBaseline, rtt)
    const maxInFlight = this.samples.maxInFlight
    const fresh = this.samples.stale <= this.samples.seen / 2
    const completed = this.samples.seen
    const steady = this.minRtt === Number.POSITIVE_INFINITY && this.samplesAgree(FIRST_INTERVAL_AGREEMENT)
    this.samples.reset()
    this.nextUpdateAt = this.onGrid(now, this.updateIntervalMs)
    this.lastRtt = rtt
    // A decaying maximum: one interval that stalled (a busy event loop reads answers late) must not
    // make the downstream look narrower than it is (Express at 5× then probed at 1 slot for 321 ms).
    this.throughput = Math.max(completed / Math.max(1, now - this.countingSince), this.throughput * 0.7)
    this.countingSince = now
    this.saturated = this.blocked
    this.blocked = false
    this.light = !this.saturated && maxInFlight < this.limit / 2
    // Only the first interval sets the baseline (below: two exceptions for a cold start); after that
    // only probes move it. The running minimum of interval medians used before is biased low whenever
    // service times vary: with exponential service at half load it fell far below the true median and
    // held the limit at 2 (20-47% of requests shed in simulation, against 0-5% now).
    if (this.minRtt === Number.POSITIVE_INFINITY) {
      this.minRtt = rtt
      // The early first probe is for a baseline measured under load. One measured while nothing
      // waited for a slot, the limit was not reached and the service times agreed is already a
      // no-queue time, and probing it again within a second idled half the pool in every user's
      // first second (a probe at 2 slots for 60-180 ms on real servers, the first second at 59-98%
      // of C). Service times that vary a lot keep the early probe: one interval's median of them is
      // not worth ten seconds of trust.
      if (steady && !this.saturated && maxInFlight < this.limit) this.scheduleRegularProbe(now)
      this.baselineProvisional = true
    } else if (this.baselineProvisional && rtt < this.minRtt * PROVISIONAL_DROP) {
      // Until the first probe, a clearly faster interval replaces a first baseline: code still warming
      // up (past the stalls passed over above) inflates the first intervals, and judged against such a
      // baseline every warm interval looked fast (g = 2), so the limit doubled each one. Queueing only
      // adds to a median, so a lower one is nearer the no-load time; the probe then measures it
      // properly. Only a clear drop: medians of varied service times differ by chance, and following
      // every lower one biased the baseline low (simulated, exponential queries at 0.9×: 8.3% shed on
      // average over twelve seeds; 7.1% with this rule, 7.3% without it).
      this.minRtt = rtt
    }

    const previous = this.value
    const gradient = clamp(((1 + this.tolerance) * this.minRtt) / rtt, 0.5, 2)
    let next = gradient * this.limit + Math.sqrt(gradient * this.limit)
    // Growing a limit nobody uses would leave it meaningless when load arrives: only grow when used.
    if (next > this.limit && (maxInFlight < this.limit / 2 || !fresh)) next = this.limit
    this.limit = clamp(next, this.minLimit, this.maxLimit)

    if (now >= this.nextProbeAt) this.startProbe(now)
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  /**
   * A first baseline from the fleet's, when it knows one: this instance's first service times ran on
   * the queue its siblings keep (24-25 ms for 10 ms queries, simulated), and judged against those it
   * took the pool from them. Trusted as a probed baseline (no early probe: one off the fleet's
   * schedule measures the same queue); the next probe is the fleet's next common one.
   */
  private adoptSharedBaseline(now: number, shared: SharedBaseline, rtt: number): void {
    let fleetMs: unknown
    try {
      fleetMs = shared.current()
    } catch {
      return
    }
    ignoreRejection(fleetMs)
    // A fleet's no-load time far above what this instance's requests take is not this instance's
    // downstream (a key shared by mistake, a unit slip): judged against it, the limit would double
    // every interval until the next probe.
    if (typeof fleetMs !== 'number' || !Number.isFinite(fleetMs) || fleetMs <= 0) return
    if (fleetMs > FLEET_BASELINE_MAX_RATIO * Math.max(rtt, MIN_SERVICE_MS)) return
    this.minRtt = Math.max(fleetMs, MIN_SERVICE_MS)
    this.baselineProvisional = false
    this.nextProbeAt = this.onGrid(now, this.probeIntervalMs)
    this.repeatOf = 'none'
  }

  private startProbe(now: number): void {
    // The downstream's concurrency with nothing queued, by Little's law: completions per ms times the
    // no-queue time. Not L · minRTT / RTT: the last interval's RTT may come from requests that ran at
    // far fewer than L in flight (just after a probe, say), and a probe sized from it measured
    // queueing (probe limit 15 for a pool of 4: the baseline tripled and the limit with it).
    // Below capacity (no request waited for a slot) completions only say how much was asked: there
    // the latency estimate stands alone.
    const byRtt = (this.limit * this.minRtt) / this.lastRtt
    const noQueueConcurrency = this.saturated ? Math.min(byRtt, this.throughput * this.minRtt) : byRtt
    const share = this.baselineProvisional && this.saturated ? FIRST_PROBE_SHARE : PROBE_SHARE
    this.probeLimit = clamp(
      Math.floor(share * Math.min(this.limit, noQueueConcurrency)),
      this.minLimit,
      this.maxLimit,
    )
    // ... and under overload never more than the downstream takes at once, minLimit or not: a pool of
    // one connection probed at 2 measured one query waiting behind another, doubled the baseline and
    // held the limit at 15 for 6-7 s after the pool came back to 4 (it settles at 9).
    if (this.saturated)
      this.probeLimit = Math.min(this.probeLimit, Math.max(1, Math.round(this.throughput * this.minRtt)))
    this.phase = 'probe-drain'
    this.probeStartedAt = now
    this.probeBeganAt = now
    this.lastProgressAt = now
    this.stuckAllowance = 0
  }

  /**
   * The probe's percentile of its samples, or of its earlier half when the later half ran clearly
   * slower: the downstream got busier mid-probe (see BUSIER_MIN_HALF). Probes keep fewer samples than
   * the reservoir holds, so the samples are in the order they completed.
   */
  private probeMeasurement(): number {
    const count = this.samples.count
    const half = count >> 1
    if (half >= BUSIER_MIN_HALF) {
      const low = this.samples.percentile(0.25, 0, half)
      const high = this.samples.percentile(0.75, 0, half)
      if (this.samples.percentile(0.5, half, count) > high + (high - low))
        return this.samples.percentile(this.percentile, 0, half)
    }
    return this.samples.percentile(this.percentile)
  }

  private finishProbe(now: number): void {
    const measured = this.probeMeasurement()
    this.samples.reset()
    const previous = this.value
    const improved = measured < this.minRtt * BASELINE_DROP
    const raised = measured > this.minRtt * BASELINE_RISE && this.repeatOf === 'none'
    // A probe far from the baseline replaces it: the downstream itself became slower or faster (or
    // the first baseline was measured under load). One within a quarter of it measured the same
    // downstream, and the two are averaged: a median of 20 varied service times is off by a few
    // percent either way, and the gradient, fed one round-trip time shared by a fleet, turns baselines
    // a few percent apart into limits twice apart (simulated, ten instances at 10×: Jain's index
    // 0.81-0.95 over eight seeds when each probe replaced the baseline; 0.92-0.98 averaged). A repeat
    // under overload falls off the fleet's schedule and ran while any siblings sharing the downstream
    // kept it queued, so it never replaces the baseline with a higher one: raising it on their
    // queueing made that instance take the pool from the others (simulated, 20 instances at 5×:
    // Jain's index 0.25, Σ limits 6.6 P). A repeat of a probe that lowered it may still average one
    // within a quarter of it (keeping only the lower of two noisy medians biased that instance's
    // baseline, and its share, low); a repeat of one that raised it only lowers it, since the raise
    // may have been the siblings' queueing already (averaging more of it in left a fleet whose
    // joiners had left at Jain 0.70 for six seconds; 0.96 without).
    if (this.baselineProvisional || improved || raised) this.minRtt = measured
    else if (
      this.repeatOf === 'none' ||
      measured <= this.minRtt * (this.repeatOf === 'raise' ? 1 : BASELINE_RISE)
    )
      this.minRtt = (this.minRtt + measured) / 2
    this.baselineProvisional = false
    if (this.sharedBaseline !== undefined) {
      try {
        // Typed void, but an async publish type-checks too: its rejection must not go unhandled.
        ignoreRejection(this.sharedBaseline.publish(this.minRtt))
      } catch {
        // A share that fails is the share's to report; the limit goes on with its own baseline.
      }
    }
    this.phase = 'normal'
    this.stuckAllowance = 0
    this.nextUpdateAt = this.onGrid(now, this.updateIntervalMs)
    this.growthFrom = now + 2 * measured
    this.countingSince = now
    // A big drop is checked again at once (a cold start under overload converges in a few probes); a
    // big rise within about a second, since a probe that fell on a stalled event loop measured the
    // stall, and an inflated baseline would hold the limit high until the next probe. Repeats fall on
    // a grid of their own, so the instances of a fleet whose probes all improved repeat together.
    // Tried: always repeating the first probe under overload, and a regular probe at the next grid
    // point however soon (for a fleet started together, and for joiners). Simulated 50 instances at
    // 10× went from Jain 0.37 to 0.90, but a single server on the short tier lost 0.3-0.7 points of C
    // at 2× and 5× to the extra probes; left out.
    if (improved) this.nextProbeAt = this.onGrid(now, Math.min(REPEAT_GRID_MS, this.probeIntervalMs))
    else if (raised) this.nextProbeAt = this.onGrid(now + 750, Math.min(500, this.probeIntervalMs))
    else this.scheduleRegularProbe(now)
    this.repeatOf = !this.saturated ? 'none' : improved ? 'drop' : raised ? 'raise' : 'none'
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  /**
   * The next probe on the fleet-wide schedule: ¾ of an interval to 1¾ from now (no sooner than the
   * jittered schedule before it allowed: a consumer whose prefetch followed the limit sheds what it
   * already holds when a probe lowers the limit, and probes half an interval apart did so), at a
   * multiple of the interval in Unix time, so every instance whose clock is right probes at the same
   * moment and the downstream they share is drained when each measures it.
   */
  private scheduleRegularProbe(now: number): void {
    this.nextProbeAt = this.onGrid(now + this.probeIntervalMs * 0.75, this.probeIntervalMs)
    this.repeatOf = 'none'
  }

  /**
   * The first multiple of `periodMs` in Unix time after `after`, in the clock's time. Updates fall on
   * this grid too, so a fleet's instances, whenever each started, begin a probe at the same update.
   */
  private onGrid(after: number, periodMs: number): number {
    return Math.floor((after + this.epochOffsetMs) / periodMs + 1) * periodMs - this.epochOffsetMs
  }
}

/**
 * Additive increase, multiplicative decrease: +1 per interval while requests finish under the latency
 * target and the limit is in use, × backoffRatio when the interval's p90 is above it. Simple and
 * predictable, but the target must be known; the gradient limit needs no target.
 */
export class AimdLimit implements ConcurrencyLimit {
  private limit: number
  private nextUpdateAt: number
  private readonly samples: IntervalSamples
  private readonly minLimit: number
  private readonly maxLimit: number
  private readonly targetMs: number
  private readonly backoffRatio: number
  private readonly updateIntervalMs: number

  constructor(
    options: AimdLimitOptions,
    now: number,
    random: RandomSource,
    private readonly onChange: LimitChangeListener,
  ) {
    assertKnownKeys('maxConcurrency', options, AIMD_OPTION_KEYS)
    ;({ minLimit: this.minLimit, maxLimit: this.maxLimit, initialLimit: this.limit } = resolveBounds(options))
    if (options.latencyTargetMs === undefined) {
      throw new InvalidOptionError(
        'maxConcurrency.latencyTargetMs',
        'a number above 0 (required for aimd)',
        undefined,
      )
    }
    this.targetMs = numberOption(
      'maxConcurrency.latencyTargetMs',
      options.latencyTargetMs,
      0,
      0,
      Number.POSITIVE_INFINITY,
      true,
    )
    // Open at both ends, which numberOption cannot state: at 1 the limit would never back off.
    const backoffRatio = options.backoffRatio ?? 0.9
    if (typeof backoffRatio !== 'number' || !(backoffRatio > 0.5 && backoffRatio < 1)) {
      throw new InvalidOptionError(
        'maxConcurrency.backoffRatio',
        'a number above 0.5 and below 1',
        options.backoffRatio,
      )
    }
    this.backoffRatio = backoffRatio
    this.updateIntervalMs = numberOption('maxConcurrency.updateIntervalMs', options.updateIntervalMs, 100, 1)
    this.samples = new IntervalSamples(256, random)
    this.nextUpdateAt = now + this.updateIntervalMs
  }

  get value(): number {
    return Math.floor(this.limit)
  }

  onSample(startedAt: number, serviceMs: number, inFlight: number): void {
    if (!Number.isFinite(serviceMs)) return
    const now = startedAt + serviceMs
    this.samples.add(serviceMs, inFlight)
    if (now < this.nextUpdateAt || this.samples.count < MIN_SAMPLES_PER_UPDATE) return
    const p90 = this.samples.percentile(0.9)
    const used = this.samples.maxInFlight >= this.limit / 2
    this.samples.reset()
    this.nextUpdateAt = now + this.updateIntervalMs
    const previous = this.value
    if (p90 > this.targetMs) this.limit = clamp(this.limit * this.backoffRatio, this.minLimit, this.maxLimit)
    else if (used) this.limit = clamp(this.limit + 1, this.minLimit, this.maxLimit)
    if (this.value !== previous) this.onChange(previous, this.value)
  }

  stop(): void {}
}

/** Swallows the rejection of a promise a share returned where nothing waits for it. */
function ignoreRejection(value: unknown): void {
  if (typeof (value as PromiseLike<unknown> | null)?.then === 'function')
    (value as PromiseLike<unknown>).then(undefined, () => {})
}

/** The bounds every adaptive limit shares, checked the same way. */
function resolveBounds(options: { minLimit?: number; maxLimit?: number; initialLimit?: number }) {
  const minLimit = integerOption('maxConcurrency.minLimit', options.minLimit, 2, 1)
  const maxLimit = integerOption('maxConcurrency.maxLimit', options.maxLimit, 1000, minLimit)
  const initialLimit = integerOption(
    'maxConcurrency.initialLimit',
    options.initialLimit,
    Math.min(10, maxLimit),
    minLimit,
    maxLimit,
  )
  return { minLimit, maxLimit, initialLimit }
}

export function resolveLimit(
  option: unknown,
  now: number,
  random: RandomSource,
  onChange: LimitChangeListener,
  epochOffsetMs = 0,
  loopStalledAt: () => number = neverStalled,
): ConcurrencyLimit {
  if (option === undefined || option === 'adaptive')
    return new GradientLimit({}, now, random, onChange, epochOffsetMs, loopStalledAt)
  if (typeof option === 'number') {
    if (Number.isInteger(option) && option >= 1) return new FixedLimit(option)
    throw new InvalidOptionError(
      'maxConcurrency',
      "an integer from 1 and up, 'adaptive' or adaptive-limit options",
      option,
    )
  }
  if (typeof option === 'object' && option !== null && !Array.isArray(option)) {
    const algorithm = (option as { algorithm?: unknown }).algorithm
    if (algorithm === undefined || algorithm === 'gradient') {
      return new GradientLimit(
        option as GradientLimitOptions,
        now,
        random,
        onChange,
        epochOffsetMs,
        loopStalledAt,
      )
    }
    if (algorithm === 'aimd')
      return new AimdLimit(option as unknown as AimdLimitOptions, now, random, onChange)
    throw new InvalidOptionError('maxConcurrency.algorithm', "'gradient' or 'aimd'", algorithm)
  }
  throw new InvalidOptionError(
    'maxConcurrency',
    "an integer from 1 and up, 'adaptive' or adaptive-limit options",
    option,
  )
}
