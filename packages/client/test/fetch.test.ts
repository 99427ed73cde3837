import { describe, expect, it } from 'vitest'
import {
  AdaptiveThrottle,
  createFetch,
  RetryBudget,
  RetryError,
  type RetryEvent,
  ThrottledError,
} from '../src/index.js'
import {
  ManualClock,
  networkError,
  rejection,
  scriptedFetch,
  seededRandom,
  settle,
  status,
} from './helpers.js'

const url = 'http://api.test/items/1'

function setup(steps: Parameters<typeof scriptedFetch>[1], options: Parameters<typeof createFetch>[0] = {}) {
  const clock = new ManualClock()
  const server = scriptedFetch(clock, steps)
  // No budget unless a test is about the budget: a fresh client's budget holds only one retry.
  const client = createFetch({
    fetch: server.fetch,
    clock,
    random: seededRandom(42),
    budget: false,
    ...options,
  })
  return { clock, calls: server.calls, client }
}

describe('createFetch: Retry-After', () => {
  it('waits at least the delay-seconds before retrying', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': '2' }), status(200)])
    const response = await settle(clock, client(url))
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(2)
    const gap = calls[1]!.at - calls[0]!.at
    expect(gap).toBeGreaterThanOrEqual(2000)
    expect(gap).toBeLessThanOrEqual(2400)
  })

  it('waits until an HTTP-date', async () => {
    const clock = new ManualClock(Date.parse('Sun, 06 Nov 1994 08:49:37 GMT'))
    const server = scriptedFetch(clock, [
      status(429, { 'retry-after': 'Sun, 06 Nov 1994 08:49:40 GMT' }),
      status(200),
    ])
    const client = createFetch({ fetch: server.fetch, clock, retryAfterJitter: 0 })
    await settle(clock, client(url))
    expect(server.calls[1]!.at - server.calls[0]!.at).toBe(3000)
  })

  it('ignores an invalid Retry-After and backs off instead', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': 'soon' }), status(200)], {
      baseDelayMs: 100,
    })
    await settle(clock, client(url))
    expect(calls[1]!.at - calls[0]!.at).toBeLessThan(100)
  })

  it('gives up at once when Retry-After is above maxRetryAfterMs', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': '31' }), status(200)])
    const error = await rejection(clock, client(url))
    expect(error).toBeInstanceOf(RetryError)
    expect(error).toMatchObject({
      reason: 'retry_after_too_long',
      attempts: 1,
      totalDelayMs: 0,
      retryAfterMs: 31_000,
    })
    expect(calls).toHaveLength(1)
    expect(clock.pendingTimers).toBe(0)
  })

  it('waits out a long Retry-After when the cap allows it', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': '120' }), status(200)], {
      maxRetryAfterMs: Number.POSITIVE_INFINITY,
    })
    await settle(clock, client(url))
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(120_000)
  })
})

