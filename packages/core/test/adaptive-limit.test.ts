import { describe, expect, it } from 'vitest'
import {
  BackpressureController,
  GradientLimit,
  type GradientLimitOptions,
  ManualClock,
  Permit,
  Rejection,
  type SharedBaseline,
  seededRandom,
} from '../src/index.js'
import { makeController } from './helpers.js'
import { type SecondReport, simulate } from './simulation.js'

const P = 4
const C = P * 100 // 10 ms per query

function phase(seconds: readonly SecondReport[], from: number, to: number) {
  const slice = seconds.slice(from, to)
  const latencies = slice.flatMap((s) => s.latencies).sort((a, b) => a - b)
  const limits = slice.flatMap((s) => s.limits)
  const mean = limits.reduce((a, b) => a + b, 0) / limits.length
  const sd = Math.sqrt(limits.reduce((a, b) => a + (b - mean) ** 2, 0) / limits.length)
  return {
    goodput: slice.reduce((a, s) => a + s.servedInTime, 0) / slice.reduce((a, s) => a + s.capacity, 0),
    p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    limitMean: mean,
    limitCv: sd / mean,
    limitMax: Math.max(...limits),
    rejected: slice.reduce((a, s) => a + s.rejected, 0),
  }
}

/**
 * A downstream pool whose capacity moves under 3× load, simulated on the manual clock: the default
 * controller (gradient limit + CoDel) must find the capacity it was never told, follow it down and
 * back up within about a second, stay steady in between, and never stay pinned high.
 */
describe('adaptive limit against a simulated downstream', () => {
  it.each([
    ['halves', 2],
    ['drops to a quarter', 1],
  ])(
    'capacity %s at t=10 s and recovers at t=20 s',
    async (_name, reduced) => {
      const { seconds } = await simulate([
        { durationMs: 10_000, ratePerSecond: 3 * C, connections: P },
        { durationMs: 10_000, ratePerSecond: 3 * C, connections: reduced },
        { durationMs: 10_000, ratePerSecond: 3 * C, connections: P },
      ])
      const before = phase(seconds, 2, 10)
      const during = phase(seconds, 11, 20)
      const after = phase(seconds, 21, 30)
      for (const p of [before, during, after]) {
        expect(p.goodput).toBeGreaterThan(0.97)
        // Settled near (1 + b) times the downstream's concurrency: never pinned near the maximum.
        expect(p.limitMax).toBeLessThan(30)
      }
      expect(before.limitMean).toBeGreaterThanOrEqual(P)
      expect(before.limitMean).toBeLessThan(3 * P)
      expect(during.limitMean).toBeGreaterThanOrEqual(reduced)
      expect(during.limitMean).toBeLessThan(before.limitMean)
      expect(after.limitMean).toBeGreaterThan(during.limitMean)
      // Accepted requests stay fast: a few service times, not the queue of an unprotected server.
      expect(before.p99).toBeLessThan(60)
      expect(after.p99).toBeLessThan(60)
      // Steady, not oscillating, while capacity holds.
      expect(before.limitCv).toBeLessThan(0.15)
      // Within a second of each step the limit has moved to its new level.
      expect(seconds[10]!.limits.at(-1)!).toBeLessThan(before.limitMean)
      expect(seconds[20]!.limits.at(-1)!).toBeGreaterThan(during.limitMean)
      expect(seconds[10]!.servedInTime).toBeGreaterThan(0.9 * seconds[10]!.capacity)
      expect(seconds[20]!.servedInTime).toBeGreaterThan(0.85 * seconds[20]!.capacity)
    },
    60_000,
  )

  it.each([0.5, 0.9])(
    'rejects nothing at %s× capacity',
    async (load) => {
      const { seconds } = await simulate([{ durationMs: 10_000, ratePerSecond: load * C, connections: P }])
      const p = phase(seconds, 0, 10)
      expect(p.rejected).toBe(0)
      expect(p.goodput).toBeGreaterThan(load * 0.98)
    },
    60_000,
  )

  it.each([
    [1, 2],
    [2, 4],
  ])(
    'is not wedged by %i request(s) holding a slot for the whole minute (SSE), pool of %i at 2×: goodput ≥ 95%',
    async (longLived, connections) => {
      const capacity = (connections * 1000) / 10
      const { seconds } = await simulate(
        [{ durationMs: 60_000, ratePerSecond: 2 * capacity, connections }],
        {},
        { longLived },
      )
      const p = phase(seconds, 2, 60)
      expect(p.goodput).toBeGreaterThan(0.95)
      // Every second serves: a probe that waited on the long-lived request would serve nothing for good.
      for (const second of seconds.slice(1, 60)) expect(second.servedInTime).toBeGreaterThan(0.5 * capacity)
    },
    60_000,
  )

  it('at 10× keeps goodput at capacity and sheds the rest', async () => {
    const { seconds } = await simulate([{ durationMs: 8000, ratePerSecond: 10 * C, connections: P }])
    const p = phase(seconds, 2, 8)
    expect(p.goodput).toBeGreaterThan(0.98)
    expect(p.p99).toBeLessThan(60)
    expect(p.rejected).toBeGreaterThan(6 * 8 * C * 0.8)
  }, 60_000)
})

/**
 * Real queries vary: Poisson arrivals and exponential service times on a pool of 4, below capacity.
 * Bursts queue in the pool now and then; that is not overload, and the default must not shed for it.
 */
async function poissonRejectedShare(load: number, seed: number): Promise<number> {
  const clock = new ManualClock(0)
  const random = seededRandom(seed)
  const controller = new BackpressureController({ clock, random: seededRandom(seed + 7) })
  const exponential = (mean: number) => -Math.log(1 - random()) * mean
  const meanMs = 20
  let busy = 0
  const poolQueue: (() => void)[] = []
  const query = (done: () => void) => {
    const run = () => {
      busy++
      clock.setTimeout(() => {
        busy--
        done()
        poolQueue.shift()?.()
      }, exponential(meanMs))
    }
    if (busy < P) run()
    else poolQueue.push(run)
  }
  let rejected = 0
  let total = 0
  const settle = (result: Permit | Rejection) => {
    if (result instanceof Rejection) rejected++
    else query(() => result.release())
  }
  const ratePerMs = (load * P) / meanMs
  for (let t = 0; t < 15_000; ) {
    const gap = exponential(1 / ratePerMs)
    clock.advance(gap)
    t += gap
    total++
    const result = controller.admit(0)
    if (result instanceof Promise) void result.then(settle)
    else settle(result)
    await Promise.resolve()
    await Promise.resolve()
  }
  return rejected / total
}

