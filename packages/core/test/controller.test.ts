import { describe, expect, it } from 'vitest'
import { BackpressureError, Permit, Rejection } from '../src/index.js'
import { admitNow, captureWarnings, flush, makeController, track } from './helpers.js'

describe('BackpressureController admission', () => {
  it('admits up to the limit at once, then queues', async () => {
    const { controller } = makeController({ maxConcurrency: 2, maxQueueDepth: 5 })
    const a = admitNow(controller)
    admitNow(controller)
    const queued = track(controller.admit(0))
    expect(controller.inFlight).toBe(2)
    expect(controller.queueDepth).toBe(1)
    expect(queued.value).toBeUndefined()
    a.release()
    await flush()
    expect(queued.value).toBeInstanceOf(Permit)
    expect(controller.inFlight).toBe(2)
    expect(controller.queueDepth).toBe(0)
  })

  it('serves higher priority first, FIFO within a priority', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 10 })
    let running = admitNow(controller)
    const order: string[] = []
    const waiting = (
      [
        ['low-1', 0],
        ['high-1', 10],
        ['low-2', 0],
        ['mid', 5],
        ['high-2', 10],
      ] as const
    ).map(([name, priority]) => ({ name, box: track(controller.admit(priority)) }))
    // Release one at a time: each release starts exactly one waiter, the next in order.
    for (let i = 0; i < waiting.length; i++) {
      running.release()
      await flush()
      const started = waiting.filter((w) => w.box.value instanceof Permit && !order.includes(w.name))
      expect(started).toHaveLength(1)
      order.push(started[0]!.name)
      running = started[0]!.box.value as Permit
      expect(controller.inFlight).toBe(1)
    }
    expect(order).toEqual(['high-1', 'high-2', 'mid', 'low-1', 'low-2'])
  })

  it('hands a freed slot to the waiter: a newcomer cannot barge', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 10 })
    const holder = admitNow(controller)
    const waiter = track(controller.admit(0))
    holder.release()
    // The slot already belongs to the waiter even before its promise callback runs.
    const newcomer = controller.admit(0)
    expect(newcomer).toBeInstanceOf(Promise)
    expect(controller.inFlight).toBe(1)
    await flush()
    expect(waiter.value).toBeInstanceOf(Permit)
  })

  it('rejects with queue_full when the queue is full of equal or higher priority', () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 2 })
    admitNow(controller)
    controller.admit(5)
    controller.admit(5)
    const rejected = controller.admit(5)
    expect(rejected).toBeInstanceOf(Rejection)
    expect((rejected as Rejection).reason).toBe('queue_full')
    expect((rejected as Rejection).status).toBe(503)
    const lower = controller.admit(1)
    expect((lower as Rejection).reason).toBe('queue_full')
    expect(controller.queueDepth).toBe(2)
  })

  it('displaces the newest waiter of the lowest priority for a higher-priority arrival', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 2 })
    const holder = admitNow(controller)
    const oldLow = track(controller.admit(0))
    const newLow = track(controller.admit(0))
    const high = track(controller.admit(9))
    await flush()
    expect(newLow.value).toBeInstanceOf(Rejection)
    expect((newLow.value as Rejection).reason).toBe('displaced')
    expect(oldLow.value).toBeUndefined()
    expect(controller.queueDepth).toBe(2)
    holder.release()
    await flush()
    expect(high.value).toBeInstanceOf(Permit)
    expect(oldLow.value).toBeUndefined()
  })

  it('maxQueueDepth 0 means no queue', () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 0 })
    admitNow(controller)
    expect((controller.admit(100) as Rejection).reason).toBe('queue_full')
  })

  it('a waiter whose signal aborts leaves the queue at once and never starts', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 5 })
    const holder = admitNow(controller)
    const abort = new AbortController()
    const waiter = track(controller.admit(0, abort.signal))
    expect(controller.queueDepth).toBe(1)
    abort.abort()
    expect(controller.queueDepth).toBe(0)
    await flush()
    expect((waiter.value as Rejection).reason).toBe('aborted')
    holder.release()
    expect(controller.inFlight).toBe(0)
    expect(controller.stats().rejections.aborted).toBe(1)
  })

  it('an already-aborted signal is refused instead of queued', () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    admitNow(controller)
    expect((controller.admit(0, AbortSignal.abort()) as Rejection).reason).toBe('aborted')
    expect(controller.queueDepth).toBe(0)
  })

  it('rejects waiters past maxQueueWaitMs with one timer, and never starts them', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      maxQueueDepth: 10,
      maxQueueWaitMs: 100,
      // Off: the test counts the queue's timer alone.
      eventLoopShedding: false,
    })
    const holder = admitNow(controller)
    const first = track(controller.admit(0))
    clock.advance(50)
    const second = track(controller.admit(0))
    expect(clock.pendingTimers).toBe(1)
    clock.advance(50)
    await flush()
    expect((first.value as Rejection).reason).toBe('queue_timeout')
    expect(second.value).toBeUndefined()
    clock.advance(49)
    await flush()
    expect(second.value).toBeUndefined()
    clock.advance(1)
    await flush()
    expect((second.value as Rejection).reason).toBe('queue_timeout')
    expect(clock.pendingTimers).toBe(0)
    holder.release()
    expect(controller.inFlight).toBe(0)
  })

  it('a waiter found expired at hand-over is rejected, not started', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueWaitMs: 100 })
    const holder = admitNow(controller)
    const waiter = track(controller.admit(0))
    // Time moves without the timer firing (as when the event loop was blocked).
    ;(clock as unknown as { time: number }).time += 150
    holder.release()
    await flush()
    expect((waiter.value as Rejection).reason).toBe('queue_timeout')
    expect(controller.inFlight).toBe(0)
  })

  it('release is idempotent and the permit records its wait', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1 })
    const holder = admitNow(controller)
    const waiter = track(controller.admit(0))
    clock.advance(30)
    holder.release()
    holder.release()
    await flush()
    const permit = waiter.value as Permit
    expect(permit.queuedMs).toBe(30)
    expect(controller.inFlight).toBe(1)
    permit.release()
    permit.release()
    expect(controller.inFlight).toBe(0)
    expect(controller.stats().completed).toBe(2)
  })

  it('tryAcquire answers synchronously and never queues', () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    const permit = controller.tryAcquire()
    expect(permit).toBeInstanceOf(Permit)
    const refused = controller.tryAcquire({ priority: 100 })
    expect((refused as Rejection).reason).toBe('concurrency_limit')
    expect(controller.queueDepth).toBe(0)
  })

  it('acquire rejects with a BackpressureError carrying status, headers and no stack', async () => {
    const { controller } = makeController({
      maxConcurrency: 1,
      maxQueueDepth: 0,
      retryAfter: { min: 7, max: 7 },
    })
    const permit = await controller.acquire()
    const error = await controller.acquire().catch((e: unknown) => e)
    expect(BackpressureError.is(error)).toBe(true)
    expect(error).toBeInstanceOf(BackpressureError)
    const e = error as BackpressureError
    expect(e.code).toBe('BP_ERR_QUEUE_FULL')
    expect(e.reason).toBe('queue_full')
    expect(e.status).toBe(503)
    expect(e.statusCode).toBe(503)
    expect(e.retryAfterSeconds).toBe(7)
    expect(e.headers).toEqual({ 'Retry-After': '7' })
    expect(e.stack?.split('\n').length ?? 0).toBeLessThanOrEqual(1)
    permit.release()
  })

  it('acquire rejects with the signal reason when aborted while waiting', async () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    const holder = await controller.acquire()
    const abort = new AbortController()
    const pending = controller.acquire({ signal: abort.signal })
    abort.abort(new Error('client left'))
    await expect(pending).rejects.toThrow('client left')
    holder.release()
  })

  it('submit releases the permit however the work ends', async () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    await expect(controller.submit(async () => 42)).resolves.toBe(42)
    await expect(
      controller.submit(async () => {
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(controller.inFlight).toBe(0)
    expect(controller.stats().completed).toBe(2)
  })

  it('close rejects every waiter with shutting_down and resolves after in-flight work', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueWaitMs: 1000 })
    const holder = admitNow(controller)
    const waiters = [track(controller.admit(0)), track(controller.admit(3))]
    let closed = false
    void controller.close().then(() => (closed = true))
    await flush()
    for (const w of waiters) expect((w.value as Rejection).reason).toBe('shutting_down')
    expect(clock.pendingTimers).toBe(0)
    expect((controller.admit(0) as Rejection).reason).toBe('shutting_down')
    expect(closed).toBe(false)
    holder.release()
    await flush()
    expect(closed).toBe(true)
    expect(controller.close()).toBe(controller.close())
  })

  it('a closed idle controller has no timers left', async () => {
    const { controller, clock } = makeController({
      maxEventLoopDelayMs: 100,
      processSampler: () => idleSample,
    })
    // The process signals' sampler and the event-loop shedder's timer.
    expect(clock.pendingTimers).toBe(2)
    await controller.close()
    expect(clock.pendingTimers).toBe(0)
  })
})