describe('createFetch: what is retried', () => {
  it('retries 503, 429 and network errors, and returns other statuses untouched', async () => {
    const { clock, calls, client } = setup([status(503), status(429), networkError(), status(500)], {
      maxAttempts: 5,
    })
    const response = await settle(clock, client(url))
    expect(response.status).toBe(500)
    expect(calls).toHaveLength(4)
  })

  it('retries 502 and 504 only when configured', async () => {
    const plain = setup([status(502), status(200)])
    expect((await settle(plain.clock, plain.client(url))).status).toBe(502)
    const gateway = setup([status(502), status(504), status(200)], { retryStatusCodes: [429, 502, 503, 504] })
    expect((await settle(gateway.clock, gateway.client(url))).status).toBe(200)
    expect(gateway.calls).toHaveLength(3)
  })

  it('does not retry an error that is not a network error', async () => {
    const { clock, calls, client } = setup([new TypeError('Invalid URL'), status(200)])
    const error = await rejection(clock, client(url))
    expect(error).toBeInstanceOf(TypeError)
    expect(calls).toHaveLength(1)
  })

  it('retries what retryOnError accepts', async () => {
    const { clock, calls, client } = setup([new Error('flaky'), status(200)], {
      retryOnError: (error) => error instanceof Error && error.message === 'flaky',
    })
    expect((await settle(clock, client(url))).status).toBe(200)
    expect(calls).toHaveLength(2)
  })

  it.each(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'get'])(
    'retries the idempotent method %s',
    async (method) => {
      const { clock, calls, client } = setup([status(503), status(204)])
      await settle(clock, client(url, { method }))
      expect(calls).toHaveLength(2)
    },
  )

  it('never retries a plain POST or PATCH, and returns its 503 as is', async () => {
    for (const method of ['POST', 'PATCH']) {
      const { clock, calls, client } = setup([status(503, { 'retry-after': '1' }, 'busy'), status(200)])
      const response = await settle(clock, client(url, { method, body: '{}' }))
      expect(response.status).toBe(503)
      expect(await response.text()).toBe('busy')
      expect(calls).toHaveLength(1)
    }
  })

  it('retries a POST carrying an Idempotency-Key, replaying its body', async () => {
    const { clock, calls, client } = setup([status(503), status(201)])
    const response = await settle(
      clock,
      client(url, { method: 'POST', body: '{"n":1}', headers: { 'Idempotency-Key': 'order-7' } }),
    )
    expect(response.status).toBe(201)
    expect(calls.map((call) => call.body)).toEqual(['{"n":1}', '{"n":1}'])
  })

  it('honours retryMethods', async () => {
    const { clock, calls, client } = setup([status(503), status(200)], { retryMethods: ['GET'] })
    expect((await settle(clock, client(url, { method: 'PUT', body: 'x' }))).status).toBe(503)
    expect(calls).toHaveLength(1)
  })

  it('replays every kind of replayable body', async () => {
    const bodies: [NonNullable<RequestInit['body']>, string][] = [
      ['text', 'text'],
      [new URLSearchParams({ a: '1' }), 'a=1'],
      [new Blob(['blob']), 'blob'],
      [new TextEncoder().encode('bytes'), 'bytes'],
      [new TextEncoder().encode('buffer').buffer, 'buffer'],
    ]
    for (const [body, text] of bodies) {
      const { clock, calls, client } = setup([status(503), status(200)])
      await settle(clock, client(url, { method: 'PUT', body }))
      expect(calls.map((call) => call.body)).toEqual([text, text])
    }
  })

  it('does not retry a stream body, which cannot be sent twice', async () => {
    const { clock, calls, client } = setup([status(503), status(200)])
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('once'))
        controller.close()
      },
    })
    const response = await settle(clock, client(url, { method: 'PUT', body, duplex: 'half' } as RequestInit))
    expect(response.status).toBe(503)
    expect(calls).toHaveLength(1)
    expect(calls[0]!.body).toBe('once')
  })

  it('replays a Request body from a fresh clone per attempt', async () => {
    const { clock, calls, client } = setup([status(503), status(503), status(200)])
    const request = new Request(url, { method: 'PUT', body: 'payload', headers: { 'x-trace': '1' } })
    expect((await settle(clock, client(request))).status).toBe(200)
    expect(calls.map((call) => [call.method, call.body, call.headers.get('x-trace')])).toEqual([
      ['PUT', 'payload', '1'],
      ['PUT', 'payload', '1'],
      ['PUT', 'payload', '1'],
    ])
    expect(request.bodyUsed).toBe(false)
  })

  it('does not retry a Request whose body was already read', async () => {
    const { clock, calls, client } = setup([status(503), status(200)])
    const request = new Request(url, { method: 'PUT', body: 'payload' })
    await request.text()
    await expect(settle(clock, client(request))).rejects.toThrow(TypeError)
    expect(calls).toHaveLength(0)
  })

  it('drains the body of every response it retries', async () => {
    const retried = status(503, {}, 'busy')
    const { clock, client } = setup([() => retried, status(200)])
    await settle(clock, client(url))
    expect(retried.bodyUsed).toBe(true)
  })
})

