import { describe, expect, it } from 'vitest'
import {
  ClientLimitError,
  ConcurrencyLimit,
  createFetch,
  defaultConcurrencyLimit,
  InvalidOptionError,
  RetryBudget,
  RetryError,
  ThrottledError,
} from '../src/index.js'
import { flush, ManualClock, type RecordedCall, rejection, scriptedFetch, settle, status } from './helpers.js'

const url = 'http://api.test/items/1'
const origin = 'http://api.test'

/** A server double whose answers the test releases by hand; an aborted request fails as fetch's would. */
function heldServer(clock: ManualClock) {
  const pending: { call: RecordedCall; answer: (response: Response) => void }[] = []
  const server = scriptedFetch(clock, [
    (call) =>
      new Promise<Response>((resolve, reject) => {
        pending.push({ call, answer: resolve })
        call.signal?.addEventListener('abort', () => reject(call.signal?.reason), { once: true })
      }),
  ])
  return { ...server, pending }
}

function setup(limitOptions: ConstructorParameters<typeof ConcurrencyLimit>[0] = {}, clientOptions = {}) {
  const clock = new ManualClock()
  const limit = new ConcurrencyLimit({ clock, ...limitOptions })
  const server = heldServer(clock)
  const client = createFetch({
    fetch: server.fetch,
    clock,
    budget: false,
    concurrencyLimit: limit,
    ...clientOptions,
  })
  return { clock, limit, server, client }
}

