/**
 * The fleet simulation: N instances, each with its own controller and the default adaptive limit, in
 * front of one shared database pool (P connections, 10 ms per query, callers waiting for a connection
 * in FIFO), all on one manual clock — deterministic, no real time. A balancer sends arrivals round-robin
 * to the instances in the fleet at that moment; instances may join (a cold controller) or leave (its
 * in-flight work finishes, nothing new arrives) and the pool's size may step.
 *
 * What it answers: does the sum of the per-instance limits settle near P (the pool's concurrency), is
 * the pool kept busy (goodput), does every instance get its share (Jain's fairness index), and does
 * the pool stay un-queued when instances join or leave.
 */
import {
  BackpressureController,
  type BackpressureOptions,
  ManualClock,
  MemoryBaselineBoard,
  Permit,
  type Rejection,
  seededRandom,
} from '@backpressure/core'

export interface FleetPhase {
  readonly durationMs: number
  /** Offered load, as a multiple of the pool's capacity at the start (P0 · 1000 / serviceMs). */
  readonly multiple: number
  /** Pool connections during this phase. */
  readonly connections: number
  /** Instances in the fleet during this phase (joiners are new controllers; leavers the last ones). */
  readonly instances: number
  /** Query time during this phase (the database slowing down or speeding up), ms. @default the run's serviceMs */
  readonly queryMs?: number
}

export interface FleetSecond {
  readonly second: number
  readonly instances: number
  readonly connections: number
  /** Requests per second the pool can serve. */
  readonly capacity: number
  /** 2xx within the deadline. */
  readonly servedInTime: number
  readonly served: number
  readonly rejected: number
  /** Mean of the 100 ms samples of Σ limits over the instances in the fleet. */
  readonly sumLimitsMean: number
  readonly sumLimitsMax: number
  /** Mean of the 100 ms samples of Σ in-flight permits. */
  readonly inFlightMean: number
  /** Queries waiting for a connection: mean and max of the 100 ms samples. */
  readonly poolQueueMean: number
  readonly poolQueueMax: number
  /** Longest time a query waited for a connection, ms. */
  readonly poolWaitMaxMs: number
  /** Served in time, per instance index (instances that left or never joined read 0). */
  readonly perInstance: readonly number[]
}

export interface FleetRunOptions {
  readonly serviceMs?: number
  readonly deadlineMs?: number
  readonly seed?: number
  readonly options?: BackpressureOptions
  /**
   * Give the instances' gradient limits one shared baseline (a `MemoryBaselineBoard` on the run's
   * clock, as `RedisSharedBaseline` would be across processes), merged into `options.maxConcurrency`.
   */
  readonly sharedBaseline?: boolean
}

/** A binary min-heap of pool completions by due time (then by order queued). */
class CompletionHeap {
  private readonly at: number[] = []
  private readonly items: (() => void)[] = []

  get size(): number {
    return this.at.length
  }

  peek(): number {
    return this.at[0] ?? Number.POSITIVE_INFINITY
  }

  push(at: number, item: () => void): void {
    this.at.push(at)
    this.items.push(item)
    let i = this.at.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.at[parent]! <= at) break
      this.swap(i, parent)
      i = parent
    }
  }

  pop(): () => void {
    const top = this.items[0]!
    const lastAt = this.at.pop()!
    const lastItem = this.items.pop()!
    if (this.at.length > 0) {
      this.at[0] = lastAt
      this.items[0] = lastItem
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < this.at.length && this.at[l]! < this.at[m]!) m = l
        if (r < this.at.length && this.at[r]! < this.at[m]!) m = r
        if (m === i) break
        this.swap(i, m)
        i = m
      }
    }
    return top
  }

  private swap(a: number, b: number): void {
    const t = this.at[a]!
    this.at[a] = this.at[b]!
    this.at[b] = t
    const u = this.items[a]!
    this.items[a] = this.items[b]!
    this.items[b] = u
  }
}

interface Bucket {
  instances: number
  connections: number
  queryMs: number
  served: number
  inTime: number
  rejected: number
  sumLimits: number[]
  inFlight: number[]
  poolQueue: number[]
  poolWaitMax: number
  perInstance: number[]
}

