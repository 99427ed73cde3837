import { createReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { BackpressureError, InvalidOptionError } from '../src/index.js'
import { admitNow, captureWarnings, makeController } from './helpers.js'
import { manualWork, settle } from './streams-helpers.js'

/** Splits a byte stream into lines (the last one may lack its newline). */
async function* lines(source: AsyncIterable<Buffer>): AsyncGenerator<string> {
  let rest = ''
  for await (const chunk of source) {
    const parts = (rest + chunk.toString('utf8')).split('\n')
    rest = parts.pop()!
    yield* parts
  }
  if (rest !== '') yield rest
}

/** A generated object source that counts what was pulled from it. */
function countedReadable(count: number) {
  const state = { pulled: 0 }
  const readable = Readable.from(
    (function* () {
      for (let i = 0; i < count; i++) {
        state.pulled++
        yield i
      }
    })(),
    { highWaterMark: 1 },
  )
  return { readable, state }
}

let dir: string | undefined
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

describe('controller.writable', () => {
  it('runs up to the limit at once and calls back when there is room: the piped source pauses', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const work = manualWork<number>()
    const { readable, state } = countedReadable(200)
    const writable = controller.writable(work.fn, { highWaterMark: 2 })
    const done = pipeline(readable, writable)
    for (let round = 0; round < 10; round++) await settle()
    expect(work.state.running).toBe(3)
    // In flight 3, one waiting for its permit, 2 buffered by the writable, and the readable's own
    // buffer of 1 plus the one being read: nothing more is pulled while the work waits.
    const heldBack = state.pulled
    expect(heldBack).toBeLessThanOrEqual(3 + 1 + 2 + 2)
    for (let round = 0; round < 10; round++) await settle()
    expect(state.pulled).toBe(heldBack)
    while (work.all.length < 200 || work.pending.length > 0) {
      expect(controller.inFlight).toBeLessThanOrEqual(3)
      expect(state.pulled - work.all.length).toBeLessThanOrEqual(1 + 2 + 2)
      for (const job of [...work.pending]) job.resolve(job.item)
      await settle()
    }
    await done
    expect(work.state.maxRunning).toBe(3)
    expect(work.all.map((job) => job.item)).toEqual([...Array(200).keys()])
    expect(controller.inFlight).toBe(0)
  })

  it('write() returns false once the buffer reaches the high-water mark, true again after drain', async () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    const work = manualWork<string>()
    const writable = controller.writable(work.fn, { highWaterMark: 2 })
    expect(writable.writableObjectMode).toBe(true)
    expect(writable.write('a')).toBe(true)
    expect(writable.write('b')).toBe(false)
    await settle()
    // 'a' started (its callback came at once), 'b' waits for a permit.
    expect(work.all.map((job) => job.item)).toEqual(['a'])
    const drained = new Promise((resolve) => writable.once('drain', resolve))
    work.all[0]!.resolve('a')
    await drained
    await settle()
    expect(work.all.map((job) => job.item)).toEqual(['a', 'b'])
    work.all[1]!.resolve('b')
    writable.end()
    await new Promise((resolve) => writable.once('finish', resolve))
  })

  it('final waits for the work in flight before finish', async () => {
    const { controller } = makeController({ maxConcurrency: 4 })
    const work = manualWork<number>()
    const writable = controller.writable(work.fn)
    let finished = false
    writable.on('finish', () => {
      finished = true
    })
    writable.write(1)
    writable.write(2)
    writable.end()
    for (let round = 0; round < 5; round++) await settle()
    expect(work.state.running).toBe(2)
    expect(finished).toBe(false)
    work.all[0]!.resolve(1)
    await settle()
    expect(finished).toBe(false)
    work.all[1]!.resolve(2)
    await settle()
    expect(finished).toBe(true)
    expect(controller.inFlight).toBe(0)
  })

  it('pipes a real file through pipeline, every line once, never above the limit', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-writable-'))
    const file = join(dir, 'rows.csv')
    const count = 5000
    await writeFile(file, `${Array.from({ length: count }, (_, i) => `${i},row-${i}`).join('\n')}\n`)
    const { controller } = makeController({ maxConcurrency: 8 })
    const seen = new Set<number>()
    let running = 0
    let maxRunning = 0
    const insert = async (line: string) => {
      running++
      maxRunning = Math.max(maxRunning, running)
      await settle()
      seen.add(Number(line.split(',')[0]))
      running--
    }
    // A small read buffer, so the file is read in many chunks while the sink is busy.
    await pipeline(createReadStream(file, { highWaterMark: 1024 }), lines, controller.writable(insert))
    expect(seen.size).toBe(count)
    expect(maxRunning).toBeLessThanOrEqual(8)
    expect(maxRunning).toBeGreaterThan(1)
    expect(controller.inFlight).toBe(0)
  })

  it('an error from fn destroys the stream with it: pipeline rejects after the work in flight, the source is destroyed', async () => {
    const { controller } = makeController({ maxConcurrency: 3 })
    const work = manualWork<number>()
    const { readable } = countedReadable(100)
    const writable = controller.writable(work.fn)
    const boom = new Error('insert failed')
    let outcome: unknown
    const done = pipeline(readable, writable).catch((error) => {
      outcome = error
    })
    for (let round = 0; round < 5; round++) await settle()
    const [first, second, third] = work.all
    second!.reject(boom)
    await settle()
    expect(first!.signal.aborted).toBe(true)
    expect(third!.signal.aborted).toBe(true)
    // Destroy waits for the aborted work before the stream closes.
    expect(outcome).toBeUndefined()
    first!.resolve(0)
    third!.reject(new Error('aborted'))
    await done
    expect(outcome).toBe(boom)
    expect(readable.destroyed).toBe(true)
    expect(controller.inFlight).toBe(0)
    expect(work.all).toHaveLength(3)
  })

  it('a chunk turned away (queue full) is not dropped: it waits for a release', async () => {
    const { controller } = makeController({ maxConcurrency: 2, maxQueueDepth: 1 })
    const held = [admitNow(controller), admitNow(controller)]
    const queued = controller.admit(0)
    const seen: number[] = []
    const done = pipeline(
      countedReadable(20).readable,
      controller.writable(async (item: number) => {
        seen.push(item)
      }),
    )
    for (let round = 0; round < 5; round++) await settle()
    expect(controller.stats().rejections.queue_full).toBe(1)
    expect(seen).toEqual([])
    for (const permit of held) permit.release()
    ;((await queued) as { release(): void }).release()
    await done
    expect(seen).toEqual([...Array(20).keys()])
  })

  it('aborting the signal destroys the stream and aborts the work in flight', async () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const work = manualWork<number>()
    const abort = new AbortController()
    const writable = controller.writable(work.fn, { signal: abort.signal })
    let outcome: unknown
    const done = pipeline(countedReadable(50).readable, writable).catch((error) => {
      outcome = error
    })
    for (let round = 0; round < 5; round++) await settle()
    expect(work.state.running).toBe(2)
    abort.abort(new Error('cancelled'))
    await settle()
    expect(work.all.every((job) => job.signal.aborted)).toBe(true)
    for (const job of [...work.pending]) job.resolve(job.item)
    await done
    expect((outcome as Error).name).toBe('AbortError')
    expect(((outcome as Error).cause as Error).message).toBe('cancelled')
    expect(controller.inFlight).toBe(0)
  })

  it('errors with shutting_down when the controller closes while a chunk waits', async () => {
    const { controller } = makeController({ maxConcurrency: 1, maxQueueDepth: 0 })
    const held = admitNow(controller)
    let outcome: unknown
    const done = pipeline(
      countedReadable(5).readable,
      controller.writable(async () => {}),
    ).catch((error) => {
      outcome = error
    })
    await settle()
    void controller.close()
    await done
    expect(outcome).toBeInstanceOf(BackpressureError)
    expect((outcome as BackpressureError).reason).toBe('shutting_down')
    held.release()
  })

  it('hands the one signal to more than 10 fns at once without a MaxListenersExceededWarning', async () => {
    const warnings = captureWarnings()
    try {
      const { controller } = makeController({ maxConcurrency: 30 })
      const work = manualWork<number>()
      const writable = controller.writable((item: number, signal) => {
        signal.addEventListener('abort', () => {})
        return work.fn(item, signal)
      })
      const done = pipeline(countedReadable(30).readable, writable)
      for (let round = 0; round < 5; round++) await settle()
      expect(work.state.running).toBe(30)
      for (const job of [...work.pending]) job.resolve(job.item)
      await done
      await settle()
      expect(warnings.mock.calls.map((call) => String(call[0]))).toEqual([])
    } finally {
      warnings.mockRestore()
    }
  })

  it('destroyed while a chunk waits for its permit: the chunk never starts, no permit is taken', async () => {
    const { controller } = makeController({ maxConcurrency: 1 })
    const held = admitNow(controller)
    const started: number[] = []
    const writable = controller.writable(async (item: number) => {
      started.push(item)
    })
    writable.on('error', () => {})
    writable.write(1)
    await settle()
    writable.destroy()
    await settle()
    held.release()
    for (let round = 0; round < 5; round++) await settle()
    expect(started).toEqual([])
    expect(controller.inFlight).toBe(0)
  })

  it('leaves the signal it handed fn unaborted when every chunk was written (as map does)', async () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const signals: AbortSignal[] = []
    const writable = controller.writable(async (_item: number, signal) => {
      signals.push(signal)
    })
    await pipeline(countedReadable(5).readable, writable)
    await settle()
    expect(writable.destroyed).toBe(true)
    expect(signals).toHaveLength(5)
    expect(signals[0]!.aborted).toBe(false)
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
    // The first 2000 chunks are fast (the limit grows), the last 600 slow (it shrinks).
    const starts: { item: number; inFlight: number; limit: number }[] = []
    const writable = controller.writable(
      (item: number) => {
        starts.push({ item, inFlight: controller.inFlight, limit: controller.limit })
        return new Promise<void>((resolve) => clock.setTimeout(resolve, item < 2000 ? 2 : 30))
      },
      { highWaterMark: 4 },
    )
    let finished = false
    const done = pipeline(countedReadable(2600).readable, writable).then(() => {
      finished = true
    })
    for (let ms = 0; !finished && ms < 20_000; ms++) {
      await settle()
      clock.advance(1)
    }
    if (!finished) throw new Error('the stream did not finish in 20 s of clock time')
    await done
    expect(starts).toHaveLength(2600)
    for (const start of starts) expect(start.inFlight).toBeLessThanOrEqual(start.limit)
    const peak = Math.max(...limits)
    expect(peak).toBeGreaterThan(10)
    expect(Math.min(...limits.slice(limits.indexOf(peak)))).toBeLessThan(10)
    expect(
      Math.max(...starts.filter((start) => start.item < 2000).map((start) => start.inFlight)),
    ).toBeGreaterThan(10)
    expect(Math.max(...starts.slice(-100).map((start) => start.inFlight))).toBeLessThan(10)
  })

  it('refuses bad arguments and options at the call, naming them', () => {
    const { controller } = makeController({ maxConcurrency: 2 })
    const fn = async () => {}
    const bad: [() => unknown, string][] = [
      [() => controller.writable('nope' as never), 'fn'],
      [() => controller.writable(fn, { highWaterMark: -1 }), 'highWaterMark'],
      [() => controller.writable(fn, { highWaterMark: 1.5 }), 'highWaterMark'],
      [() => controller.writable(fn, { priority: '1' as never }), 'priority'],
      [() => controller.writable(fn, { signal: 'x' as never }), 'signal'],
      [() => controller.writable(fn, { objectMode: false } as never), 'objectMode'],
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