describe('what re-measuring the baseline costs', () => {
  // A probe halves the limit below the downstream's own concurrency for its length: that share of the
  // pool idles. With 20 samples every time, it idled half the pool for ten service times (measured on
  // real servers: 20-30 requests of capacity a probe, about 1% of an 8 s run at 2×). A steady
  // downstream (the benchmark's database answers on time) agrees within 8 samples.
  it.each([2, 5])(
    'at %d×, a steady downstream: no 100 ms serves less than 70% of capacity, probes included',
    async (multiple) => {
      for (let seed = 1; seed <= 10; seed++) {
        const { servedPer100Ms, seconds } = await simulate(
          [
            { durationMs: 400, ratePerSecond: C / 2, connections: P },
            { durationMs: 8000, ratePerSecond: C * multiple, connections: P },
          ],
          {},
          { seed, serviceJitter: 0 },
        )
        // After the first 300 ms of overload (the limit settling from its start), every 100 ms window.
        const windows = servedPer100Ms.slice(7, 83)
        // 20 samples at half the pool: 60% (24 of 40); 8 that agree: 75-80%.
        expect(Math.min(...windows), `seed ${seed}`).toBeGreaterThanOrEqual((C / 10) * 0.7)
        const served = phase(seconds, 0, 9)
        expect(served.goodput, `seed ${seed}`).toBeGreaterThanOrEqual(
          0.99 * ((C * 8 + (C / 2) * 0.4) / (C * 9)),
        )
      }
    },
  )
})

describe('a pool of one connection', () => {
  // A probe admits half the downstream's concurrency but, by default, never fewer than minLimit (2):
  // against one connection that measured one query waiting behind another as the baseline, doubled it,
  // and the limit settled at 4.7 instead of 2.7 (and at 15 instead of 9 once the pool came back).
  it('keeps its no-queue baseline through probes at 3× for 20 s', async () => {
    const { seconds } = await simulate(
      [
        { durationMs: 3000, ratePerSecond: 3 * C, connections: P },
        { durationMs: 20_000, ratePerSecond: 3 * C, connections: 1 },
      ],
      {},
      { serviceJitter: 0 },
    )
    const during = phase(seconds, 6, 23)
    expect(during.limitMean).toBeLessThan(3.5)
    expect(during.goodput).toBeGreaterThan(0.97)
  })
})

describe('the first second', () => {
  // The first probe comes about a second after start, for a baseline measured under load. A baseline
  // first measured below capacity, with service times that agree, is already a no-queue time: probing
  // it again idled half the pool in every user's first second (real servers: 2 slots for 60-180 ms).
  const run = (serviceJitter: number, firstRate: number) =>
    simulate(
      [
        { durationMs: 400, ratePerSecond: firstRate, connections: P },
        { durationMs: 2600, ratePerSecond: 2 * C, connections: P },
      ],
      {},
      { serviceJitter },
    )

  // A probe at half the pool shows as a 100 ms window that serves well under capacity.
  const worstWindow = (servedPer100Ms: number[]) => Math.min(...servedPer100Ms.slice(6, 30)) / (C / 10)

  it('keeps a steady baseline first measured below capacity: no probe in the first seconds of overload', async () => {
    const { servedPer100Ms } = await run(0, C / 2)
    expect(worstWindow(servedPer100Ms)).toBeGreaterThanOrEqual(0.95)
  })

  it('still probes early when the first baseline was measured under overload, or from varying service times', async () => {
    for (const [jitter, rate] of [
      [0, 3 * C],
      [0.2, C / 2],
    ] as const) {
      const { servedPer100Ms } = await run(jitter, rate)
      expect(worstWindow(servedPer100Ms), `jitter ${jitter}`).toBeLessThan(0.9)
    }
  })
})

describe('adaptive limit with variable service times', () => {
  it.each([0.5, 0.7, 0.9])(
    'sheds almost nothing at %s× capacity with Poisson arrivals and exponential queries',
    async (load) => {
      // The first version shed 11-47% here: its baseline, the running minimum of noisy medians, fell
      // far below the true service time and the limit collapsed to 2. Twelve seeds, since one run's
      // share depends on where its probes fall among the bursts. (Measured over these seeds: 0-4.1% at
      // 0.5×, 0-5.8% at 0.7×, 3.0-14.0% at 0.9×, mean 7.1%, with a first baseline that a clearly faster
      // interval replaces until the first probe; 0.9× mean 7.3% without that, 6.4% when the grid for
      // probes came in, 5.1% with jittered probes before. A burst that stands for more than the 50 ms
      // CoDel interval is still cut at the 5 ms target.)
      const shares: number[] = []
      for (let seed = 1; seed <= 12; seed++) shares.push(await poissonRejectedShare(load, seed))
      for (const share of shares) expect(share).toBeLessThan(0.15)
      expect(shares.reduce((a, b) => a + b, 0) / shares.length).toBeLessThan(0.075)
    },
    60_000,
  )
})

