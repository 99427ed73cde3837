import { describe, expect, it } from 'vitest'
import {
  BackpressureController,
  HttpBackpressure,
  ManualClock,
  Permit,
  type Rejection,
  seededRandom,
} from '../src/index.js'
import { admitNow, flush, makeController, track } from './helpers.js'

describe('a permit bound to its work', () => {
  it('never gives an aborted signal a permit, even with a free slot', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const result = controller.admit(0, AbortSignal.abort())
    expect((result as Rejection).reason).toBe('aborted')
    let ran = false
    await expect(
      controller.submit(
        () => {
          ran = true
        },
        { signal: AbortSignal.abort() },
      ),
    ).rejects.toThrow()
    expect(ran).toBe(false)
    expect(controller.inFlight).toBe(0)
  })

  it('hands submit’s fn the caller’s signal, and a never-aborting one without', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const caller = new AbortController()
    let seen: AbortSignal | undefined
    await controller.submit(
      (signal) => {
        seen = signal
      },
      { signal: caller.signal },
    )
    expect(seen).toBe(caller.signal)
    await controller.submit((signal) => {
      seen = signal
    })
    expect(seen).toBeInstanceOf(AbortSignal)
    expect(seen?.aborted).toBe(false)
  })

  it('abandon() releases once, counted apart, with an event', () => {
    const { controller, clock } = makeController({ maxConcurrency: 1 })
    const events: number[] = []
    controller.on('abandon', (event) => events.push(event.heldMs))
    const permit = admitNow(controller)
    clock.advance(250)
    permit.abandon()
    permit.abandon()
    permit.release()
    expect(controller.inFlight).toBe(0)
    expect(controller.stats().abandoned).toBe(1)
    expect(controller.stats().completed).toBe(1)
    expect(events).toEqual([250])
  })
})

describe('deadlines of waiters', () => {
  it('a waiter leaves the queue at its own deadline, whatever its place in arrival order', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueWaitMs: 10_000, codel: false })
    admitNow(controller)
    const now = clock.now()
    const patient = track(controller.admit(0, undefined, now + 5000))
    const hurried = track(controller.admit(0, undefined, now + 100))
    const none = track(controller.admit(0))
    clock.advance(100)
    await flush()
    expect((hurried.value as Rejection | undefined)?.reason).toBe('deadline_exceeded')
    expect(patient.value).toBeUndefined()
    expect(none.value).toBeUndefined()
    expect(controller.queueDepth).toBe(2)
    clock.advance(4900)
    await flush()
    expect((patient.value as Rejection | undefined)?.reason).toBe('deadline_exceeded')
    expect(none.value).toBeUndefined()
  })

  it('expired waiters leave before a newcomer is judged against a full queue (late timer)', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 1, maxQueueDepth: 2, codel: false })
    admitNow(controller)
    const now = clock.now()
    track(controller.admit(0, undefined, now + 50))
    track(controller.admit(0, undefined, now + 50))
    // Time passes without the timer firing (a busy event loop): the newcomer still finds room.
    clock.stall(60)
    const fresh = track(controller.admit(0))
    await flush()
    expect(fresh.value).toBeUndefined()
    expect(controller.queueDepth).toBe(1)
  })
})

describe('priority orders every kind of shedding', () => {
  it('CoDel sheds the lowest priority first; a higher-priority waiter past the target stays', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      maxQueueWaitMs: 10_000,
      codel: { targetMs: 5, intervalMs: 50 },
    })
    const running = admitNow(controller)
    const high = track(controller.admit(10))
    const low = track(controller.admit(0))
    clock.advance(60)
    await flush()
    expect((low.value as Rejection | undefined)?.reason).toBe('queue_delay')
    expect(high.value).toBeUndefined()
    running.release()
    await flush()
    expect(high.value).toBeInstanceOf(Permit)
  })

  it('a process signal sheds a lower-priority waiter rather than a higher-priority arrival', async () => {
    let delay = 0
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      maxEventLoopDelayMs: 50,
      sampleIntervalMs: 100,
      processSampler: () => ({
        eventLoopDelayMs: delay,
        eventLoopUtilization: 0,
        heapUsedBytes: 0,
        rssBytes: 0,
      }),
    })
    admitNow(controller)
    const low = track(controller.admit(0))
    delay = 80
    clock.advance(100)
    const high = track(controller.admit(10))
    const lowArrival = controller.admit(0)
    await flush()
    expect((low.value as Rejection | undefined)?.reason).toBe('event_loop_delay')
    expect(high.value).toBeUndefined()
    expect(controller.queueDepth).toBe(1)
    expect((lowArrival as Rejection).reason).toBe('event_loop_delay')
  })
})

describe('abandoned holds are no latency samples (review)', () => {
  it('raise neither the p99, nor the abandonment bound, nor latency shedding', async () => {
    const clock = new ManualClock(0)
    const http = new HttpBackpressure<unknown>({ clock, maxConcurrency: 100, latencyMinSamples: 10 })
    const controller = http.controller
    for (let second = 0; second < 20; second++) {
      // 100 requests of 10 ms a second, and two whose clients left and whose routes never end.
      const stuck = [admitNow(controller), admitNow(controller)]
      for (let i = 0; i < 100; i++) {
        const permit = admitNow(controller)
        clock.advance(5)
        permit.release()
        clock.advance(5)
      }
      for (const permit of stuck) permit.abandon()
    }
    expect(controller.stats().abandoned).toBe(40)
    expect(controller.p99LatencyMs()).toBeLessThan(20)
    expect(http.abandonAfterMs()).toBe(1000)
    expect(controller.stats().rejections.latency).toBe(0)
  })

  it('the default bound is capped at maxQueueWaitMs however slow normal requests are', () => {
    const clock = new ManualClock(0)
    const http = new HttpBackpressure<unknown>({ clock, maxConcurrency: 10, maxQueueWaitMs: 3000 })
    for (let i = 0; i < 200; i++) {
      const permit = admitNow(http.controller)
      clock.advance(60_000)
      permit.release()
    }
    expect(http.abandonAfterMs()).toBe(3000)
  })
})

describe('the probe beside long-lived requests (review)', () => {
  it.each([
    [1000, 4],
    [200, 4],
  ])(
    'sheds nothing at light load (one request every %i ms) while %i streams fill the probe limit',
    async (gapMs, streams) => {
      const clock = new ManualClock(0)
      const controller = new BackpressureController({
        clock,
        random: seededRandom(3),
        maxConcurrency: { initialLimit: 8, minLimit: 1, maxLimit: 8 },
        adaptiveRejection: false,
      })
      const held = Array.from({ length: streams }, () => controller.admit(0) as Permit)
      let served = 0
      const run = (permit: Permit) => {
        served++
        clock.setTimeout(() => permit.release(), 10)
      }
      for (let t = 0; t < 60_000; t += gapMs) {
        const result = controller.admit(0)
        if (result instanceof Permit) run(result)
        else if (result instanceof Promise) void result.then((r) => r instanceof Permit && run(r))
        await flush()
        clock.advance(gapMs)
        await flush()
      }
      expect(served).toBe(60_000 / gapMs)
      expect(controller.stats().rejected).toBe(0)
      for (const permit of held) permit.release()
    },
  )
})
