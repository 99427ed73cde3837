import {
  BackpressureController,
  type BackpressureOptions,
  ManualClock,
  Permit,
  type Rejection,
  seededRandom,
} from '../src/index.js'

/**
 * A discrete-event simulation on the manual clock: open-loop arrivals at a fixed rate into a
 * controller in front of a downstream pool of `connections` (each query `serviceMs`, jittered ±20% or ±`serviceJitter`,
 * excess callers waiting in the pool's own unbounded FIFO, as pg-pool does). No real time passes.
 */
export interface Phase {
  readonly durationMs: number
  readonly ratePerSecond: number
  readonly connections: number
}

export interface SecondReport {
  readonly second: number
  readonly capacity: number
  readonly served: number
  readonly servedInTime: number
  readonly rejected: number
  readonly p99Ms: number
  readonly limitMean: number
  readonly limitCv: number
  readonly limits: readonly number[]
  readonly latencies: readonly number[]
}

export async function simulate(
  phases: readonly Phase[],
  options: BackpressureOptions = {},
  { serviceMs = 10, deadlineMs = 1000, seed = 42, longLived = 0, serviceJitter = 0.2 } = {},
): Promise<{ seconds: SecondReport[]; controller: BackpressureController; servedPer100Ms: number[] }> {
  const clock = new ManualClock(0)
  const random = seededRandom(seed)
  const jitter = seededRandom(seed + 1)
  const controller = new BackpressureController({ clock, random, ...options })
  let connections = phases[0]?.connections ?? 1
  let busy = 0
  const poolQueue: (() => void)[] = []
  let poolHead = 0

  const runQuery = (done: () => void) => {
    busy++
    clock.setTimeout(
      () => {
        busy--
        done()
        pump()
      },
      serviceMs * (1 - serviceJitter + jitter() * 2 * serviceJitter),
    )
  }
  const pump = () => {
    while (busy < connections && poolHead < poolQueue.length) runQuery(poolQueue[poolHead++]!)
  }

  interface Bucket {
    served: number
    inTime: number
    rejected: number
    latencies: number[]
    limits: number[]
    capacity: number
  }
  const buckets: Bucket[] = []
  const servedPer100Ms: number[] = []
  const bucket = (t: number) => {
    const i = Math.floor(t / 1000)
    while (buckets.length <= i) {
      buckets.push({
        served: 0,
        inTime: 0,
        rejected: 0,
        latencies: [],
        limits: [],
        capacity: (connections * 1000) / serviceMs,
      })
    }
    return buckets[i]!
  }

  const arrive = () => {
    const arrivedAt = clock.now()
    const onResult = (result: Permit | Rejection) => {
      if (!(result instanceof Permit)) {
        bucket(clock.now()).rejected++
        return
      }
      poolQueue.push(() => {
        result.release()
        const now = clock.now()
        const b = bucket(now)
        b.served++
        const tenth = Math.floor(now / 100)
        while (servedPer100Ms.length <= tenth) servedPer100Ms.push(0)
        servedPer100Ms[tenth]!++
        const latency = now - arrivedAt
        b.latencies.push(latency)
        if (latency <= deadlineMs) b.inTime++
      })
      pump()
    }
    const result = controller.admit(0, undefined)
    if (result instanceof Promise) void result.then(onResult)
    else onResult(result)
  }

  // Requests that hold their slot for the whole run without touching the pool (SSE, long polls).
  const held: Permit[] = []
  for (let i = 0; i < longLived; i++) {
    const result = controller.admit(0, undefined)
    if (result instanceof Permit) held.push(result)
  }

  let elapsed = 0
  for (const phase of phases) {
    connections = phase.connections
    pump()
    const gap = 1000 / phase.ratePerSecond
    const end = elapsed + phase.durationMs
    let next = elapsed
    while (next < end) {
      clock.advance(next - clock.now())
      arrive()
      // Promise callbacks of settled waiters run between arrivals, as on a real event loop.
      for (let i = 0; i < 4; i++) await Promise.resolve()
      if (Math.floor(next / 100) !== Math.floor((next + gap) / 100))
        bucket(next).limits.push(controller.limit)
      next += gap
    }
    elapsed = end
  }
  clock.advance(2000)
  for (const permit of held) permit.release()

  const seconds = buckets.map((b, second) => {
    const sorted = [...b.latencies].sort((x, y) => x - y)
    const mean = b.limits.reduce((a, x) => a + x, 0) / Math.max(1, b.limits.length)
    const sd = Math.sqrt(b.limits.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, b.limits.length))
    return {
      second,
      capacity: b.capacity,
      served: b.served,
      servedInTime: b.inTime,
      rejected: b.rejected,
      p99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
      limitMean: mean,
      limitCv: mean === 0 ? 0 : sd / mean,
      limits: b.limits,
      latencies: b.latencies,
    }
  })
  return { seconds, controller, servedPer100Ms }
}