describe('GradientLimit unit behaviour', () => {
  /** A gradient limit created at 0 on a manual clock, nobody listening to its changes. */
  function quietLimit(options: GradientLimitOptions, seed: number, loopStalledAt?: () => number) {
    const clock = new ManualClock(0)
    const limit = new GradientLimit(options, 0, seededRandom(seed), () => {}, 0, loopStalledAt)
    return { clock, limit }
  }

  function feed(limit: GradientLimit, clock: ManualClock, rttMs: number, inFlight: number, count: number) {
    for (let i = 0; i < count; i++) {
      clock.advance(1)
      limit.onSample(clock.now() - rttMs, rttMs, inFlight)
    }
  }

  it('grows while the downstream keeps up and the limit is in use, and not when it is idle', () => {
    const clock = new ManualClock(0)
    const changes: number[] = []
    const limit = new GradientLimit({ initialLimit: 10, probeIntervalMs: 1e6 }, 0, seededRandom(1), (_, l) =>
      changes.push(l),
    )
    feed(limit, clock, 10, 2, 300)
    expect(limit.value).toBe(10)
    feed(limit, clock, 10, 10, 300)
    expect(limit.value).toBeGreaterThan(10)
    expect(changes.length).toBeGreaterThan(0)
  })

  it('does not grow on requests that started before the limit first bound, and grows again on those after', () => {
    // The first interval of overload: its median has not caught up with the queue yet. Judged on it,
    // real servers grew the limit the warm-up left (18 for a pool of 4) to 31-41 at once.
    const run = (blockedAt?: number) => {
      const { clock, limit } = quietLimit({ initialLimit: 10, probeIntervalMs: 1e6 }, 1)
      feed(limit, clock, 10, 2, 100) // the first interval: a baseline of 10 ms, well below the limit
      for (let i = 0; i < 99; i++) {
        clock.advance(1)
        if (clock.now() === blockedAt) limit.onBlocked(clock.now(), 10)
        limit.onSample(clock.now() - 10, 10, 10)
      }
      feed(limit, clock, 10, 10, 2) // the update at 200 ms
      return { clock, limit }
    }
    expect(run().limit.value).toBeGreaterThan(10)
    const { clock, limit } = run(190)
    expect(limit.value).toBe(10)
    feed(limit, clock, 10, 10, 100)
    expect(limit.value).toBeGreaterThan(10)
  })

  it('shrinks by at most half per interval when service time balloons', () => {
    const clock = new ManualClock(0)
    const limit = new GradientLimit(
      { initialLimit: 100, maxLimit: 100, probeIntervalMs: 1e6 },
      0,
      seededRandom(1),
      () => {},
    )
    feed(limit, clock, 10, 100, 100)
    const start = limit.value
    feed(limit, clock, 1000, 100, 101)
    expect(limit.value).toBeGreaterThanOrEqual(Math.floor(start * 0.5))
    expect(limit.value).toBeLessThan(start)
  })

  it('re-measures the baseline with a probe that only counts work started after the drain', () => {
    const clock = new ManualClock(0)
    const changes: [number, number][] = []
    const limit = new GradientLimit({ initialLimit: 20 }, 0, seededRandom(3), (from, to) =>
      changes.push([from, to]),
    )
    // Under load the service time is 50 ms (queueing downstream): the first baseline is inflated.
    let guard = 0
    while (!changes.some(([from, to]) => to < from) && guard++ < 5000) feed(limit, clock, 50, limit.value, 1)
    expect(limit.baselineMs).toBe(50)
    const probeLimit = limit.value
    // Work admitted under the old limit drains; samples of work started before that are ignored.
    feed(limit, clock, 50, probeLimit + 5, 3)
    feed(limit, clock, 50, probeLimit, 1)
    clock.advance(1)
    limit.onSample(clock.now() - 30, 30, 1)
    expect(limit.baselineMs).toBe(50)
    // Below the downstream's concurrency, requests see the bare 10 ms: that is the new baseline. Samples
    // that agree end the probe after 8; it never takes more than 20.
    let taken = 0
    while (limit.baselineMs !== 10 && taken < 20) {
      taken++
      clock.advance(11)
      limit.onSample(clock.now() - 10, 10, 1)
    }
    expect(limit.baselineMs).toBe(10)
    expect(taken).toBe(8)
    expect(limit.value).toBeGreaterThan(probeLimit)
  })

  it('lets a much faster interval replace a first baseline measured cold, until the first probe', () => {
    const { clock, limit } = quietLimit({ initialLimit: 10, probeIntervalMs: 60_000 }, 3)
    // A fresh process: its first requests take 60 ms for 10 ms of downstream work.
    feed(limit, clock, 60, 9, 100)
    expect(limit.baselineMs).toBe(60)
    // Warm, the same work takes 10 ms: measured against 60 ms the limit would double each interval.
    feed(limit, clock, 10, 9, 100)
    expect(limit.baselineMs).toBe(10)
    // A median that is lower by chance (8 ms of varied work) does not move it.
    feed(limit, clock, 8, 9, 100)
    expect(limit.baselineMs).toBe(10)
    expect(clock.now()).toBeLessThan(500)
  })

  it('takes no first baseline from an interval in which its own event loop stalled', () => {
    let stalledAt = Number.NEGATIVE_INFINITY
    const { clock, limit } = quietLimit({ initialLimit: 10, probeIntervalMs: 60_000 }, 3, () => stalledAt)
    // A fresh process compiles code as its first requests run: the loop stalls, each takes 50 ms.
    stalledAt = 40
    feed(limit, clock, 50, 9, 100)
    expect(limit.baselineMs).toBe(Number.POSITIVE_INFINITY)
    expect(limit.value).toBe(10)
    // Warm, nothing stalls: the downstream's own 10 ms.
    feed(limit, clock, 10, 9, 100)
    expect(limit.baselineMs).toBe(10)
  })

  it('still takes a baseline after a second of a loop that never stops stalling', () => {
    const { clock, limit } = quietLimit({ initialLimit: 10, probeIntervalMs: 60_000 }, 3, () => clock.now())
    feed(limit, clock, 30, 9, 900)
    expect(limit.baselineMs).toBe(Number.POSITIVE_INFINITY)
    feed(limit, clock, 30, 9, 300)
    expect(limit.baselineMs).toBe(30)
  })

  it('after the first probe, only probes move the baseline', () => {
    const { clock, limit } = quietLimit({ initialLimit: 10, probeIntervalMs: 1000 }, 3)
    // 30 ms until the first probe (at 1 s) has measured 30 ms too; the next is due at 2 s.
    while (clock.now() < 1500) feed(limit, clock, 30, Math.min(6, limit.value), 1)
    expect(limit.baselineMs).toBe(30)
    feed(limit, clock, 10, 6, 300)
    expect(clock.now()).toBeLessThan(2000)
    expect(limit.baselineMs).toBe(30)
  })

  it('counts a probe drain that releases steadily as progress, not as stuck work', () => {
    // Load jumps just before a probe: 80 requests in flight when it begins, draining one every 2.5 ms,
    // while the last interval measured 10 ms. Counted as stuck after three of those without a probe
    // sample, they all got slots of their own and the probe measured their queueing.
    const { clock, limit } = quietLimit({ initialLimit: 80, maxLimit: 200, probeIntervalMs: 1000 }, 3)
    let guard = 0
    while (limit.value === 80 && guard++ < 10_000) feed(limit, clock, 10, 4, 1)
    const probeLimit = limit.value
    expect(probeLimit).toBeLessThan(80)
    for (let inFlight = 80; inFlight - 1 > probeLimit; inFlight--) {
      clock.advance(2.5)
      limit.onSample(clock.now() - 10, 10, inFlight)
      expect(limit.value).toBe(probeLimit)
    }
  })

  it('probes at half the no-queue estimate, never below minLimit', () => {
    const clock = new ManualClock(0)
    const values: number[] = []
    const limit = new GradientLimit({ initialLimit: 8, minLimit: 3 }, 0, seededRandom(7), (_, to) => {
      values.push(to)
    })
    // Baseline 10 ms, then the downstream slows tenfold: the no-queue estimate falls below one slot,
    // and the probe at ~1 s must still keep minLimit (it went to 1).
    feed(limit, clock, 10, 8, 120)
    while (clock.now() < 3000) feed(limit, clock, 100, limit.value, 1)
    expect(Math.min(...values)).toBe(3)

    const clock2 = new ManualClock(0)
    const drops: [number, number][] = []
    const sized = new GradientLimit({ initialLimit: 12 }, 0, seededRandom(8), (from, to) => {
      if (to < from) drops.push([from, to])
    })
    // A 10 ms baseline at low load, then every request takes twice that: g = 0.75 holds the limit at
    // 12 (0.75 · 12 + √9), and half of the 12 in flight would run without queueing. The probe takes
    // half of those 6 (the share that corrects a baseline inflated up to 2×). The probe comes at the
    // usual interval: a first baseline measured at low load from agreeing samples needs no early one.
    feed(sized, clock2, 10, 1, 120)
    while (drops.length === 0 && clock2.now() < 15_000) feed(sized, clock2, 20, 12, 1)
    expect(drops[0]).toEqual([12, 3])
  })

  it('checks a baseline that a probe raised a lot again within about a second', () => {
    const clock = new ManualClock(0)
    const limit = new GradientLimit(
      { initialLimit: 8, probeIntervalMs: 60_000 },
      0,
      seededRandom(5),
      () => {},
    )
    // A downstream of 4 connections: service takes `base` ms, stretched by queueing beyond 4 in flight.
    const serve = (base: number) => {
      clock.advance(1)
      const inFlight = limit.value
      const rtt = base * Math.max(1, inFlight / 4)
      limit.onSample(clock.now() - rtt, rtt, inFlight)
    }
    for (let t = 0; t < 3000; t++) serve(10)
    expect(limit.baselineMs).toBe(10)
    // A stall (the event loop, say) makes everything 3× slower until a probe has measured it.
    let guard = 0
    while (limit.baselineMs < 30 && guard++ < 100_000) serve(30)
    expect(limit.baselineMs).toBe(30)
    // The stall lasts another half second, long enough for the limit to regrow past the 4 connections.
    for (let t = 0; t < 500; t++) serve(30)
    expect(limit.value).toBeGreaterThan(4)
    // Back to normal: at the limit, requests queue downstream, so interval RTTs bring the baseline only
    // to ~15 ms; the probe that finds 10 again comes within about a second, not 60 s later.
    const startedAt = clock.now()
    guard = 0
    while (limit.baselineMs > 10 && guard++ < 100_000) serve(10)
    expect(limit.baselineMs).toBe(10)
    expect(clock.now() - startedAt).toBeLessThan(1500)
  })

  /** When a limit fed one sample per ms (the downstream always at `rttMs`, the limit in use) starts each probe. */
  function probeStarts(createdAt: number, epochOffsetMs: number, untilMs: number, blocked = false): number[] {
    const clock = new ManualClock(createdAt)
    const starts: number[] = []
    const limit = new GradientLimit(
      { initialLimit: 10, probeIntervalMs: 2000 },
      createdAt,
      seededRandom(3),
      (previous, next) => {
        if (next <= previous / 1.5) starts.push(clock.now())
      },
      epochOffsetMs,
    )
    while (clock.now() < untilMs) {
      clock.advance(1)
      if (blocked) limit.onBlocked(clock.now(), limit.value)
      limit.onSample(clock.now() - 10, 10, limit.value)
    }
    return starts
  }

  it('probes at multiples of the probe interval in Unix time, whenever the instance started', () => {
    // Two instances of a fleet started 777 ms apart, on machines whose clocks agree: they drain and
    // measure the downstream they share at the same moments.
    const early = probeStarts(0, 0, 12_000).filter((t) => t >= 3000)
    const late = probeStarts(777, 0, 12_000).filter((t) => t >= 3000)
    expect(early.length).toBeGreaterThanOrEqual(4)
    expect(late).toEqual(early)
    for (const t of early) expect(t % 2000).toBe(0)
    // The grid is Unix time: a clock whose origin is 500 ms past a multiple probes 500 ms earlier.
    for (const t of probeStarts(0, 500, 12_000).filter((t) => t >= 3000)) expect((t + 500) % 2000).toBe(0)
  })

  /** A limit (probes a minute apart) fed one sample a ms of `base` ms, every arrival finding it full. */
  function saturated(initialBase: number) {
    const clock = new ManualClock(0)
    const limit = new GradientLimit(
      { initialLimit: 8, probeIntervalMs: 60_000 },
      0,
      seededRandom(5),
      () => {},
    )
    const feed = { base: initialBase }
    const serve = () => {
      clock.advance(1)
      limit.onBlocked(clock.now(), limit.value)
      limit.onSample(clock.now() - feed.base, feed.base, limit.value)
    }
    /** Serves at `base` ms until the baseline reads `expected` (a probe has measured it), at most `maxMs`. */
    const untilBaseline = (base: number, expected: number, maxMs: number) => {
      feed.base = base
      for (let t = 0; limit.baselineMs !== expected && t < maxMs; t++) serve()
      expect(limit.baselineMs).toBe(expected)
    }
    /** Serves at `base` ms until the clock reads `until`. */
    const serveUntil = (base: number, until: number) => {
      feed.base = base
      while (clock.now() < until) serve()
    }
    return { clock, limit, serveUntil, untilBaseline }
  }

  it('under overload, a repeated probe may lower the baseline but not raise it', () => {
    // Repeats fall off the fleet's schedule: while a sibling's work queues the shared downstream,
    // a repeat would measure that queueing. Saturated (arrivals blocked), a baseline that a probe
    // lowered a lot is probed again; that probe finding the downstream slower keeps the lower value.
    const { clock, limit, serveUntil, untilBaseline } = saturated(30)
    // The first intervals measure 30 ms (queued) until the early first probe begins, on the 1 s grid;
    // the downstream is really 10 ms when probed.
    serveUntil(30, 1000)
    expect(limit.baselineMs).toBe(30)
    untilBaseline(10, 10, 5000)
    // The repeat that follows finds 25 ms (a sibling's queue): the baseline stays at 10.
    serveUntil(25, clock.now() + 2000)
    expect(limit.baselineMs).toBe(10)
  })

  it('under overload, a repeat of a probe that raised the baseline does not raise it further, even a little', () => {
    // A raise may itself have measured siblings' queueing; a repeat that averaged a little more in
    // each time ratcheted a fleet's instances apart after others had joined and left again.
    const { clock, limit, serveUntil, untilBaseline } = saturated(10)
    serveUntil(10, 1500)
    expect(limit.baselineMs).toBe(10)
    untilBaseline(30, 30, 100_000)
    // The repeat, within about a second, finds 33 ms: within a quarter, but above.
    serveUntil(33, clock.now() + 2000)
    expect(limit.baselineMs).toBe(30)
  })

  /**
   * A limit on a 10 ms downstream whose early first probe has measured 10 ms, fed one sample a ms
   * until its next probe has drained and begun measuring; `sample(rtt)` then feeds that probe one
   * sample of work started after the drain, and `probing()` says whether the probe still runs.
   */
  function atSecondProbe(seed: number) {
    const clock = new ManualClock(0)
    let dropped = false
    const limit = new GradientLimit(
      { initialLimit: 8, maxLimit: 16, probeIntervalMs: 1000 },
      0,
      seededRandom(seed),
      (previous, next) => {
        if (next <= previous / 1.5) dropped = true
      },
    )
    const serve = (rtt: number) => {
      clock.advance(1)
      limit.onSample(clock.now() - rtt, rtt, limit.value)
    }
    while (clock.now() < 1500) serve(10)
    expect(limit.baselineMs).toBe(10)
    dropped = false
    let guard = 0
    while (!dropped && guard++ < 5000) serve(10)
    expect(dropped).toBe(true)
    const probeLimit = limit.value
    serve(10) // in flight is down to the probe's limit: the measurement begins
    clock.advance(50) // work that started before it has ended
    return {
      limit,
      probing: () => limit.value === probeLimit,
      sample: (rtt: number) => {
        clock.advance(1)
        limit.onSample(clock.now() - rtt, rtt, probeLimit)
      },
    }
  }

  it('under overload, sizes its first probe at a quarter of the estimate, later ones at half', () => {
    // The first baseline under overload carries whatever queue there was (a fleet's, too); half of an
    // estimate inflated more than twice still queued, and each instance measured the others.
    const clock = new ManualClock(0)
    const probes: number[] = []
    const limit = new GradientLimit(
      { initialLimit: 16, maxLimit: 16, probeIntervalMs: 2000 },
      0,
      seededRandom(6),
      (previous, next) => {
        if (next <= previous / 1.5) probes.push(next)
      },
    )
    // One completion a ms at 10 ms: 10 in flight at once, and every arrival finds the limit taken.
    while (clock.now() < 5000) {
      clock.advance(1)
      limit.onBlocked(clock.now(), limit.value)
      limit.onSample(clock.now() - 10, 10, limit.value)
    }
    expect(probes.length).toBeGreaterThanOrEqual(2)
    expect(probes[0]).toBe(2) // ¼ of 10
    expect(probes[1]).toBe(5) // ½ of 10
  })

  it('averages a probe within a quarter of the baseline with it, and takes one beyond that whole', () => {
    // Medians of varied service times differ by chance: a fleet's instances, each trusting its own
    // last one, settled at limits twice apart. A real change of the downstream is larger.
    const near = atSecondProbe(3)
    for (let i = 0; i < 20; i++) near.sample(12)
    expect(near.probing()).toBe(false)
    expect(near.limit.baselineMs).toBe(11)
    const far = atSecondProbe(3)
    for (let i = 0; i < 20; i++) far.sample(13)
    expect(far.limit.baselineMs).toBe(13)
  })

  it('keeps the earlier half of a probe whose later half ran far slower: the downstream got busier mid-probe', () => {
    // In a fleet, a sibling whose probe ended first restores its limit while this one still measures.
    const busier = atSecondProbe(4)
    for (let i = 0; i < 10; i++) busier.sample(10)
    for (let i = 0; i < 10; i++) busier.sample(30)
    expect(busier.probing()).toBe(false)
    expect(busier.limit.baselineMs).toBe(10)
    // Samples that vary as much throughout are all kept: the median of the twenty (12), averaged.
    const varied = atSecondProbe(4)
    for (let i = 0; i < 20; i++) varied.sample(i % 2 === 0 ? 10 : 12)
    expect(varied.limit.baselineMs).toBe(11)
  })

  it('ends a probe at 8 samples only when their middle half agrees within 5%', () => {
    // Checked after every sample from the 8th, a looser bound stopped on chance clusters.
    const tight = atSecondProbe(5)
    for (let i = 0; i < 8; i++) tight.sample(i % 2 === 0 ? 10 : 10.3)
    expect(tight.probing()).toBe(false)
    const loose = atSecondProbe(5)
    for (let i = 0; i < 8; i++) loose.sample(i % 2 === 0 ? 10 : 10.8)
    expect(loose.probing()).toBe(true)
    for (let i = 8; i < 20; i++) loose.sample(i % 2 === 0 ? 10 : 10.8)
    expect(loose.probing()).toBe(false)
  })

  describe('a shared baseline (a fleet sharing one downstream)', () => {
    /** A share whose fleet value is `fleetMs`, recording what is published to it. */
    function share(fleetMs: number | undefined) {
      const published: number[] = []
      const shared: SharedBaseline = { current: () => fleetMs, publish: (ms) => published.push(ms) }
      return { shared, published }
    }
    /** A limit created at `createdAt`, probes every 2 s, fed one sample a ms at `rttMs`, every arrival blocked. */
    function joiner(shared: SharedBaseline, createdAt: number, rttMs: number, untilMs: number) {
      const clock = new ManualClock(createdAt)
      const starts: number[] = []
      const limit = new GradientLimit(
        { initialLimit: 10, probeIntervalMs: 2000, sharedBaseline: shared },
        createdAt,
        seededRandom(3),
        (previous, next) => {
          if (next <= previous / 1.5) starts.push(clock.now())
        },
      )
      const baselines: number[] = []
      const limits: number[] = []
      const serve = (until: number, rtt: number) => {
        while (clock.now() < until) {
          clock.advance(1)
          limit.onBlocked(clock.now(), limit.value)
          limit.onSample(clock.now() - rtt, rtt, limit.value)
          baselines.push(limit.baselineMs)
          limits.push(limit.value)
        }
      }
      serve(untilMs, rttMs)
      return { clock, limit, starts, baselines, limits, serve }
    }

    it("an instance joining a queued downstream starts from the fleet's baseline and probes with the fleet", () => {
      // Siblings keep the shared pool queued: every query of the joiner takes 25 ms where the fleet's
      // probes measured 10. Judged against its own first interval it grows; against 10 it shrinks.
      const alone = joiner(share(undefined).shared, 2300, 25, 2900)
      const joined = joiner(share(10).shared, 2300, 25, 2900)
      expect(alone.baselines.at(-1)).toBe(25)
      expect(joined.baselines.find(Number.isFinite)).toBe(10)
      expect(joined.limits.at(-1)).toBeLessThan(alone.limits.at(-1)! / 2)
      // Alone, it probes early (a second or less after it began) to check a baseline measured under
      // load. Joined, its first probe is the fleet's next common one, at a multiple of the interval:
      // one of its own would measure the siblings' queue again.
      alone.serve(3100, 25)
      expect(alone.starts[0]).toBe(3000)
      joined.serve(4100, 25)
      expect(joined.starts).toEqual([4000])
      // ... and nothing re-measured the baseline before then (a probe of this queue reads 25 ms).
      const firstChange = joined.baselines.findIndex((ms) => Number.isFinite(ms) && ms !== 10)
      expect(2300 + firstChange + 1).toBeGreaterThan(4000)
      // The next common probe however soon, not ¾ of an interval later (6000 here): skipping it left
      // the joiners' load queueing the siblings' probes (simulated, five joining ten: Jain 0.60-0.86).
      const late = joiner(share(10).shared, 2700, 25, 4100)
      expect(late.starts).toEqual([4000])
    })

    it('publishes its baseline after each probe, and none before', () => {
      const { shared, published } = share(undefined)
      const { limit, serve } = joiner(shared, 0, 10, 400)
      expect(published).toEqual([])
      serve(6100, 10)
      expect(published.length).toBeGreaterThanOrEqual(3)
      for (const ms of published) expect(ms).toBe(10)
      expect(limit.baselineMs).toBe(10)
    })

    it('measures its own baseline when the share knows none, answers nonsense or throws', () => {
      for (const current of [
        () => undefined,
        () => Number.NaN,
        () => 0,
        () => -5,
        () => '10' as unknown as number,
        () => {
          throw new Error('redis down')
        },
      ]) {
        const shared: SharedBaseline = {
          current,
          publish: () => {
            throw new Error('redis down')
          },
        }
        const { baselines, limit, serve } = joiner(shared, 0, 12, 400)
        expect(baselines.find(Number.isFinite)).toBe(12)
        serve(3000, 12)
        expect(limit.baselineMs).toBe(12)
      }
    })

    it('ignores a promise either method returns, and its rejection', async () => {
      // An async share type-checks: a function returning a promise is assignable to one returning void.
      const publish: (ms: number) => void = () => Promise.reject(new Error('redis down'))
      const shared = { current: () => Promise.reject(new Error('redis down')) as unknown as number, publish }
      const { baselines, limit, serve } = joiner(shared, 0, 12, 400)
      expect(baselines.find(Number.isFinite)).toBe(12)
      serve(3000, 12) // probes publish: each rejection is handled, or Vitest reports it
      expect(limit.baselineMs).toBe(12)
      await new Promise((resolve) => setImmediate(resolve))
    })

    it("does not take a fleet's baseline more than four times what its own requests take", () => {
      // Not this instance's downstream (a key shared by mistake, seconds for milliseconds).
      expect(joiner(share(50).shared, 0, 12, 400).baselines.find(Number.isFinite)).toBe(12)
      expect(joiner(share(40).shared, 0, 12, 400).baselines.find(Number.isFinite)).toBe(40)
    })

    it('passes over a first interval its event loop stalled in before it takes the fleet’s baseline', () => {
      // A cold joiner's first requests wait for code compiling: judged against the fleet's 10 ms,
      // that interval would halve its limit.
      const clock = new ManualClock(0)
      const limits: number[] = []
      const limit = new GradientLimit(
        { initialLimit: 10, probeIntervalMs: 2000, sharedBaseline: share(10).shared },
        0,
        seededRandom(3),
        (_, next) => limits.push(next),
        0,
        () => Math.min(clock.now(), 199), // stalls until 199 ms, then never again
      )
      for (let i = 0; i < 400; i++) {
        clock.advance(1)
        const rtt = clock.now() < 200 ? 50 : 10
        limit.onSample(clock.now() - rtt, rtt, limit.value)
      }
      expect(limit.baselineMs).toBe(10)
      // Nothing halved it: only the 10 ms intervals were judged, and they grow it.
      expect(Math.min(10, ...limits)).toBe(10)
    })

    it('is refused unless it has current() and publish()', () => {
      for (const bad of [null, 10, 'redis', {}, { current: () => 10 }, { publish: () => {} }]) {
        expect(() => makeController({ maxConcurrency: { sharedBaseline: bad as never } })).toThrow(
          /`maxConcurrency.sharedBaseline`.*current\(\) and publish\(\)/,
        )
      }
    })
  })

  it('validates its options', () => {
    const clock = new ManualClock(0)
    expect(
      () =>
        new BackpressureController({
          clock: {
            now: () => clock.now(),
            setTimeout: clock.setTimeout.bind(clock),
            clearTimeout: clock.clearTimeout.bind(clock),
            epochOffsetMs: Number.NaN,
          },
        }),
    ).toThrow(/`clock.epochOffsetMs`.*NaN/)
    expect(() => makeController({ maxConcurrency: { initialLimit: 0 } })).toThrow(
      /`maxConcurrency.initialLimit`/,
    )
    expect(() => makeController({ maxConcurrency: { minLimit: 5, maxLimit: 2 } })).toThrow(
      /`maxConcurrency.maxLimit`/,
    )
    expect(() => makeController({ maxConcurrency: { tolerance: -1 } })).toThrow(/`maxConcurrency.tolerance`/)
    expect(() => makeController({ maxConcurrency: { algorithm: 'vegas' } as never })).toThrow(
      /`maxConcurrency.algorithm`/,
    )
    expect(() => makeController({ maxConcurrency: { algorithm: 'aimd' } as never })).toThrow(
      /`maxConcurrency.latencyTargetMs`/,
    )
    expect(() => makeController({ maxConcurrency: 'auto' as never })).toThrow(/`maxConcurrency`/)
    expect(() => makeController({ codel: { targetMs: 100, intervalMs: 50 } })).toThrow(/`codel.targetMs`/)
  })
})