export async function simulateFleet(
  phases: readonly FleetPhase[],
  { serviceMs = 10, deadlineMs = 1000, seed = 7, options = {}, sharedBaseline = false }: FleetRunOptions = {},
): Promise<FleetSecond[]> {
  const clock = new ManualClock(0)
  const jitter = seededRandom(seed)
  const baseConnections = phases[0]?.connections ?? 1
  const fleet: BackpressureController[] = []
  const board = sharedBaseline ? new MemoryBaselineBoard({ clock }) : undefined
  let made = 0
  const makeController = () =>
    new BackpressureController({
      clock,
      random: seededRandom(seed * 1000 + made++),
      ...options,
      ...(board === undefined ? {} : { maxConcurrency: withMember(options.maxConcurrency, board) }),
    })

  let connections = baseConnections
  let queryMs = serviceMs
  let busy = 0
  const completions = new CompletionHeap()
  // The pool's FIFO of queries waiting for a connection: [queuedAt, run] pairs, read from a head index.
  const waiting: { queuedAt: number; done: () => void }[] = []
  let waitHead = 0

  const buckets: Bucket[] = []
  const bucket = (t: number): Bucket => {
    const i = Math.floor(t / 1000)
    while (buckets.length <= i) {
      buckets.push({
        instances: fleet.length,
        connections,
        queryMs,
        served: 0,
        inTime: 0,
        rejected: 0,
        sumLimits: [],
        inFlight: [],
        poolQueue: [],
        poolWaitMax: 0,
        perInstance: [],
      })
    }
    return buckets[i]!
  }

  const startQueries = () => {
    while (busy < connections && waitHead < waiting.length) {
      const query = waiting[waitHead++]!
      const now = clock.now()
      const b = bucket(now)
      if (now - query.queuedAt > b.poolWaitMax) b.poolWaitMax = now - query.queuedAt
      busy++
      completions.push(now + queryMs * (0.8 + jitter() * 0.4), query.done)
    }
    if (waitHead > 4096 && waitHead * 2 > waiting.length) {
      waiting.splice(0, waitHead)
      waitHead = 0
    }
  }

  const arrive = (index: number) => {
    const controller = fleet[index]!
    const arrivedAt = clock.now()
    const onResult = (result: Permit | Rejection) => {
      if (!(result instanceof Permit)) {
        bucket(clock.now()).rejected++
        return
      }
      waiting.push({
        queuedAt: clock.now(),
        done: () => {
          busy--
          result.release()
          const now = clock.now()
          const b = bucket(now)
          b.served++
          if (now - arrivedAt <= deadlineMs) {
            b.inTime++
            b.perInstance[index] = (b.perInstance[index] ?? 0) + 1
          }
        },
      })
      startQueries()
    }
    const result = controller.admit(0, undefined)
    if (result instanceof Promise) void result.then(onResult)
    else onResult(result)
  }

  // Moves the clock to `t`, finishing every query due on the way, in order; promise callbacks of
  // settled waiters run after each, as on a real event loop.
  const runUntil = async (t: number) => {
    while (completions.peek() <= t) {
      const at = completions.peek()
      clock.advance(at - clock.now())
      completions.pop()()
      startQueries()
      for (let i = 0; i < 4; i++) await Promise.resolve()
    }
    clock.advance(t - clock.now())
    for (let i = 0; i < 4; i++) await Promise.resolve()
  }

  let elapsed = 0
  let turn = 0
  const leaving: BackpressureController[] = []
  for (const phase of phases) {
    connections = phase.connections
    queryMs = phase.queryMs ?? serviceMs
    while (fleet.length < phase.instances) fleet.push(makeController())
    while (fleet.length > phase.instances) {
      const gone = fleet.pop()!
      leaving.push(gone)
      void gone.close()
    }
    startQueries()
    const gap = 1000 / (phase.multiple * baseConnections * (1000 / serviceMs))
    const end = elapsed + phase.durationMs
    let next = elapsed
    let nextSample = Math.ceil(elapsed / 100) * 100
    while (next < end) {
      await runUntil(next)
      while (nextSample <= next) {
        const b = bucket(nextSample)
        let limits = 0
        let inFlight = 0
        for (const c of fleet) {
          limits += c.limit
          inFlight += c.inFlight
        }
        for (const c of leaving) inFlight += c.inFlight
        b.sumLimits.push(limits)
        b.inFlight.push(inFlight)
        b.poolQueue.push(waiting.length - waitHead)
        nextSample += 100
      }
      arrive(turn++ % fleet.length)
      next += gap
    }
    elapsed = end
  }
  await runUntil(elapsed + 2000)

  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length)
  return buckets.slice(0, Math.ceil(elapsed / 1000)).map((b, second) => ({
    second,
    instances: b.instances,
    connections: b.connections,
    capacity: (b.connections * 1000) / b.queryMs,
    servedInTime: b.inTime,
    served: b.served,
    rejected: b.rejected,
    sumLimitsMean: mean(b.sumLimits),
    sumLimitsMax: Math.max(0, ...b.sumLimits),
    inFlightMean: mean(b.inFlight),
    poolQueueMean: mean(b.poolQueue),
    poolQueueMax: Math.max(0, ...b.poolQueue),
    poolWaitMaxMs: b.poolWaitMax,
    perInstance: Array.from({ length: b.instances }, (_, i) => b.perInstance[i] ?? 0),
  }))
}

