import { describe, expect, it } from 'vitest'
import { type AttemptInfo, createRetry, RetryBudget, type RetryError, retry } from '../src/index.js'
import { ManualClock, networkError, rejection, seededRandom, settle, status } from './helpers.js'

/** Shaped like core's BackpressureError: what our own servers throw in-process. */
function overloaded(retryAfterSeconds: number): Error {
  return Object.assign(new Error('overloaded'), {
    status: 503,
    statusCode: 503,
    headers: { 'Retry-After': String(retryAfterSeconds) },
  })
}

function script<T>(clock: ManualClock, outcomes: (T | Error)[]) {
  const attempts: { at: number; info: AttemptInfo }[] = []
  const fn = async (info: AttemptInfo): Promise<T> => {
    attempts.push({ at: clock.now(), info })
    const outcome = outcomes[Math.min(attempts.length - 1, outcomes.length - 1)]!
    if (outcome instanceof Error) throw outcome
    return outcome
  }
  return { fn, attempts }
}

describe('retry', () => {
  it('retries an error carrying a retryable status, no earlier than its Retry-After', async () => {
    const clock = new ManualClock()
    const { fn, attempts } = script(clock, [overloaded(3), 'done'])
    expect(await settle(clock, retry(fn, { clock, random: seededRandom(1) }))).toBe('done')
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(3000)
    expect(attempts.map((attempt) => attempt.info.attempt)).toEqual([1, 2])
  })

  it('reads status and headers from error.response (ky, got, axios)', async () => {
    const clock = new ManualClock()
    const error = Object.assign(new Error('HTTP 429'), { response: status(429, { 'retry-after': '4' }) })
    const { fn, attempts } = script(clock, [error, 'done'])
    await settle(clock, retry(fn, { clock, retryAfterJitter: 0 }))
    expect(attempts[1]!.at - attempts[0]!.at).toBe(4000)
  })

  it('retries a returned Response with a retryable status and hands back the final one', async () => {
    const clock = new ManualClock()
    const first = status(503, { 'retry-after': '1' })
    const { fn, attempts } = script(clock, [first, status(200)])
    const response = await settle(clock, retry(fn, { clock }))
    expect(response.status).toBe(200)
    expect(attempts).toHaveLength(2)
    expect(first.bodyUsed).toBe(true)
  })

  it('throws any other error at once', async () => {
    const clock = new ManualClock()
    const failure = Object.assign(new Error('not found'), { status: 404 })
    const { fn, attempts } = script(clock, [failure])
    expect(await rejection(clock, retry(fn, { clock }))).toBe(failure)
    const plain = script(clock, [new RangeError('bad input')])
    expect(await rejection(clock, retry(plain.fn, { clock }))).toBeInstanceOf(RangeError)
    expect(attempts.length + plain.attempts.length).toBe(2)
  })

  it('retries network errors by default and what retryOnError accepts', async () => {
    const clock = new ManualClock()
    const network = script(clock, [networkError('ECONNRESET'), 'ok'])
    expect(await settle(clock, retry(network.fn, { clock }))).toBe('ok')
    const custom = script(clock, [new Error('deadlock'), 'ok'])
    expect(
      await settle(
        clock,
        retry(custom.fn, { clock, retryOnError: (e) => (e as Error).message === 'deadlock' }),
      ),
    ).toBe('ok')
  })

  it('accepts a synchronous function', async () => {
    const clock = new ManualClock()
    expect(
      await settle(
        clock,
        retry(() => 7, { clock }),
      ),
    ).toBe(7)
  })

  it('has no budget of its own, but charges a shared one', async () => {
    const clock = new ManualClock()
    const unbudgeted = script(clock, [overloaded(1)])
    for (let i = 0; i < 10; i++) await rejection(clock, retry(unbudgeted.fn, { clock }))
    expect(unbudgeted.attempts).toHaveLength(30)

    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0.1, windowMs: 10_000, clock })
    const budgeted = script(clock, [overloaded(1)])
    const errors = []
    for (let i = 0; i < 3; i++) errors.push(await rejection(clock, retry(budgeted.fn, { clock, budget })))
    expect(errors.map((error) => (error as RetryError).reason)).toEqual([
      'budget_exhausted',
      'budget_exhausted',
      'budget_exhausted',
    ])
    expect(budgeted.attempts).toHaveLength(4)
  })

  it('gives up with the last error as cause and its status', async () => {
    const clock = new ManualClock()
    const last = overloaded(1)
    const { fn } = script(clock, [overloaded(1), last])
    const error = (await rejection(clock, retry(fn, { clock, maxAttempts: 2 }))) as RetryError
    expect(error).toMatchObject({
      reason: 'max_attempts',
      attempts: 2,
      lastStatus: 503,
      retryAfterMs: 1000,
      cause: last,
    })
  })

  it('aborts a wait at once and gives the attempt a signal', async () => {
    const clock = new ManualClock()
    const controller = new AbortController()
    const { fn, attempts } = script(clock, [overloaded(5)])
    const outcome = retry(fn, { clock, signal: controller.signal }).catch((error: unknown) => error)
    await settle(clock, Promise.resolve())
    await new Promise((resolve) => setImmediate(resolve))
    expect(attempts[0]!.info.signal).toBe(controller.signal)
    controller.abort(new Error('stop'))
    expect(await outcome).toMatchObject({ message: 'stop' })
    expect(clock.pendingTimers).toBe(0)
  })

  it('rejects (rather than throws) for invalid arguments', async () => {
    const pending = retry(() => 1, { maxAttempts: 0 })
    await expect(pending).rejects.toMatchObject({ code: 'BP_ERR_INVALID_OPTION' })
    await expect(retry(42 as never)).rejects.toThrow('Expected `fn` to be a function, got `42` (number)')
  })
})

describe('createRetry', () => {
  it('shares one budget between all its calls', async () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0.2, windowMs: 10_000, clock })
    const withRetry = createRetry({ clock, budget, maxAttempts: 5 })
    const { fn, attempts } = script(clock, [overloaded(1)])
    await rejection(clock, withRetry(fn))
    await rejection(clock, withRetry(fn))
    expect(attempts).toHaveLength(4)
  })

  it('makes its own budget when given none', async () => {
    const clock = new ManualClock()
    const withRetry = createRetry({ clock, maxAttempts: 3 })
    const { fn, attempts } = script(clock, [overloaded(1)])
    const calls = Array.from({ length: 50 }, () => withRetry(fn))
    await settle(clock, Promise.allSettled(calls))
    // 50 requests earn 5 retries; the floor of one retry per 10 s window is not added on top.
    expect(attempts).toHaveLength(55)
  })

  it('takes a signal per call', async () => {
    const clock = new ManualClock()
    const withRetry = createRetry({ clock })
    await expect(withRetry(() => 1, { signal: AbortSignal.abort(new Error('no')) })).rejects.toThrow('no')
    await expect(withRetry(() => 1, { signal: 'soon' as never })).rejects.toThrow(
      'Expected `signal` to be an AbortSignal, got `"soon"` (string)',
    )
  })
})