describe('zero and equal service times', () => {
  // A millisecond clock (Date.now) reads most fast requests as 0 ms, and a ManualClock that does not
  // move during a request reads every one as 0 ms: 0/0 once made the gradient NaN, and a NaN limit
  // admitted nothing ever again.
  function serve(options: object, serviceMs: () => number) {
    const { controller, clock } = makeController({ maxConcurrency: options })
    const limits = new Set<number>()
    let admittedInEveryRound = true
    for (let round = 0; round < 6000; round++) {
      clock.advance(5)
      const permits: Permit[] = []
      while (permits.length < 8 && controller.inFlight < controller.limit) {
        permits.push(controller.admit(0) as Permit)
      }
      if (permits.length === 0) admittedInEveryRound = false
      const ms = serviceMs()
      clock.stall(ms) // released `ms` later, without firing timers on the way
      for (const permit of permits) permit.release()
      limits.add(controller.limit)
    }
    return { limits: [...limits], admittedInEveryRound, controller }
  }

  it.each([
    ['gradient', { minLimit: 2, maxLimit: 50 }],
    ['aimd', { algorithm: 'aimd', latencyTargetMs: 10, minLimit: 2, maxLimit: 50 }],
  ])(
    '%s: zero service times keep the limit a finite integer in bounds, and requests admitted',
    (_, options) => {
      const { limits, admittedInEveryRound } = serve(options, () => 0)
      for (const limit of limits) {
        expect(Number.isInteger(limit)).toBe(true)
        expect(limit).toBeGreaterThanOrEqual(2)
        expect(limit).toBeLessThanOrEqual(50)
      }
      expect(admittedInEveryRound).toBe(true)
    },
  )

  it('a millisecond clock reading 0 or 1 ms does not collapse the limit below the work in use', () => {
    const random = seededRandom(7)
    const { limits, admittedInEveryRound, controller } = serve({ minLimit: 2, maxLimit: 50 }, () =>
      random() < 0.5 ? 0 : 1,
    )
    expect(admittedInEveryRound).toBe(true)
    for (const limit of limits) expect(Number.isInteger(limit)).toBe(true)
    // Eight requests at a time that all finish within a millisecond: no reason to hold them back.
    expect(controller.limit).toBeGreaterThanOrEqual(8)
  })
})