/** `maxConcurrency` (the gradient limit's options) with a member of `board` as its shared baseline. */
function withMember(limit: BackpressureOptions['maxConcurrency'], board: MemoryBaselineBoard) {
  if (
    limit !== undefined &&
    limit !== 'adaptive' &&
    (typeof limit !== 'object' || limit.algorithm === 'aimd')
  )
    throw new Error('sharedBaseline: only the gradient limit takes a shared baseline')
  return { ...(typeof limit === 'object' ? limit : {}), sharedBaseline: board.member() }
}

/** Jain's fairness index of `xs`: 1 when all equal, 1/n when one takes everything. */
export function jain(xs: readonly number[]): number {
  const sum = xs.reduce((a, x) => a + x, 0)
  const squares = xs.reduce((a, x) => a + x * x, 0)
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares)
}

export interface FleetWindow {
  /** Goodput as a share of the pool's capacity in force. */
  readonly goodput: number
  /** Mean Σ limits over P. */
  readonly sumLimitsOverP: number
  readonly sumLimitsMax: number
  /** Mean Σ in-flight over P. */
  readonly inFlightOverP: number
  readonly jain: number
  readonly poolQueueMean: number
  readonly poolQueueMax: number
  readonly poolWaitMaxMs: number
}

/** Figures over seconds [from, to) of a run. */
export function fleetWindow(seconds: readonly FleetSecond[], from: number, to: number): FleetWindow {
  const slice = seconds.slice(from, to)
  const sum = (f: (s: FleetSecond) => number) => slice.reduce((a, s) => a + f(s), 0)
  const n = slice[0]?.instances ?? 0
  const perInstance = Array.from({ length: n }, (_, i) =>
    slice.reduce((a, s) => a + (s.perInstance[i] ?? 0), 0),
  )
  return {
    goodput: sum((s) => s.servedInTime) / sum((s) => s.capacity),
    sumLimitsOverP: sum((s) => s.sumLimitsMean) / sum((s) => s.connections),
    sumLimitsMax: Math.max(...slice.map((s) => s.sumLimitsMax)),
    inFlightOverP: sum((s) => s.inFlightMean) / sum((s) => s.connections),
    jain: jain(perInstance),
    poolQueueMean: sum((s) => s.poolQueueMean) / Math.max(1, slice.length),
    poolQueueMax: Math.max(...slice.map((s) => s.poolQueueMax)),
    poolWaitMaxMs: Math.max(...slice.map((s) => s.poolWaitMaxMs)),
  }
}

/** One figure row of the tier: a scenario, a limit, and the window it was read over. */
export interface FleetSimRow {
  readonly scenario: string
  readonly limit: string
  readonly instances: number
  readonly connections: number
  readonly multiple: number
  /** Which seconds of the run, and what happened in them. */
  readonly window: string
  readonly figures: FleetWindow
}

/** Jain's index of one steady fleet over many seeds of the simulation's randomness: one run says little. */
export interface FleetSeedSweep {
  readonly limit: string
  readonly instances: number
  readonly multiple: number
  /** Seconds [from, to) of each 8 s run the index is read over. */
  readonly window: readonly [number, number]
  /** Jain's index per seed, seeds 1, 2, … */
  readonly jains: readonly number[]
}

/**
 * Five instances join a fleet of ten at 8 s and leave at 16 s (24 s in all): per seed, the lowest Jain's
 * index over the windows after the join (8–10, 11–16) and after the leave (16–18, 18–24), and the
 * highest Σ limits / P and pool wait among them.
 */
export interface FleetJoinSweep {
  readonly limit: string
  readonly multiple: number
  readonly windows: readonly (readonly [number, number])[]
  readonly worstJains: readonly number[]
  readonly maxSumLimitsOverP: readonly number[]
  readonly maxPoolWaitMs: readonly number[]
}

export interface FleetSimResults {
  readonly serviceMs: number
  readonly deadlineMs: number
  readonly limits: Record<string, BackpressureOptions>
  readonly rows: FleetSimRow[]
  readonly seedSweeps?: readonly FleetSeedSweep[]
  /** Five instances joining ten and leaving again, over many seeds, with and without a shared baseline. */
  readonly joinSweeps?: readonly FleetJoinSweep[]
  readonly startedAt: string
  readonly durationS: number
  readonly revision?: string
}