describe('createFetch: giving up', () => {
  it('fails with a RetryError after maxAttempts, reporting what happened', async () => {
    const events: RetryEvent[] = []
    const { clock, calls, client } = setup([status(503, { 'retry-after': '1' })], {
      onRetry: (event) => events.push(event),
    })
    const start = clock.now()
    const error = (await rejection(clock, client(url))) as RetryError
    expect(RetryError.is(error)).toBe(true)
    expect(error).toMatchObject({
      name: 'RetryError',
      code: 'BP_ERR_RETRY_FAILED',
      reason: 'max_attempts',
      attempts: 3,
      lastStatus: 503,
      retryAfterMs: 1000,
      cause: undefined,
    })
    expect(calls).toHaveLength(3)
    expect(error.totalDelayMs).toBe(clock.now() - start)
    expect(error.totalDelayMs).toBe(events[0]!.delayMs + events[1]!.delayMs)
    expect(error.message).toMatch(
      /^Gave up after 3 attempts \(max_attempts\): last status 503, waited \d+ ms$/,
    )
    expect(events.map((event) => [event.attempt, event.status, event.retryAfterMs])).toEqual([
      [1, 503, 1000],
      [2, 503, 1000],
    ])
  })

  it('keeps the last network error as the cause', async () => {
    const failure = networkError('ECONNRESET')
    const { clock, client } = setup([failure], { maxAttempts: 2 })
    const error = (await rejection(clock, client(url))) as RetryError
    expect(error).toMatchObject({
      reason: 'max_attempts',
      attempts: 2,
      lastStatus: undefined,
      cause: failure,
    })
  })

  it('makes a single attempt with maxAttempts: 1', async () => {
    const { clock, calls, client } = setup([status(503)], { maxAttempts: 1 })
    expect(await rejection(clock, client(url))).toMatchObject({ reason: 'max_attempts', attempts: 1 })
    expect(calls).toHaveLength(1)
  })
})

describe('createFetch: budget and throttling', () => {
  it('stops retrying when the shared budget is spent', async () => {
    const budget = new RetryBudget({ ratio: 0.5, minRetriesPerSecond: 0, clock: new ManualClock() })
    const { clock, calls, client } = setup([status(503)], { budget, maxAttempts: 10 })
    // One request earns half a retry; the second earns the other half.
    const first = (await rejection(clock, client(url))) as RetryError
    expect(first).toMatchObject({ reason: 'budget_exhausted', attempts: 1 })
    const second = (await rejection(clock, client(url))) as RetryError
    expect(second).toMatchObject({ reason: 'budget_exhausted', attempts: 2 })
    expect(calls).toHaveLength(3)
  })

  it('shares one budget between clients', async () => {
    const clock = new ManualClock()
    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0.1, windowMs: 10_000, clock })
    const server = scriptedFetch(clock, [status(503)])
    const a = createFetch({ fetch: server.fetch, clock, budget })
    const b = createFetch({ fetch: server.fetch, clock, budget })
    expect(await rejection(clock, a(url))).toMatchObject({ reason: 'budget_exhausted', attempts: 2 })
    expect(await rejection(clock, b(url))).toMatchObject({ reason: 'budget_exhausted', attempts: 1 })
  })

  it('gives each client a default budget that caps retries at about 10 % of requests', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [status(503)])
    const client = createFetch({ fetch: server.fetch, clock })
    const calls = Array.from({ length: 200 }, () => client(url))
    await settle(clock, Promise.allSettled(calls))
    // 200 requests earn 20 retries; the floor of one retry per 10 s window is not added on top.
    expect(server.calls).toHaveLength(220)
  })

  it('can run without a budget', async () => {
    const { clock, calls, client } = setup([status(503)])
    for (let i = 0; i < 20; i++) await rejection(clock, client(url))
    expect(calls).toHaveLength(60)
  })

  it('rejects locally, before sending, while the server rejects most requests', async () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ clock, random: seededRandom(5) })
    const server = scriptedFetch(clock, [status(503)])
    const client = createFetch({ fetch: server.fetch, clock, throttle, budget: false, maxAttempts: 1 })
    let throttled = 0
    for (let i = 0; i < 200; i++) {
      const error = await rejection(clock, client(url))
      if (ThrottledError.is(error)) {
        throttled++
        expect(error).toMatchObject({ code: 'BP_ERR_CLIENT_THROTTLED' })
      } else expect(error).toBeInstanceOf(RetryError)
    }
    // Each with the capped probability (0.8) once the window holds minRequests: the rest keep probing.
    expect(throttled).toBeGreaterThan(140)
    expect(throttle.rejectionProbability()).toBe(0.8)
    expect(server.calls.length).toBe(200 - throttled)
  })

  it('does not throttle a healthy server, and counts non-overload errors as accepts', async () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ clock, random: () => 0 })
    const server = scriptedFetch(clock, [status(200), status(404), status(500)])
    const client = createFetch({ fetch: server.fetch, clock, throttle })
    for (let i = 0; i < 50; i++) await settle(clock, client(url))
    expect(throttle.rejectionProbability()).toBe(0)
  })

  it('reports a throttled retry as a RetryError', async () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ minRequests: 0, clock, random: () => 0 })
    const server = scriptedFetch(clock, [status(503)])
    const client = createFetch({ fetch: server.fetch, clock, throttle, random: seededRandom(1) })
    const error = await rejection(clock, client(url))
    expect(error).toMatchObject({ reason: 'throttled', attempts: 1, lastStatus: 503 })
  })
})