describe('AIMD limit', () => {
  it('adds one per interval under the target and backs off above it', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: { algorithm: 'aimd', initialLimit: 10, latencyTargetMs: 20 },
    })
    const run = (ms: number) => {
      const permits = Array.from({ length: 10 }, () => controller.admit(0))
      clock.advance(ms)
      for (const p of permits) if (!(p instanceof Rejection) && !(p instanceof Promise)) p.release()
    }
    for (let i = 0; i < 20; i++) run(10)
    const grown = controller.limit
    expect(grown).toBeGreaterThan(10)
    for (let i = 0; i < 20; i++) run(50)
    expect(controller.limit).toBeLessThan(grown)
  })
})

describe('CoDel queue discipline', () => {
  it('bounds waits by the interval, and by the target once the queue has stood for an interval', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    const holder = controller.admit(0) as { release(): void }
    const start = clock.now()
    const waits: { enqueuedAt: number; waited?: number; reason?: string }[] = []
    // A waiter every 2 ms for 100 ms, nothing ever released: a standing queue.
    for (let t = 0; t <= 100; t += 2) {
      const entry: (typeof waits)[number] = { enqueuedAt: clock.now() - start }
      waits.push(entry)
      const result = controller.admit(0)
      if (result instanceof Rejection) {
        entry.waited = 0
        entry.reason = result.reason
      } else {
        void (result as Promise<Rejection>).then((r) => {
          entry.waited = clock.now() - start - entry.enqueuedAt
          entry.reason = r.reason
        })
      }
      clock.advance(1)
      await Promise.resolve()
      clock.advance(1)
      await Promise.resolve()
    }
    // The first waiter had the whole interval; once the queue had stood for an interval, waits were
    // cut at the target, and with nothing starting, newcomers beyond one waiter were turned away at once.
    expect(waits[0]).toMatchObject({ waited: 50, reason: 'queue_delay' })
    const late = waits.filter((w) => w.enqueuedAt >= 60 && w.enqueuedAt <= 90)
    expect(late.length).toBeGreaterThan(10)
    for (const w of late) {
      expect(w.reason).toBe('queue_delay')
      expect(w.waited).toBeLessThanOrEqual(6)
    }
    holder.release()
  })

  it('under a standing queue turns away at arrival whoever would wait past the target', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    // One request starts per ms (each holds the slot 1 ms) and three arrive per ms: a standing queue.
    let holder: { release(): void } | undefined = controller.admit(0) as { release(): void }
    let atOnce = 0
    let maxDepth = 0
    for (let ms = 0; ms < 200; ms++) {
      for (let i = 0; i < 3; i++) {
        const result = controller.admit(0)
        if (result instanceof Rejection) {
          if (ms > 60) expect(result.reason).toBe('queue_delay')
          atOnce++
        } else {
          void (result as Promise<{ release(): void } | Rejection>).then((settled) => {
            if (!(settled instanceof Rejection)) holder = settled
          })
        }
      }
      if (ms > 60) maxDepth = Math.max(maxDepth, controller.queueDepth)
      clock.advance(1)
      // The slot passes to the next waiter, which holds it for the next ms.
      const current = holder
      holder = undefined
      current?.release()
      await Promise.resolve()
      await Promise.resolve()
    }
    // About 5 ms of starts may wait; the rest (two of every three arrivals) get their 503 at once.
    expect(maxDepth).toBeLessThanOrEqual(6)
    expect(atOnce).toBeGreaterThan(250)
    ;(holder as { release(): void } | undefined)?.release()
  })

  it('keeps the queue standing when it was emptied by shedding, not by service', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    let holder = controller.admit(0) as { release(): void }
    // 60 ms of a standing queue, then the sweep sheds every waiter: the queue is empty, the slot busy.
    const shed: Promise<Rejection>[] = []
    for (let t = 0; t < 60; t += 2) {
      shed.push(controller.admit(0) as Promise<Rejection>)
      clock.advance(2)
      await Promise.resolve()
    }
    clock.advance(10)
    expect(controller.queueDepth).toBe(0)
    for (const r of await Promise.all(shed)) expect(r.reason).toBe('queue_delay')
    // The slot frees with nobody waiting, and the next arrival starts at once: not spare capacity yet.
    holder.release()
    holder = controller.admit(0) as { release(): void }
    let reason: string | undefined
    void (controller.admit(0) as Promise<Rejection>).then((r) => {
      reason = r.reason
    })
    clock.advance(20)
    await Promise.resolve()
    // Still standing: cut at the 5 ms target, not allowed the 50 ms interval.
    expect(reason).toBe('queue_delay')
    holder.release()
  })

  it('gives a freed slot to the last waiter even when it waited past the target', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    const holder = controller.admit(0) as { release(): void }
    for (let t = 0; t < 60; t += 2) {
      void controller.admit(0)
      clock.advance(2)
      await Promise.resolve()
    }
    clock.advance(10)
    expect(controller.queueDepth).toBe(0)
    // A busy event loop: the release comes 6 ms later, before the sweep that would shed the waiter.
    const last = controller.admit(0) as Promise<{ release(): void }>
    clock.stall(6)
    holder.release()
    const permit = await last
    expect(controller.inFlight).toBe(1)
    permit.release()
  })

  it('never serves a lower priority while shedding a higher one for its wait', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    const holder = controller.admit(0) as { release(): void }
    clock.advance(40)
    const low = controller.admit(0) as Promise<Permit | Rejection>
    clock.advance(5)
    const high = controller.admit(10) as Promise<Permit | Rejection>
    clock.stall(15)
    holder.release()
    // The slot goes to the high-priority waiter; the low one, as late, is shed by the next sweep.
    const highResult = await high
    expect(highResult).toBeInstanceOf(Permit)
    clock.advance(100)
    expect(await low).toBeInstanceOf(Rejection)
    ;(highResult as Permit).release()
  })

  it('is off with a fixed limit unless asked for', () => {
    expect(makeController({ maxConcurrency: 5 }).controller.options.codel).toBeUndefined()
    expect(makeController({}).controller.options.codel).toEqual({ targetMs: 5, intervalMs: 50 })
    expect(makeController({ codel: false }).controller.options.codel).toBeUndefined()
  })

  it('never starts work whose deadline has passed', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1 })
    expect((controller.admit(0, undefined, clock.now() - 1) as Rejection).reason).toBe('deadline_exceeded')
    const holder = controller.admit(0) as { release(): void }
    const waiting = controller.admit(0, undefined, clock.now() + 10) as Promise<Rejection>
    clock.advance(20)
    holder.release()
    expect((await waiting).reason).toBe('deadline_exceeded')
    expect(controller.inFlight).toBe(0)
  })
})