describe('ConcurrencyLimit: holding and refusing', () => {
  it('holds requests past the limit and sends them, oldest first, as slots free', async () => {
    const { limit, server, client } = setup({ initialLimit: 2 })
    const calls = [1, 2, 3, 4].map((i) => client(`${url}?n=${i}`))
    await flush()
    expect(server.calls.map((call) => call.url.slice(-1))).toEqual(['1', '2'])
    expect(limit.inFlight(origin)).toBe(2)
    server.pending[0]!.answer(status(200))
    await flush()
    expect(server.calls.map((call) => call.url.slice(-1))).toEqual(['1', '2', '3'])
    for (let i = 1; i < 4; i++) {
      server.pending[i]!.answer(status(200))
      await flush()
    }
    expect((await Promise.all(calls)).map((response) => response.status)).toEqual([200, 200, 200, 200])
    expect(limit.held).toBe(2)
    expect(limit.refused).toBe(0)
    expect(limit.inFlight(origin)).toBe(0)
  })

  it('fails a request that found no slot within maxQueueWaitMs locally: ClientLimitError, never sent', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 1, maxQueueWaitMs: 50 })
    const first = client(url)
    const second = client(url)
    await flush()
    expect(server.calls).toHaveLength(1)
    clock.advance(50)
    const error = await second.catch((e: unknown) => e)
    expect(ClientLimitError.is(error)).toBe(true)
    expect(error).toMatchObject({ code: 'BP_ERR_CLIENT_LIMITED', reason: 'queue_timeout', origin, limit: 1 })
    server.pending[0]!.answer(status(200))
    expect((await first).status).toBe(200)
    await flush()
    expect(server.calls).toHaveLength(1)
    expect(limit.refused).toBe(1)
  })

  it('refuses at once when maxQueueDepth requests already wait (queue_full)', async () => {
    const { server, client } = setup({ initialLimit: 1, maxQueueDepth: 1 })
    client(url)
    client(url)
    const third = await client(url).catch((e: unknown) => e)
    expect(third).toMatchObject({ reason: 'queue_full' })
    expect(server.calls).toHaveLength(1)
  })

  it('refuses at once a request that could not be sent before the call’s deadline', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 1, maxLimit: 1, maxQueueWaitMs: 1000 })
    // Teach it a 100 ms round trip.
    const warm = client(url)
    await flush()
    clock.advance(100)
    server.pending[0]!.answer(status(200))
    await warm
    client(url)
    await flush()
    // One slot, 100 ms per round trip: a call with 50 ms left cannot be sent in time.
    const doomed = createFetch({
      fetch: server.fetch,
      clock,
      budget: false,
      concurrencyLimit: limit,
      timeoutMs: 50,
    })
    const error = await doomed(url).catch((e: unknown) => e)
    expect(error).toMatchObject({ reason: 'queue_timeout' })
    expect(server.calls).toHaveLength(2)
    expect(limit.held).toBe(0)
  })

  it('lets a caller abort while it waits: it leaves the queue with the signal’s reason', async () => {
    const { limit, server, client } = setup({ initialLimit: 1 })
    client(url)
    const controller = new AbortController()
    const waiting = client(url, { signal: controller.signal })
    await flush()
    controller.abort(new Error('caller gave up'))
    await expect(waiting).rejects.toThrow('caller gave up')
    server.pending[0]!.answer(status(200))
    await flush()
    expect(server.calls).toHaveLength(1)
    expect(limit.inFlight(origin)).toBe(0)
  })

  it('after a stall of the origin, estimates waits from round trips, not from the stall', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 4, maxLimit: 4 })
    const answerAll = async () => {
      clock.advance(10)
      for (const { answer } of server.pending.splice(0)) answer(status(200))
      await flush()
    }
    // Four at a time, 10 ms each.
    for (let round = 0; round < 30; round++) {
      const four = [client(url), client(url), client(url), client(url)]
      await flush()
      await answerAll()
      await Promise.all(four)
    }
    // The origin stalls for 150 ms with four in flight and 18 more waiting here, then answers the
    // four at once; four waiters go, 14 still wait.
    const calls = Array.from({ length: 22 }, () => client(url))
    await flush()
    clock.advance(140)
    await answerAll()
    expect(server.pending).toHaveLength(4)
    // A call now has 14 ahead of it: 38 ms at 10 ms a round trip, four at a time. Had the four that
    // spanned the stall counted as round trips (58 ms smoothed), 218 ms: refused at once.
    calls.push(client(url))
    await flush()
    expect(limit.refused).toBe(0)
    while (server.pending.length > 0) await answerAll()
    expect((await Promise.all(calls)).every((response) => response.status === 200)).toBe(true)
    expect(limit.refused).toBe(0)
  })

  it('counts neither an idle spell nor an origin that got slower as a stall: their answers teach the round trip', async () => {
    /** A limit of 4 taught 10 ms round trips, four at a time; `then` is called after them. */
    const taught = async (
      then: (round: (ms: number) => Promise<void>, advance: (ms: number) => void) => Promise<void>,
    ) => {
      const { clock, limit, server, client } = setup({ initialLimit: 4, maxLimit: 4 })
      const round = async (ms: number) => {
        const four = [client(url), client(url), client(url), client(url)]
        await flush()
        clock.advance(ms)
        for (const { answer } of server.pending.splice(0)) answer(status(200))
        await Promise.all(four)
      }
      for (let i = 0; i < 30; i++) await round(10)
      await then(round, (ms) => clock.advance(ms))
      // Four in flight and as many waiting as the estimate allows within 200 ms: how many of 70
      // more calls are refused at once says what round trip the limit now expects.
      const calls = Array.from({ length: 74 }, () => client(url).catch((e: unknown) => e))
      await flush()
      const refused = limit.refused
      while (server.pending.length > 0) {
        clock.advance(10)
        for (const { answer } of server.pending.splice(0)) answer(status(200))
        await flush()
      }
      await Promise.all(calls)
      return refused
    }
    // Answers at 20 ms after a second of nothing in flight: no stall (the gap counts from the send),
    // the round trip follows (about 13.4 ms), and waiters past 59 are refused.
    expect(
      await taught(async (round, advance) => {
        advance(1000)
        await round(20)
      }),
    ).toBe(11)
    // Answers at 40 ms, twice: the first burst back looks like a stall, the second says the origin got
    // slower, and the round trip follows (about 20 ms): waiters past 39 are refused.
    expect(
      await taught(async (round) => {
        await round(40)
        await round(40)
      }),
    ).toBe(31)
  })

  it('holds and refuses nothing while demand stays under the limit (1×)', async () => {
    const { clock, limit, server, client } = setup()
    for (let round = 0; round < 50; round++) {
      const calls = [client(url), client(url), client(url)]
      await flush()
      clock.advance(10)
      for (const { answer } of server.pending.splice(0)) answer(status(200))
      await Promise.all(calls)
    }
    expect(limit.held).toBe(0)
    expect(limit.refused).toBe(0)
    expect(limit.limit(origin)).toBeGreaterThanOrEqual(20)
  })
})