describe('createFetch: abort and deadline', () => {
  it('ends a wait at once when the signal aborts, leaving no timer behind', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': '10' }), status(200)])
    const controller = new AbortController()
    const pending = client(url, { signal: controller.signal })
    const outcome = pending.then(
      () => 'resolved',
      (error: unknown) => error,
    )
    await settle(clock, Promise.resolve())
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(calls).toHaveLength(1)
    expect(clock.pendingTimers).toBe(1)
    clock.advance(500)
    const reason = new Error('caller went away')
    controller.abort(reason)
    expect(await outcome).toBe(reason)
    expect(clock.pendingTimers).toBe(0)
    expect(calls).toHaveLength(1)
  })

  it('rejects without sending when the signal is already aborted', async () => {
    const { clock, calls, client } = setup([status(200)])
    const error = await rejection(clock, client(url, { signal: AbortSignal.abort(new Error('gone')) }))
    expect(error).toMatchObject({ message: 'gone' })
    expect(calls).toHaveLength(0)
  })

  it('passes a signal to every attempt that follows the caller’s', async () => {
    const controller = new AbortController()
    const { clock, calls, client } = setup([status(503), status(200)])
    await settle(clock, client(new Request(url, { signal: controller.signal })))
    expect(calls.every((call) => call.signal !== undefined && !call.signal.aborted)).toBe(true)
    controller.abort()
    expect(calls.every((call) => call.signal?.aborted)).toBe(true)
  })

  it('does not start a wait that would end past the deadline', async () => {
    const { clock, calls, client } = setup([status(503, { 'retry-after': '2' }), status(200)], {
      timeoutMs: 1500,
    })
    const start = clock.now()
    const error = await rejection(clock, client(url))
    expect(error).toMatchObject({ reason: 'deadline', attempts: 1, lastStatus: 503, totalDelayMs: 0 })
    expect(clock.now()).toBe(start)
    expect(calls).toHaveLength(1)
    expect(clock.pendingTimers).toBe(0)
  })

  it('aborts an attempt still running at the deadline', async () => {
    const clock = new ManualClock()
    const hanging = (_input: string | URL | Request, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))
      })
    const client = createFetch({ fetch: hanging, clock, timeoutMs: 1000 })
    const start = clock.now()
    const error = (await rejection(clock, client(url))) as RetryError
    expect(error).toMatchObject({ reason: 'deadline', attempts: 1 })
    expect((error.cause as DOMException).name).toBe('TimeoutError')
    expect(clock.now() - start).toBe(1000)
  })
})

describe('createFetch: signature', () => {
  it('is a drop-in for fetch and looks up the global fetch per call', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [status(200)])
    const original = globalThis.fetch
    const client: typeof fetch = createFetch({ clock })
    globalThis.fetch = server.fetch
    try {
      await settle(clock, client(new URL(url), { headers: { accept: 'application/json' } }))
    } finally {
      globalThis.fetch = original
    }
    expect(server.calls[0]!.headers.get('accept')).toBe('application/json')
  })
})