describe('slow queries: a probe sized from the requests it saw, not from the limit', () => {
  // With 50 ms queries a request that waits downstream takes several update intervals, so the first
  // requests after a probe (which find the pool empty) and the limit's own growth can make a probe
  // admit more than the pool has connections: it then measures queueing as the baseline. Measured
  // behind HAProxy before the fix: a pool of 4 under a limit swinging 3 → 80 with a period of ~1.3 s.
  it.each([2, 4])(
    'pool of %i, 50 ms queries, 2× for 20 s: the limit stays near the pool',
    async (connections) => {
      const capacity = (connections * 1000) / 50
      for (const seed of [1, 2, 3]) {
        const { seconds } = await simulate(
          [{ durationMs: 20_000, ratePerSecond: 2 * capacity, connections }],
          {},
          { serviceMs: 50, seed },
        )
        const steady = seconds.slice(3, 20)
        const limits = steady.flatMap((s) => s.limits)
        const sorted = [...limits].sort((a, b) => a - b)
        const p90 = sorted[Math.floor(sorted.length * 0.9)] as number
        expect(p90, `seed ${seed}`).toBeLessThanOrEqual(4 * connections)
        expect(phase(seconds, 3, 20).goodput, `seed ${seed}`).toBeGreaterThan(0.97)
      }
    },
    60_000,
  )
})