describe('ConcurrencyLimit: adapting', () => {
  async function roundTrip(
    clock: ManualClock,
    server: ReturnType<typeof heldServer>,
    client: typeof fetch,
    n: number,
    ms: number,
    answer = 200,
  ) {
    const calls = Array.from({ length: n }, () => client(url).catch(() => undefined))
    let settled = false
    const all = Promise.all(calls).then(() => {
      settled = true
    })
    // Requests held locally go out as earlier ones are answered: answer in rounds until all settle.
    while (!settled) {
      await flush()
      clock.advance(ms)
      for (const { answer: send } of server.pending.splice(0)) send(status(answer))
      await flush()
    }
    await all
  }

  it('cuts the limit by a tenth on 503s, once per round trip, never below minLimit', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 20 }, { maxAttempts: 1 })
    await roundTrip(clock, server, client, 20, 10)
    expect(limit.limit(origin)).toBe(20)
    // 20 rejections answered together report one congestion: one cut.
    await roundTrip(clock, server, client, 20, 10, 503)
    expect(limit.limit(origin)).toBe(18)
    for (let i = 0; i < 60; i++) await roundTrip(clock, server, client, 1, 10, 503)
    expect(limit.limit(origin)).toBe(1)
  })

  it('holds while round trips grow (the origin queues) and grows while they stay at the minimum', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 20 }, { maxAttempts: 1 })
    await roundTrip(clock, server, client, 20, 10)
    // Round trips of 50 ms against a 10 ms minimum: about 16 of 20 requests queue at the origin. A
    // server at its capacity queues a little by design; only its 503s say it cannot take more.
    for (let i = 0; i < 20; i++) await roundTrip(clock, server, client, limit.limit(origin), 50)
    expect(limit.limit(origin)).toBe(20)
    expect(limit.held).toBe(0)
    await roundTrip(clock, server, client, 20, 50, 503)
    const cut = limit.limit(origin)
    expect(cut).toBe(18)
    for (let i = 0; i < 20; i++) await roundTrip(clock, server, client, limit.limit(origin), 10)
    expect(limit.limit(origin)).toBeGreaterThan(cut)
  })

  it('does not shrink for slow round trips while the caller uses under half its limit', async () => {
    const { clock, limit, server, client } = setup({ initialLimit: 20 })
    await roundTrip(clock, server, client, 5, 10)
    // Five requests at a time, each 60 ms: the origin (or the machine) is slow, not queueing ours.
    for (let i = 0; i < 40; i++) await roundTrip(clock, server, client, 5, 60)
    expect(limit.limit(origin)).toBe(20)
    expect(limit.held).toBe(0)
  })

  it('counts a timeout as a drop, and a caller’s abort as nothing', async () => {
    const { clock, limit, server } = setup({ initialLimit: 10 })
    const timed = createFetch({
      fetch: server.fetch,
      clock,
      budget: false,
      concurrencyLimit: limit,
      timeoutMs: 100,
    })
    const error = await rejection(clock, timed(url))
    expect(RetryError.is(error) && error.reason).toBe('deadline')
    expect(limit.limit(origin)).toBe(9)
    const controller = new AbortController()
    const untimed = createFetch({ fetch: server.fetch, clock, budget: false, concurrencyLimit: limit })
    const aborted = untimed(url, { signal: controller.signal })
    await flush()
    controller.abort()
    await aborted.catch(() => undefined)
    expect(limit.limit(origin)).toBe(9)
    expect(limit.inFlight(origin)).toBe(0)
  })

  it('is shared by every createFetch in the process by default; a client with its own clock keeps its own', async () => {
    const clock = new ManualClock()
    const server = heldServer(clock)
    const shared = 'http://shared.test'
    const before = defaultConcurrencyLimit.inFlight(shared)
    createFetch({ fetch: server.fetch })(`${shared}/a`)
    createFetch({ fetch: server.fetch })(`${shared}/b`)
    createFetch({ fetch: server.fetch, clock })(`${shared}/c`)
    await flush()
    expect(server.calls).toHaveLength(3)
    expect(defaultConcurrencyLimit.inFlight(shared) - before).toBe(2)
    for (const { answer } of server.pending) answer(status(200))
    await flush()
    expect(defaultConcurrencyLimit.inFlight(shared)).toBe(before)
  })

  it('keeps one limit per origin', async () => {
    const { limit, server, client } = setup({ initialLimit: 1 })
    client(url)
    client('http://other.test/')
    await flush()
    expect(server.calls).toHaveLength(2)
    expect(limit.inFlight(origin)).toBe(1)
    expect(limit.inFlight('http://other.test')).toBe(1)
  })
})

