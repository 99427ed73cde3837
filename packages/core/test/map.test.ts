import { describe, expect, it } from 'vitest'
import { BackpressureError, InvalidOptionError, seededRandom } from '../src/index.js'
import { admitNow, captureWarnings, makeController } from './helpers.js'
import { countingSource, manualWork, settle } from './streams-helpers.js'

/** Consumes an async iterable in the background, recording results and how it ended. */
function consume<R>(iterable: AsyncIterable<R>) {
  const box = { results: [] as R[], done: false, error: undefined as unknown }
  const finished = (async () => {
    try {
      for await (const value of iterable) box.results.push(value)
    } catch (error) {
      box.error = error
    } finally {
      box.done = true
    }
  })()
  return { box, finished }
}

describe('controller.map', () => {
  it('runs up to the limit at once, never more, and yields every result', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const work = manualWork<number>()
    const { box, finished } = consume(controller.map([...Array(30).keys()], work.fn))
    const random = seededRandom(7)
    while (!box.done) {
      await settle()
      expect(controller.inFlight).toBeLessThanOrEqual(3)
      expect(work.state.running).toBeLessThanOrEqual(3)
      if (work.pending.length > 0) {
        const job = work.pending[Math.floor(random() * work.pending.length)]!
        job.resolve(job.item * 10)
      }
    }
    await finished
    expect(box.error).toBeUndefined()
    expect(work.state.maxRunning).toBe(3)
    expect([...box.results].sort((a, b) => a - b)).toEqual([...Array(30).keys()].map((i) => i * 10))
    expect(controller.inFlight).toBe(0)
  })

  it('keeps input order with ordered: true, whatever order the work finishes in', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const work = manualWork<number>()
    const { box, finished } = consume(controller.map([...Array(20).keys()], work.fn, { ordered: true }))
    const random = seededRandom(3)
    const finishOrder: number[] = []
    while (!box.done) {
      await settle()
      if (work.pending.length > 0) {
        // Finish the newest first where possible: the opposite of input order.
        const job = random() < 0.7 ? work.pending.at(-1)! : work.pending[0]!
        finishOrder.push(job.item)
        job.resolve(job.item)
      }
    }
    await finished
    expect(box.results).toEqual([...Array(20).keys()])
    expect(finishOrder).not.toEqual([...Array(20).keys()])
  })

  it('yields in completion order without ordered', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const work = manualWork<number>()
    const { box, finished } = consume(controller.map([0, 1, 2, 3], work.fn))
    await settle()
    expect(work.pending.map((job) => job.item)).toEqual([0, 1, 2, 3])
    for (const item of [2, 0, 3, 1]) {
      work.all[item]!.resolve(item)
      await settle()
    }
    await finished
    expect(box.results).toEqual([2, 0, 3, 1])
  })

  it('pulls only while a permit can be had: at most the limit plus one item ahead', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const work = manualWork<number>()
    const { source, state } = countingSource(1000)
    const { box, finished } = consume(controller.map(source, work.fn))
    for (let round = 0; round < 5; round++) await settle()
    expect(work.state.running).toBe(4)
    expect(state.pulled).toBe(5)
    // Each finished item lets exactly one more in.
    work.pending[0]!.resolve(0)
    for (let round = 0; round < 5; round++) await settle()
    expect(box.results).toHaveLength(1)
    expect(state.pulled).toBe(6)
    expect(work.state.running).toBe(4)
    while (!box.done) {
      await settle()
      expect(state.pulled).toBeLessThanOrEqual(box.results.length + 5)
      for (const job of [...work.pending]) job.resolve(job.item)
    }
    await finished
    expect(box.results).toHaveLength(1000)
  })

  it('stops pulling while the consumer does not take results', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const { source, state } = countingSource(1000)
    const iterator = controller.map(source, async (item) => item)
    expect((await iterator.next()).value).toBe(0)
    for (let round = 0; round < 10; round++) await settle()
    // Taken 1; held: 4 finished results; one more pulled, waiting for room.
    expect(state.pulled).toBeLessThanOrEqual(1 + 4 + 1)
    await iterator.return?.()
    expect(state.returned).toBe(true)
  })

  it('never starts more than the adaptive limit while it moves, and follows it up and down', async () => {
    const { controller, clock } = makeController({
      maxConcurrency: {
        algorithm: 'aimd',
        initialLimit: 4,
        minLimit: 2,
        maxLimit: 40,
        latencyTargetMs: 10,
        updateIntervalMs: 10,
      },
      latencyThresholdMs: 1e9,
    })
    const limits: number[] = [controller.limit]
    controller.on('limit', (event) => limits.push(event.limit))
    // The first 2000 items are fast (the limit grows), the last 600 slow (it shrinks).
    const starts: { item: number; inFlight: number; limit: number }[] = []
    const fn = (item: number) => {
      starts.push({ item, inFlight: controller.inFlight, limit: controller.limit })
      return new Promise<number>((resolve) => clock.setTimeout(() => resolve(item), item < 2000 ? 2 : 30))
    }
    const { box, finished } = consume(controller.map([...Array(2600).keys()], fn))
    for (let ms = 0; !box.done && ms < 20_000; ms++) {
      await settle()
      clock.advance(1)
    }
    if (!box.done) throw new Error('the iteration did not finish in 20 s of clock time')
    await finished
    expect(box.error).toBeUndefined()
    expect(box.results).toHaveLength(2600)
    // Every start found a slot under the limit in force at that moment.
    for (const start of starts) expect(start.inFlight).toBeLessThanOrEqual(start.limit)
    const peak = Math.max(...limits)
    expect(peak).toBeGreaterThan(10)
    expect(Math.min(...limits.slice(limits.indexOf(peak)))).toBeLessThan(10)
    // The work followed the limit up, and back down once the work slowed.
    expect(
      Math.max(...starts.filter((start) => start.item < 2000).map((start) => start.inFlight)),
    ).toBeGreaterThan(10)
    expect(Math.max(...starts.slice(-100).map((start) => start.inFlight))).toBeLessThan(10)
  })

  it('an error from fn ends the iteration with it: in-flight work aborted and awaited, the source returned', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const work = manualWork<number>()
    const { source, state } = countingSource(100)
    const { box, finished } = consume(controller.map(source, work.fn))
    await settle()
    const [first, second, third] = work.all
    const boom = new Error('boom')
    second!.reject(boom)
    await settle()
    // The others are told to stop, and the iteration waits for them before it ends.
    expect(first!.signal.aborted).toBe(true)
    expect(third!.signal.aborted).toBe(true)
    expect(box.done).toBe(false)
    first!.resolve(0)
    third!.reject(new Error('aborted work'))
    await finished
    expect(box.error).toBe(boom)
    expect(state.returned).toBe(true)
    expect(controller.inFlight).toBe(0)
    expect(work.all).toHaveLength(3)
  })

  it('an error from the source ends the iteration with it, after the work in flight', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const failure = new Error('source broke')
    async function* source() {
      yield 1
      throw failure
    }
    const work = manualWork<number>()
    const { box, finished } = consume(controller.map(source(), work.fn))
    await settle()
    expect(work.all[0]!.signal.aborted).toBe(true)
    work.all[0]!.resolve(1)
    await finished
    expect(box.error).toBe(failure)
    expect(controller.inFlight).toBe(0)
  })

  it('breaking out of the loop returns the source and aborts and awaits the work in flight', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const { source, state } = countingSource(100)
    const signals: AbortSignal[] = []
    let settledAfterAbort = 0
    let third: () => void = () => {}
    const thirdStarted = new Promise<void>((resolve) => {
      third = resolve
    })
    const fn = async (item: number, signal: AbortSignal) => {
      signals.push(signal)
      if (signals.length === 3) third()
      // The first result arrives once all three are running.
      if (item === 0) return thirdStarted.then(() => item)
      return new Promise<number>((resolve) => {
        signal.addEventListener('abort', () => {
          settledAfterAbort++
          resolve(item)
        })
      })
    }
    for await (const value of controller.map(source, fn)) {
      expect(value).toBe(0)
      break
    }
    expect(state.returned).toBe(true)
    expect(signals.every((signal) => signal.aborted)).toBe(true)
    // Items 1 and 2 (and 3, the read-ahead, if it started in the slot item 0 freed): all ended by the abort, before the loop exits.
    expect(signals.length).toBeLessThanOrEqual(4)
    expect(settledAfterAbort).toBe(signals.length - 1)
    expect(controller.inFlight).toBe(0)
  })

  it('aborting the signal ends the iteration with its reason and takes the waiting item out of the queue', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 10 })
    const held = admitNow(controller)
    // Somebody else is queued, so map joins the queue behind them.
    const other = controller.admit(0)
    const abort = new AbortController()
    const { source, state } = countingSource(10)
    const { box, finished } = consume(controller.map(source, async (item) => item, { signal: abort.signal }))
    await settle()
    expect(controller.queueDepth).toBe(2)
    abort.abort(new Error('stop'))
    await finished
    expect((box.error as Error).message).toBe('stop')
    expect(controller.queueDepth).toBe(1)
    expect(state.returned).toBe(true)
    held.release()
    const permit = await other
    expect('release' in permit).toBe(true)
  })

  it('a signal aborted before the first next() ends it at once without pulling', async () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const { source, state } = countingSource(10)
    const reason = new Error('already')
    const iterator = controller.map(source, async (item) => item, { signal: AbortSignal.abort(reason) })
    await expect(iterator.next()).rejects.toBe(reason)
    expect(state.pulled).toBe(0)
  })

  it('waits for a release, not a timer, while every slot is taken', async () => {
    // Event-loop shedding off: the test counts timers, and the shedder keeps one of its own.
    const { controller, clock } = makeController({
      maxConcurrency: 1,
      maxQueueDepth: 0,
      eventLoopShedding: false,
    })
    const held = admitNow(controller)
    const { box, finished } = consume(controller.map([1, 2], async (item) => item))
    for (let round = 0; round < 5; round++) await settle()
    expect(box.results).toEqual([])
    expect(clock.pendingTimers).toBe(0)
    expect(controller.stats().rejected).toBe(0)
    held.release()
    await finished
    expect(box.results).toEqual([1, 2])
  })

  it('an item turned away with queue_full is not dropped: it waits for a release', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 2, maxQueueDepth: 1 })
    const held = [admitNow(controller), admitNow(controller)]
    const queued = controller.admit(0)
    const { box, finished } = consume(controller.map([...Array(10).keys()], async (item) => item))
    for (let round = 0; round < 5; round++) await settle()
    clock.advance(100)
    for (let round = 0; round < 5; round++) await settle()
    // Turned away once, then it waits for a release: no retry loop.
    expect(controller.stats().rejections.queue_full).toBe(1)
    expect(box.results).toEqual([])
    for (const permit of held) permit.release()
    ;((await queued) as { release(): void }).release()
    await finished
    expect(box.error).toBeUndefined()
    expect([...box.results].sort((a, b) => a - b)).toEqual([...Array(10).keys()])
  })

  it('an item that timed out in the queue is not dropped: it asks again after a release', async () => {
    const { controller, clock } = makeController({ maxConcurrency: 2, maxQueueDepth: 10, maxQueueWaitMs: 50 })
    const held = [admitNow(controller), admitNow(controller)]
    // Somebody queued first, so map's item joins the queue behind them.
    const queued = controller.admit(0)
    const { box, finished } = consume(controller.map([...Array(10).keys()], async (item) => item))
    await settle()
    expect(controller.queueDepth).toBe(2)
    clock.advance(60)
    await settle()
    expect(controller.stats().rejections.queue_timeout).toBe(2)
    expect('reason' in (await queued)).toBe(true)
    expect(box.results).toEqual([])
    held[0]!.release()
    await finished
    expect(box.error).toBeUndefined()
    expect([...box.results].sort((a, b) => a - b)).toEqual([...Array(10).keys()])
    held[1]!.release()
  })

  it('a shed with nothing in flight is retried on a backoff timer until admitted', async () => {
    const { controller, clock } = makeController(
      {
        maxConcurrency: 4,
        latencyThresholdMs: 600,
        latencyMinSamples: 1,
        latencyWindowMs: 1_000_000,
        // Off: the test counts the backoff's timer alone.
        eventLoopShedding: false,
      },
      5,
    )
    // One slow request puts p99 above the threshold: arrivals are shed with probability 2/3.
    const slow = admitNow(controller)
    clock.advance(1000)
    slow.release()
    const { box, finished } = consume(controller.map([...Array(20).keys()], async (item) => item))
    await settle()
    expect(clock.pendingTimers).toBe(1)
    for (let step = 0; step < 5000 && !box.done; step++) {
      await settle()
      clock.advance(50)
    }
    if (!box.done) throw new Error('the items were not all admitted in 250 s of clock time')
    await finished
    expect(controller.stats().rejections.latency).toBeGreaterThan(0)
    expect([...box.results].sort((a, b) => a - b)).toEqual([...Array(20).keys()])
  })

  it('ends with shutting_down when the controller closes while items wait', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 0 })
    const held = admitNow(controller)
    const { box, finished } = consume(controller.map([1, 2, 3], async (item) => item))
    await settle()
    void controller.close()
    await finished
    expect(box.error).toBeInstanceOf(BackpressureError)
    expect((box.error as BackpressureError).reason).toBe('shutting_down')
    held.release()
  })

  it('takes sync iterables and hands fn the priority-admitted items with a signal', async () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const priorities: number[] = []
    controller.on('admit', (event) => priorities.push(event.priority))
    const seen: boolean[] = []
    const results: string[] = []
    for await (const value of controller.map(
      new Set(['a', 'b', 'c']),
      (item, signal) => {
        seen.push(signal instanceof AbortSignal && !signal.aborted)
        return item.toUpperCase()
      },
      { priority: 7, ordered: true },
    )) {
      results.push(value)
    }
    expect(results).toEqual(['A', 'B', 'C'])
    expect(seen).toEqual([true, true, true])
    expect(priorities).toEqual([7, 7, 7])
  })

  it('hands the one signal to more than 10 fns at once without a MaxListenersExceededWarning', async () => {
    const warnings = captureWarnings()
    try {
      const { controller } = makeController({ maxConcurrency: 30 })
      const work = manualWork<number>()
      const { box, finished } = consume(
        controller.map([...Array(30).keys()], (item, signal) => {
          // What fetch or a database driver does with the signal it is given.
          signal.addEventListener('abort', () => {})
          return work.fn(item, signal)
        }),
      )
      await settle()
      expect(work.state.running).toBe(30)
      for (const job of [...work.pending]) job.resolve(job.item)
      await finished
      expect(box.results).toHaveLength(30)
      await settle()
      expect(warnings.mock.calls.map((call) => String(call[0]))).toEqual([])
    } finally {
      warnings.mockRestore()
    }
  })

  it('refuses bad arguments and options at the call, naming them', () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const fn = async (item: number) => item
    const bad: [() => unknown, string][] = [
      [() => controller.map(42 as never, fn), 'source'],
      [() => controller.map([1], 'nope' as never), 'fn'],
      [() => controller.map([1], fn, { ordered: 'yes' as never }), 'ordered'],
      [() => controller.map([1], fn, { priority: Number.NaN }), 'priority'],
      [() => controller.map([1], fn, { priority: Number.POSITIVE_INFINITY }), 'priority'],
      [() => controller.map([1], fn, { signal: {} as never }), 'signal'],
      [() => controller.map([1], fn, { order: true } as never), 'order'],
      [() => controller.map([1], fn, null as never), 'options'],
    ]
    for (const [call, option] of bad) {
      let error: unknown
      try {
        call()
      } catch (caught) {
        error = caught
      }
      expect(error, option).toBeInstanceOf(InvalidOptionError)
      expect((error as InvalidOptionError).option).toBe(option)
    }
  })
})