const idleSample = { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0, rssBytes: 0 }

describe('shedding', () => {
  it('never sheds on latency with fewer than latencyMinSamples samples', () => {
    const { controller, clock } = makeController(
      { maxConcurrency: 1000, latencyThresholdMs: 100, latencyMinSamples: 20, latencyWindowMs: 600_000 },
      7,
    )
    for (let i = 0; i < 19; i++) {
      const p = admitNow(controller)
      clock.advance(5000)
      p.release()
    }
    // Held, not released: the window keeps 19 samples, all of them slow.
    for (let i = 0; i < 200; i++) expect(controller.admit(0)).toBeInstanceOf(Permit)
    expect(controller.stats().p99LatencyMs).toBeGreaterThan(4000)
  })

  it('sheds with probability (p99 - T) / T once p99 is above the threshold, capped at 0.9', () => {
    const { controller, clock } = makeController(
      { maxConcurrency: 10_000, latencyThresholdMs: 100, latencyMinSamples: 10, latencyWindowMs: 60_000 },
      3,
    )
    // p99 ≈ 150 ms: overage 0.5.
    const slow = Array.from({ length: 100 }, () => admitNow(controller))
    clock.advance(150)
    for (const p of slow) p.release()
    let shed = 0
    const trials = 4000
    for (let i = 0; i < trials; i++) {
      const result = controller.admit(0)
      if (result instanceof Rejection) {
        expect(result.reason).toBe('latency')
        shed++
      }
    }
    const p99 = controller.stats().p99LatencyMs
    const expected = (p99 - 100) / 100
    expect(expected).toBeGreaterThan(0.4)
    expect(expected).toBeLessThan(0.7)
    expect(shed / trials).toBeGreaterThan(expected - 0.05)
    expect(shed / trials).toBeLessThan(expected + 0.05)
  })

  it('caps the latency shedding probability at 0.9', () => {
    const { controller, clock } = makeController(
      { maxConcurrency: 10_000, latencyThresholdMs: 10, latencyMinSamples: 10, latencyWindowMs: 60_000 },
      5,
    )
    const slow = Array.from({ length: 50 }, () => admitNow(controller))
    clock.advance(1000)
    for (const p of slow) p.release()
    let admitted = 0
    for (let i = 0; i < 2000; i++) if (controller.admit(0) instanceof Permit) admitted++
    expect(admitted / 2000).toBeGreaterThan(0.07)
    expect(admitted / 2000).toBeLessThan(0.13)
  })

  it('latency shedding stops once slow samples leave the window', () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1000,
      latencyThresholdMs: 10,
      latencyMinSamples: 5,
      latencyWindowMs: 1000,
    })
    const slow = Array.from({ length: 20 }, () => admitNow(controller))
    clock.advance(500)
    for (const p of slow) p.release()
    expect(controller.stats().p99LatencyMs).toBeGreaterThan(400)
    clock.advance(1200)
    expect(controller.stats().p99LatencyMs).toBe(0)
    for (let i = 0; i < 100; i++) expect(controller.admit(0)).toBeInstanceOf(Permit)
  })

  it('adaptiveRejection false never sheds on latency', () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1000,
      adaptiveRejection: false,
      latencyThresholdMs: 1,
      latencyMinSamples: 1,
    })
    const slow = Array.from({ length: 20 }, () => admitNow(controller))
    clock.advance(500)
    for (const p of slow) p.release()
    for (let i = 0; i < 50; i++) expect(controller.admit(0)).toBeInstanceOf(Permit)
  })

  it('sheds on each process signal, sampled on one timer', () => {
    let sample = { ...idleSample }
    const { controller, clock } = makeController({
      maxEventLoopDelayMs: 50,
      maxEventLoopUtilization: 0.95,
      maxHeapUsedBytes: 1e9,
      maxRssBytes: 2e9,
      sampleIntervalMs: 100,
      processSampler: () => sample,
      eventLoopShedding: false,
    })
    const cases = [
      [{ eventLoopDelayMs: 80 }, 'event_loop_delay'],
      [{ eventLoopUtilization: 0.99 }, 'event_loop_utilization'],
      [{ heapUsedBytes: 2e9 }, 'heap'],
      [{ rssBytes: 3e9 }, 'rss'],
    ] as const
    for (const [overload, reason] of cases) {
      sample = { ...idleSample, ...overload }
      expect(controller.admit(0)).toBeInstanceOf(Permit)
      clock.advance(100)
      expect((controller.admit(0) as Rejection).reason).toBe(reason)
      sample = { ...idleSample }
      clock.advance(100)
      expect(controller.admit(0)).toBeInstanceOf(Permit)
    }
    expect(clock.pendingTimers).toBe(1)
  })
})

