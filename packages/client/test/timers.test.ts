import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { sleep } from '../src/clock.js'
import { type Clock, createFetch, RetryError, retry, systemClock } from '../src/index.js'
import { ManualClock, rejection, settle } from './helpers.js'

// Node fires a timer longer than 2^31 − 1 ms after 1 ms, with a TimeoutOverflowWarning; a wait that
// re-arms for what is left then spins. The client must never ask for more.
const MAX_TIMER_MS = 2 ** 31 - 1
const DAY_MS = 24 * 3_600_000

/** Forwards to `clock`, writing down every delay it is asked to arm. */
function recording(clock: Clock) {
  const delays: number[] = []
  const recorder: Clock = {
    now: () => clock.now(),
    setTimeout: (callback, ms) => {
      delays.push(ms)
      return clock.setTimeout(callback, ms)
    },
    clearTimeout: (handle) => clock.clearTimeout(handle),
  }
  return { recorder, delays }
}

function overloaded(retryAfter: string): Error {
  return Object.assign(new Error('overloaded'), { status: 503, headers: { 'retry-after': retryAfter } })
}

describe('long waits on the injected clock', () => {
  it('sleeps 30 days in timers of at most 2^31 − 1 ms, and not a millisecond less', async () => {
    const clock = new ManualClock()
    const { recorder, delays } = recording(clock)
    const start = clock.now()
    await settle(clock, sleep(30 * DAY_MS, recorder, new AbortController().signal))
    expect(clock.now() - start).toBe(30 * DAY_MS)
    expect(delays).toEqual([MAX_TIMER_MS, 30 * DAY_MS - MAX_TIMER_MS])
  })

  it('waits out an infinite sleep one longest timer at a time, until aborted', async () => {
    const clock = new ManualClock()
    const { recorder, delays } = recording(clock)
    const controller = new AbortController()
    const wait = sleep(Number.POSITIVE_INFINITY, recorder, controller.signal)
    clock.advance(100 * DAY_MS)
    // 100 days is four whole timers of 24.8 days: five armed, one pending, no spinning.
    expect(delays).toEqual(new Array(5).fill(MAX_TIMER_MS))
    expect(clock.pendingTimers).toBe(1)
    controller.abort(new Error('enough'))
    await expect(wait).rejects.toThrow('enough')
    expect(clock.pendingTimers).toBe(0)
  })

  it('waits out a 30-day Retry-After when maxRetryAfterMs is Infinity', async () => {
    const clock = new ManualClock()
    const { recorder, delays } = recording(clock)
    const at: number[] = []
    const fn = () => {
      at.push(clock.now())
      if (at.length === 1) throw overloaded(String((30 * DAY_MS) / 1000))
      return 'done'
    }
    const call = retry(fn, {
      clock: recorder,
      maxRetryAfterMs: Number.POSITIVE_INFINITY,
      retryAfterJitter: 0,
    })
    expect(await settle(clock, call)).toBe('done')
    expect(at[1]! - at[0]!).toBe(30 * DAY_MS)
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER_MS)
  })

  it('keeps a 30-day deadline, and an infinite one, with timers Node accepts', async () => {
    const clock = new ManualClock()
    const { recorder, delays } = recording(clock)
    const start = clock.now()
    const hanging = ({ signal }: { signal: AbortSignal }) =>
      new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
    const error = await rejection(clock, retry(hanging, { clock: recorder, timeoutMs: 30 * DAY_MS }))
    expect(error).toMatchObject({ reason: 'deadline', attempts: 1 })
    expect(clock.now() - start).toBe(30 * DAY_MS)

    const slow = () => new Promise((resolve) => clock.setTimeout(() => resolve('done'), 1000))
    expect(await settle(clock, retry(slow, { clock: recorder, timeoutMs: Number.POSITIVE_INFINITY }))).toBe(
      'done',
    )
    expect(clock.pendingTimers).toBe(0)
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER_MS)
  })

  it('reads a Retry-After too long for a number as 2^31 seconds, not Infinity', async () => {
    const clock = new ManualClock()
    const fn = () => {
      throw overloaded('9'.repeat(400))
    }
    const error = (await rejection(clock, retry(fn, { clock }))) as RetryError
    expect(error).toBeInstanceOf(RetryError)
    expect(error).toMatchObject({ reason: 'retry_after_too_long', retryAfterMs: 2 ** 31 * 1000 })
  })
})

describe('long waits on real timers', () => {
  /** Collects the process warnings emitted while `run` runs (and a turn after, as they arrive late). */
  async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
    const names: string[] = []
    const onWarning = (warning: Error) => names.push(warning.name)
    process.on('warning', onWarning)
    try {
      await run()
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('warning', onWarning)
    }
    return names
  }

  it('arms one timer for a server asking for 3 years, without TimeoutOverflowWarning, until aborted', async () => {
    let requests = 0
    const server = createServer((_req, res) => {
      requests++
      res.writeHead(503, { 'retry-after': '99999999' }).end()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { recorder, delays } = recording(systemClock)
    const client = createFetch({ clock: recorder, maxRetryAfterMs: Number.POSITIVE_INFINITY })
    const { port } = server.address() as AddressInfo
    try {
      const warnings = await warningsDuring(async () => {
        const controller = new AbortController()
        const call = client(`http://127.0.0.1:${port}/`, { signal: controller.signal })
        await new Promise((resolve) => setTimeout(resolve, 200))
        controller.abort(new Error('enough'))
        await expect(call).rejects.toThrow('enough')
      })
      expect(requests).toBe(1)
      expect(delays).toEqual([MAX_TIMER_MS])
      expect(warnings).not.toContain('TimeoutOverflowWarning')
    } finally {
      server.close()
    }
  })

  it('lets a call finish under an infinite timeoutMs', async () => {
    const warnings = await warningsDuring(async () => {
      const fn = ({ signal }: { signal: AbortSignal }) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => resolve('done'), 50)
          signal.addEventListener('abort', () => {
            clearTimeout(timer)
            reject(signal.reason)
          })
        })
      expect(await retry(fn, { timeoutMs: Number.POSITIVE_INFINITY })).toBe('done')
    })
    expect(warnings).not.toContain('TimeoutOverflowWarning')
  })
})