describe('createFetch: deadline header', () => {
  it('sends the time the call has left, in ms, on every attempt', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [status(503, { 'retry-after': '1' }), status(200)])
    const client = createFetch({
      fetch: server.fetch,
      clock,
      budget: false,
      timeoutMs: 5000,
      retryAfterJitter: 0,
      concurrencyLimit: false,
    })
    await settle(clock, client(url))
    expect(server.calls.map((call) => Number(call.headers.get('x-request-timeout-ms')))).toEqual([5000, 4000])
  })

  it('sends none without a deadline, leaves a header the caller set, and honours deadlineHeader', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [status(200)])
    await createFetch({ fetch: server.fetch, clock, concurrencyLimit: false })(url)
    const timed = createFetch({ fetch: server.fetch, clock, timeoutMs: 800, concurrencyLimit: false })
    await timed(url, { headers: { 'x-request-timeout-ms': '100' } })
    await timed(new Request(url, { headers: { accept: 'text/plain' } }))
    const renamed = createFetch({
      fetch: server.fetch,
      clock,
      timeoutMs: 800,
      deadlineHeader: 'X-Deadline-Ms',
      concurrencyLimit: false,
    })
    await renamed(url)
    await createFetch({ fetch: server.fetch, clock, timeoutMs: 800, deadlineHeader: false })(url)
    const sent = server.calls.map((call) => [
      call.headers.get('x-request-timeout-ms'),
      call.headers.get('x-deadline-ms'),
      call.headers.get('accept'),
    ])
    expect(sent).toEqual([
      [null, null, null],
      ['100', null, null],
      ['800', null, 'text/plain'],
      [null, '800', null],
      [null, null, null],
    ])
    expect(() => createFetch({ deadlineHeader: 'bad header' })).toThrow(InvalidOptionError)
  })

  it('inherits the deadline of the request being served from its signal', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [status(200)])
    const client = createFetch({ fetch: server.fetch, clock, timeoutMs: 5000, concurrencyLimit: false })
    const signal = new AbortController().signal
    Object.defineProperty(signal, Symbol.for('backpressure.remainingMs'), { value: () => 300 })
    await client(url, { signal })
    expect(server.calls[0]!.headers.get('x-request-timeout-ms')).toBe('300')
  })
})

describe('createFetch: a 503 already retried below', () => {
  const marked = () => status(503, { 'retry-after': '1', 'backpressure-retried-below': '1' })

  it('is not retried without a budget', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [marked(), status(200)])
    const client = createFetch({ fetch: server.fetch, clock, budget: false, concurrencyLimit: false })
    const error = await rejection(clock, client(url))
    expect(RetryError.is(error) && error.reason).toBe('retried_below')
    expect(server.calls).toHaveLength(1)
  })

  it('is retried at most once per call, with a token from the budget', async () => {
    const clock = new ManualClock()
    const server = scriptedFetch(clock, [marked()])
    const budget = new RetryBudget({ clock, ratio: 1, minRetriesPerSecond: 10 })
    const client = createFetch({ fetch: server.fetch, clock, budget, concurrencyLimit: false })
    const error = await rejection(clock, client(url))
    expect(RetryError.is(error) && error.reason).toBe('retried_below')
    expect(server.calls).toHaveLength(2)
  })
})

describe('errors a server of ours answers 503 downstream_overloaded', () => {
  it('carry the brand core reads (no dependency between the packages)', () => {
    const brand = Symbol.for('backpressure.downstream-overloaded')
    const errors = [
      new RetryError({
        reason: 'deadline',
        attempts: 1,
        totalDelayMs: 0,
        lastStatus: 503,
        retryAfterMs: 1000,
        cause: undefined,
      }),
      new ClientLimitError('queue_timeout', origin, 1),
      new ThrottledError(0.5),
    ]
    expect(errors.map((error) => (error as unknown as Record<symbol, unknown>)[brand])).toEqual([
      true,
      true,
      true,
    ])
    expect(ClientLimitError.is(errors[1])).toBe(true)
    expect(ClientLimitError.is(errors[0])).toBe(false)
    // Refusals are many a second under overload: no stack trace is captured for them.
    expect(errors[1]!.stack?.split('\n').length).toBe(1)
  })
})

describe('ConcurrencyLimit: options', () => {
  it('names the option, what was expected and what was given', () => {
    expect(() => new ConcurrencyLimit({ initialLimit: 0 })).toThrow(
      'Expected `initialLimit` to be an integer from 1 and up, got `0` (number)',
    )
    expect(() => new ConcurrencyLimit({ minLimit: 5, initialLimit: 2 })).toThrow(
      'Expected `initialLimit` to be an integer from minLimit (5) to maxLimit (1000), got `2` (number)',
    )
    expect(() => new ConcurrencyLimit({ maxQueueWaitMs: -1 })).toThrow(/maxQueueWaitMs/)
    expect(() => new ConcurrencyLimit({ maxQueueDeph: 3 } as never)).toThrow(/did you mean `maxQueueDepth`/)
    expect(() => createFetch({ concurrencyLimit: {} as never })).toThrow(
      'Expected `concurrencyLimit` to be a ConcurrencyLimit or false, got (object)',
    )
  })
})