describe('stats and events', () => {
  it('reports depth, in flight, limit, requests, rejections by reason and active time', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueDepth: 1 })
    const holder = admitNow(controller)
    track(controller.admit(0))
    controller.admit(0)
    let stats = controller.stats()
    expect(stats).toMatchObject({
      queueDepth: 1,
      inFlight: 1,
      limit: 1,
      requests: 3,
      rejected: 1,
      backpressureActive: true,
    })
    expect(stats.rejections.queue_full).toBe(1)
    expect(stats.rejectionRate).toBeCloseTo(1 / 3)
    holder.release()
    await flush()
    clock.advance(2000)
    stats = controller.stats()
    expect(stats.backpressureActive).toBe(false)
    expect(stats.activeSeconds).toBeCloseTo(1, 5)
    expect(stats.histograms.retryAfterSeconds.count).toBe(1)
    expect(stats.histograms.queueWaitSeconds.count).toBe(2)
  })

  it('emits typed events only to listeners, and a throwing listener cannot break admission', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 0, name: 'orders' })
    const seen: string[] = []
    const off = controller.on('reject', (e) => seen.push(`${e.name}:${e.reason}:${e.retryAfterSeconds > 0}`))
    controller.on('admit', () => {
      throw new Error('listener bug')
    })
    const warnings = captureWarnings()
    try {
      const permit = admitNow(controller)
      controller.admit(0)
      off()
      controller.admit(0)
      expect(seen).toEqual(['orders:queue_full:true'])
      expect(warnings.mock.calls).toEqual([[new Error('listener bug'), 'BackpressureListenerWarning']])
      permit.release()
    } finally {
      warnings.mockRestore()
    }
    expect(controller.inFlight).toBe(0)
  })
})