/**
 * The limits compared: the default (gradient), and AIMD on a latency target as a reference that sees
 * the shared queue directly (its latency target is 1.5× the query time).
 */
export const FLEET_LIMITS: Record<string, BackpressureOptions> = {
  default: {},
  'aimd 15 ms': { maxConcurrency: { algorithm: 'aimd', latencyTargetMs: 15 } },
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000

function rounded(w: FleetWindow): FleetWindow {
  return Object.fromEntries(Object.entries(w).map(([k, v]) => [k, round3(v)])) as unknown as FleetWindow
}

function logRow(log: (line: string) => void, row: FleetSimRow): void {
  const f = row.figures
  log(
    `  ${row.limit}, ${row.scenario}, N=${row.instances}, P=${row.connections}, ${row.multiple}×, ${row.window}: goodput ${(f.goodput * 100).toFixed(1)}%, Σlimits ${f.sumLimitsOverP}×P (max ${f.sumLimitsMax}), in flight ${f.inFlightOverP}×P, Jain ${f.jain}, pool queue mean ${f.poolQueueMean} max ${f.poolQueueMax}, pool wait max ${f.poolWaitMaxMs} ms`,
  )
}

/** Five instances join a fleet of ten at 2× for `phaseS` seconds, then leave: one row per window. */
async function churnRows(
  push: (row: Omit<FleetSimRow, 'limit'>) => void,
  run: FleetRunOptions,
  phaseS: number,
): Promise<void> {
  const n = 10
  const P = 4 * n
  const churn = await simulateFleet(
    [
      { durationMs: phaseS * 1000, multiple: 2, connections: P, instances: n },
      { durationMs: phaseS * 1000, multiple: 2, connections: P, instances: n + 5 },
      { durationMs: phaseS * 1000, multiple: 2, connections: P, instances: n },
    ],
    run,
  )
  const churnWindows: [string, number, number, number][] = [
    [`10 instances, s 3–${phaseS}`, 3, phaseS, n],
    [`5 join, s ${phaseS}–${phaseS + 2}`, phaseS, phaseS + 2, n + 5],
    [`15 instances, s ${phaseS + 2}–${2 * phaseS}`, phaseS + 2, 2 * phaseS, n + 5],
    [`5 leave, s ${2 * phaseS}–${2 * phaseS + 2}`, 2 * phaseS, 2 * phaseS + 2, n],
    [`10 instances, s ${2 * phaseS + 2}–${3 * phaseS}`, 2 * phaseS + 2, 3 * phaseS, n],
  ]
  for (const [window, from, to, instances] of churnWindows) {
    push({
      scenario: 'join / leave',
      instances,
      connections: P,
      multiple: 2,
      window,
      figures: fleetWindow(churn, from, to),
    })
  }
}

/**
 * The tier: N = 2, 10, 50 in steady overload (2× and 10×), the pool halving and recovering under a
 * fleet of 10, and 5 instances joining a fleet of 10 and leaving again; for each limit.
 */
export async function runFleetSim({
  quick = false,
  revision,
  log = console.log,
}: {
  quick?: boolean
  revision?: string
  log?: (line: string) => void
} = {}): Promise<FleetSimResults> {
  const began = performance.now()
  const startedAt = new Date().toISOString()
  const rows: FleetSimRow[] = []
  const steadyS = quick ? 6 : 10
  const phaseS = quick ? 5 : 8
  const pusher = (limit: string) => (row: Omit<FleetSimRow, 'limit'>) => {
    const full = { ...row, limit, figures: rounded(row.figures) }
    rows.push(full)
    logRow(log, full)
  }
  for (const [limit, options] of Object.entries(FLEET_LIMITS)) {
    const push = pusher(limit)
    for (const n of [2, 10, 50]) {
      for (const multiple of [2, 10]) {
        const P = 4 * n
        const seconds = await simulateFleet(
          [{ durationMs: steadyS * 1000, multiple, connections: P, instances: n }],
          { options },
        )
        push({
          scenario: 'steady',
          instances: n,
          connections: P,
          multiple,
          window: `s 3–${steadyS}`,
          figures: fleetWindow(seconds, 3, steadyS),
        })
      }
    }
    const n = 10
    const P = 4 * n
    const step = await simulateFleet(
      [
        { durationMs: phaseS * 1000, multiple: 2, connections: P, instances: n },
        { durationMs: phaseS * 1000, multiple: 2, connections: P / 2, instances: n },
        { durationMs: phaseS * 1000, multiple: 2, connections: P, instances: n },
      ],
      { options },
    )
    const windows: [string, number, number][] = [
      [`pool ${P}, s 3–${phaseS}`, 3, phaseS],
      [`pool halved to ${P / 2}, s ${phaseS}–${phaseS + 2}`, phaseS, phaseS + 2],
      [`pool ${P / 2}, s ${phaseS + 2}–${2 * phaseS}`, phaseS + 2, 2 * phaseS],
      [`pool back to ${P}, s ${2 * phaseS}–${2 * phaseS + 2}`, 2 * phaseS, 2 * phaseS + 2],
      [`pool ${P}, s ${2 * phaseS + 2}–${3 * phaseS}`, 2 * phaseS + 2, 3 * phaseS],
    ]
    for (const [window, from, to] of windows) {
      push({
        scenario: 'capacity step',
        instances: n,
        connections: P,
        multiple: 2,
        window,
        figures: fleetWindow(step, from, to),
      })
    }
    await churnRows(push, { options }, phaseS)
  }
  // A joiner's first baseline, measured on the queue its siblings keep, lets it take the pool; with
  // the fleet's baseline shared (opt-in: RedisSharedBaseline across processes) it starts from that.
  await churnRows(pusher('default, shared baseline'), { sharedBaseline: true }, phaseS)
  // The default limit's fairness over many seeds: each run's index rests on a few probes' medians.
  const seedSweeps: FleetSeedSweep[] = []
  const seeds = quick ? 8 : 24
  for (const [instances, multiple] of [
    [2, 2],
    [2, 10],
    [10, 2],
    [10, 10],
    [50, 2],
    [50, 10],
  ] as const) {
    const jains: number[] = []
    for (let seed = 1; seed <= seeds; seed++) {
      const seconds = await simulateFleet(
        [{ durationMs: 8000, multiple, connections: 4 * instances, instances }],
        { seed },
      )
      jains.push(round3(fleetWindow(seconds, 3, 8).jain))
    }
    seedSweeps.push({ limit: 'default', instances, multiple, window: [3, 8], jains })
    log(
      `  default, steady, N=${instances}, ${multiple}×, seeds 1–${seeds}: Jain worst ${Math.min(...jains)}, mean ${round3(jains.reduce((a, j) => a + j, 0) / jains.length)}, below 0.9 in ${jains.filter((j) => j < 0.9).length}`,
    )
  }
  const joinSweeps: FleetJoinSweep[] = []
  const windows = [
    [8, 10],
    [11, 16],
    [16, 18],
    [18, 24],
  ] as const
  for (const [limit, sharedBaseline] of [
    ['default', false],
    ['default, shared baseline', true],
  ] as const) {
    for (const multiple of [2, 10]) {
      const worstJains: number[] = []
      const maxSumLimitsOverP: number[] = []
      const maxPoolWaitMs: number[] = []
      for (let seed = 1; seed <= seeds; seed++) {
        const seconds = await simulateFleet(
          [
            { durationMs: 8000, multiple, connections: 40, instances: 10 },
            { durationMs: 8000, multiple, connections: 40, instances: 15 },
            { durationMs: 8000, multiple, connections: 40, instances: 10 },
          ],
          { seed, sharedBaseline },
        )
        const each = windows.map(([from, to]) => fleetWindow(seconds, from, to))
        worstJains.push(round3(Math.min(...each.map((w) => w.jain))))
        maxSumLimitsOverP.push(round3(Math.max(...each.map((w) => w.sumLimitsOverP))))
        maxPoolWaitMs.push(round3(Math.max(...each.map((w) => w.poolWaitMaxMs))))
      }
      joinSweeps.push({ limit, multiple, windows, worstJains, maxSumLimitsOverP, maxPoolWaitMs })
      log(
        `  ${limit}, five join ten and leave, ${multiple}×, seeds 1–${seeds}: worst window's Jain worst ${Math.min(...worstJains)}, mean ${round3(worstJains.reduce((a, j) => a + j, 0) / worstJains.length)}, below 0.9 in ${worstJains.filter((j) => j < 0.9).length}; Σ limits up to ${Math.max(...maxSumLimitsOverP)}×P; pool waits up to ${Math.max(...maxPoolWaitMs)} ms`,
      )
    }
  }
  return {
    serviceMs: 10,
    deadlineMs: 1000,
    limits: FLEET_LIMITS,
    rows,
    seedSweeps,
    joinSweeps,
    startedAt,
    durationS: Math.round((performance.now() - began) / 100) / 10,
    ...(revision === undefined ? {} : { revision }),
  }
}
