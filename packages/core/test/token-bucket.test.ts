import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  InvalidOptionError,
  ManualClock,
  MemoryTokenBucketStore,
  seededRandom,
  TokenBucketLimiter,
  type TokenBucketResult,
  type TokenBucketStore,
} from '../src/index.js'
import { wholeSecondsAfter } from '../src/token-bucket.js'

function make(options: { capacity: number; refillPerSecond: number; maxKeys?: number }) {
  const clock = new ManualClock(1000)
  const limiter = new TokenBucketLimiter({ ...options, clock })
  const take = (key = 'k', cost?: number) => limiter.take(key, cost)
  return { clock, limiter, take }
}

describe('TokenBucketLimiter', () => {
  it('lets a full bucket burst up to capacity, then refuses until a token is back', () => {
    const { take } = make({ capacity: 3, refillPerSecond: 2 })
    expect(take()).toEqual({ allowed: true, remaining: 2, retryAfterMs: 0, resetMs: 500 })
    expect(take()).toMatchObject({ allowed: true, remaining: 1 })
    expect(take()).toMatchObject({ allowed: true, remaining: 0, resetMs: 1500 })
    expect(take()).toEqual({ allowed: false, remaining: 0, retryAfterMs: 500, resetMs: 1500 })
  })

  it('refills lazily from the clock and never above capacity', () => {
    const { clock, take } = make({ capacity: 4, refillPerSecond: 1 })
    for (let i = 0; i < 4; i++) take()
    clock.advance(2500)
    expect(take()).toMatchObject({ allowed: true, remaining: 1 }) // 2.5 tokens, one spent
    clock.advance(3_600_000)
    // An hour idle still buys one burst of `capacity`, no more.
    for (let i = 0; i < 4; i++) expect(take().allowed).toBe(true)
    expect(take().allowed).toBe(false)
  })

  it('spends `cost` tokens and waits for all of them', () => {
    const { clock, take } = make({ capacity: 10, refillPerSecond: 2 })
    expect(take('k', 8)).toMatchObject({ allowed: true, remaining: 2 })
    const refused = take('k', 5)
    // 3 tokens short at 2/s: 1.5 s, and a refusal takes nothing.
    expect(refused).toMatchObject({ allowed: false, remaining: 2, retryAfterMs: 1500 })
    clock.advance(1499)
    expect(take('k', 5).allowed).toBe(false)
    clock.advance(1)
    expect(take('k', 5)).toMatchObject({ allowed: true, remaining: 0 })
    expect(take('k', 0)).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('keeps keys apart', () => {
    const { take } = make({ capacity: 1, refillPerSecond: 1 })
    expect(take('a').allowed).toBe(true)
    expect(take('a').allowed).toBe(false)
    expect(take('b').allowed).toBe(true)
  })

  it('never advertises a wait shorter than the next token (seeded random schedule)', () => {
    const random = seededRandom(42)
    for (let round = 0; round < 300; round++) {
      const capacity = 1 + Math.floor(random() * 20)
      const refillPerSecond = [0.1, 0.3, 1, 3, 7, 50][Math.floor(random() * 6)]!
      const { clock, take } = make({ capacity, refillPerSecond })
      for (let step = 0; step < 30; step++) {
        clock.advance(Math.floor(random() * 400))
        const cost = Math.floor(random() * (capacity + 1))
        const result = take('k', cost)
        if (result.allowed) continue
        const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
        expect(seconds * 1000).toBeGreaterThanOrEqual(result.retryAfterMs)
        // A millisecond before the advertised time: still refused (the margin absorbs float noise
        // in retryAfterMs itself); at the advertised time: allowed.
        const due = Math.ceil(result.retryAfterMs - 1e-6)
        if (due >= 2) {
          clock.advance(due - 1)
          expect(take('k', cost).allowed).toBe(false)
          clock.advance(1)
        } else clock.advance(due)
        expect(take('k', cost).allowed).toBe(true)
      }
    }
  })

  it('works with an asynchronous store', async () => {
    const memory = new MemoryTokenBucketStore()
    const store: TokenBucketStore = {
      take: (key, cost, now, policy) => Promise.resolve(memory.take(key, cost, now, policy)),
    }
    const limiter = new TokenBucketLimiter({
      capacity: 1,
      refillPerSecond: 1,
      store,
      clock: new ManualClock(),
    })
    expect((await limiter.take('k')).allowed).toBe(true)
    expect(await limiter.take('k')).toMatchObject({ allowed: false, retryAfterMs: 1000 })
  })

  it('types take() by its store: synchronous by default, a promise with an async store', () => {
    const sync = new TokenBucketLimiter({ capacity: 1, refillPerSecond: 1 })
    expectTypeOf(sync.take('k')).toEqualTypeOf<TokenBucketResult>()
    const store: TokenBucketStore<Promise<TokenBucketResult>> = {
      take: async (key, cost, now, policy) => new MemoryTokenBucketStore().take(key, cost, now, policy),
    }
    const async = new TokenBucketLimiter({ capacity: 1, refillPerSecond: 1, store })
    expectTypeOf(async.take('k')).toEqualTypeOf<Promise<TokenBucketResult>>()
  })

  it('exposes the policy window in whole seconds', () => {
    expect(make({ capacity: 100, refillPerSecond: 10 }).limiter.windowSeconds).toBe(10)
    expect(make({ capacity: 10, refillPerSecond: 3 }).limiter.windowSeconds).toBe(4)
    expect(make({ capacity: 1, refillPerSecond: 50 }).limiter.windowSeconds).toBe(1)
  })

  it('keeps the window a Structured Field integer however slow the refill', () => {
    expect(make({ capacity: 10, refillPerSecond: 1e-21 }).limiter.windowSeconds).toBe(999_999_999_999_999)
  })
})

describe('wholeSecondsAfter', () => {
  it('is a valid Retry-After for any wait: whole seconds rounded up, from 1 to a day', () => {
    expect(wholeSecondsAfter(1500)).toBe(2)
    expect(wholeSecondsAfter(0)).toBe(1)
    expect(wholeSecondsAfter(-20)).toBe(1)
    expect(wholeSecondsAfter(1e25)).toBe(86_400)
    expect(wholeSecondsAfter(Number.POSITIVE_INFINITY)).toBe(86_400)
    expect(wholeSecondsAfter(Number.NaN)).toBe(1)
  })
})

describe('an asynchronous store that does not answer', () => {
  /** A store whose answers come only when the test says so (or never). */
  function pendingStore(onError?: 'reject' | 'allow') {
    const calls: { resolve: (result: TokenBucketResult) => void; reject: (error: unknown) => void }[] = []
    const store: TokenBucketStore = {
      ...(onError === undefined ? {} : { onError }),
      take: () => new Promise<TokenBucketResult>((resolve, reject) => calls.push({ resolve, reject })),
    }
    return { store, calls }
  }

  function settle<T>(promise: Promise<T>) {
    const box: { value?: T; error?: unknown } = {}
    promise.then(
      (value) => (box.value = value),
      (error: unknown) => (box.error = error),
    )
    return box
  }

  const flushed = () => new Promise((resolve) => setImmediate(resolve))

  it('answers as a full bucket would once timeoutMs passes (the default policy: allow)', async () => {
    const clock = new ManualClock(0)
    const { store } = pendingStore()
    const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 2, store, clock, timeoutMs: 100 })
    const taken = settle(limiter.take('k') as Promise<TokenBucketResult>)
    clock.advance(99)
    await flushed()
    expect(taken).toEqual({})
    clock.advance(1)
    await flushed()
    expect(taken.value).toEqual({ allowed: true, remaining: 2, retryAfterMs: 0, resetMs: 500 })
  })

  it("fails the take after timeoutMs when the store's onError is 'reject'", async () => {
    const clock = new ManualClock(0)
    const { store } = pendingStore('reject')
    const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 2, store, clock })
    const taken = settle(limiter.take('k') as Promise<TokenBucketResult>)
    clock.advance(250) // the default timeout
    await flushed()
    expect(String(taken.error)).toMatch(/store did not answer within 250 ms/)
  })

  it('bounds the store calls pending at once: beyond maxPending the store is not called', async () => {
    const clock = new ManualClock(0)
    for (const onError of ['allow', 'reject'] as const) {
      const { store, calls } = pendingStore(onError)
      const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 2, store, clock, maxPending: 2 })
      limiter.take('a')
      limiter.take('b')
      const third = settle(limiter.take('c') as Promise<TokenBucketResult>)
      await flushed()
      expect(calls).toHaveLength(2)
      if (onError === 'allow') expect(third.value).toMatchObject({ allowed: true, remaining: 2 })
      else expect(String(third.error)).toMatch(/2 rate-limit store calls are pending already/)
      // An answer frees its place.
      calls[0]!.resolve({ allowed: false, remaining: 0, retryAfterMs: 10, resetMs: 10 })
      await flushed()
      limiter.take('d')
      expect(calls).toHaveLength(3)
    }
  })

  it('passes answers in time through untouched, ignores late ones, and keeps one timer for all calls', async () => {
    const clock = new ManualClock(0)
    const { store, calls } = pendingStore()
    const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 2, store, clock, timeoutMs: 100 })
    const taken = []
    for (let i = 0; i < 50; i++) {
      taken.push(settle(limiter.take(`k${i}`) as Promise<TokenBucketResult>))
      clock.advance(1)
    }
    expect(clock.pendingTimers).toBe(1)
    const refused = { allowed: false, remaining: 0, retryAfterMs: 400, resetMs: 1400 }
    calls[0]!.resolve(refused)
    await flushed()
    clock.advance(60) // t = 110: calls 0-10 are due; 0 was answered in time
    await flushed()
    expect(taken[0]!.value).toBe(refused)
    expect(taken.filter((t) => t.value?.allowed === true)).toHaveLength(10)
    expect(clock.pendingTimers).toBe(1)
    // A late answer, or a late failure, changes nothing and is never an unhandled rejection.
    calls[1]!.resolve(refused)
    calls[2]!.reject(new Error('late'))
    await flushed()
    expect(taken[1]!.value?.allowed).toBe(true)
    for (const call of calls.slice(11)) call.resolve(refused)
    await flushed()
    expect(taken.every((t) => t.value !== undefined)).toBe(true)
    // Nothing pending: the timer fires once more, finds nothing, and is not re-armed.
    clock.advance(100)
    expect(clock.pendingTimers).toBe(0)
  })
})

describe('MemoryTokenBucketStore', () => {
  const policy = { capacity: 2, refillPerSecond: 1 }

  it('holds at most maxKeys buckets, dropping the least recently used first', () => {
    const store = new MemoryTokenBucketStore({ maxKeys: 3 })
    store.take('a', 1, 0, policy)
    store.take('b', 1, 0, policy)
    store.take('c', 1, 0, policy)
    store.take('a', 1, 0, policy) // touched: now the most recent
    store.take('d', 1, 0, policy) // evicts b, the least recently used
    expect(store.size).toBe(3)
    expect(['a', 'b', 'c', 'd'].filter((key) => store.has(key))).toEqual(['a', 'c', 'd'])
    // a kept its state (both tokens spent); b starts full again.
    expect(store.take('a', 1, 0, policy).allowed).toBe(false)
    expect(store.take('b', 1, 0, policy)).toMatchObject({ allowed: true, remaining: 1 })
  })

  it('stays bounded under a flood of distinct keys', () => {
    const store = new MemoryTokenBucketStore({ maxKeys: 100 })
    for (let i = 0; i < 10_000; i++) store.take(`client-${i}`, 1, i, policy)
    expect(store.size).toBe(100)
    expect(store.has('client-9999')).toBe(true)
    expect(store.has('client-0')).toBe(false)
  })

  it('keeps a limited key limited through a flood of 200,000 fresh keys, until its refill time', () => {
    const { clock, limiter, take } = make({ capacity: 5, refillPerSecond: 1, maxKeys: 10_000 })
    for (let i = 0; i < 5; i++) take('cycler')
    const refused = take('cycler')
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterMs).toBe(1000)
    // 200,000 other keys within 800 ms: none of their buckets is full again, so all carry state.
    let allowed = 0
    for (let i = 0; i < 200_000; i++) {
      if (i % 250 === 0) clock.advance(1)
      if (take(`fresh-${i}`).allowed) allowed++
    }
    expect(allowed).toBe(200_000) // new clients are still served
    expect((limiter.store as MemoryTokenBucketStore).size).toBe(10_000)
    expect(take('cycler').allowed).toBe(false)
    clock.advance(1000 - 800 - 1)
    expect(take('cycler').allowed).toBe(false)
    clock.advance(1)
    expect(take('cycler')).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('drops a bucket that is full again before one that still carries state', () => {
    const store = new MemoryTokenBucketStore({ maxKeys: 2 })
    const one = { capacity: 1, refillPerSecond: 1 }
    store.take('a', 1, 0, one)
    expect(store.take('a', 1, 0, one).allowed).toBe(false) // limited; full again at 1000
    store.take('b', 1, 1500, one) // let through; full again at 2500
    store.take('c', 1, 1600, one) // a is the older, but full: it goes, losing nothing
    expect(store.has('a')).toBe(false)
    expect(store.take('b', 1, 1600, one).allowed).toBe(false)
  })

  it('still tracks new clients when every bucket is limited, dropping the least recently limited', () => {
    const store = new MemoryTokenBucketStore({ maxKeys: 3 })
    const one = { capacity: 1, refillPerSecond: 0.001 }
    for (const key of ['a', 'b', 'c']) {
      store.take(key, 1, 0, one)
      store.take(key, 1, 0, one)
    }
    store.take('a', 1, 1, one) // refused again: now the most recently limited
    expect(store.take('d', 1, 2, one).allowed).toBe(true)
    expect(['a', 'b', 'c', 'd'].filter((key) => store.has(key))).toEqual(['a', 'c', 'd'])
  })

  it('never mints tokens when the clock steps backwards', () => {
    const store = new MemoryTokenBucketStore()
    store.take('k', 2, 10_000, policy)
    expect(store.take('k', 1, 5_000, policy).allowed).toBe(false)
    expect(store.take('k', 1, 10_999, policy).allowed).toBe(false)
    expect(store.take('k', 1, 11_000, policy).allowed).toBe(true)
  })
})

describe('token bucket options', () => {
  const clock = new ManualClock()
  const cases: [Record<string, unknown>, string][] = [
    [
      { refillPerSecond: 1 },
      'Expected `capacity` to be an integer from 1 and up, got `undefined` (undefined)',
    ],
    [
      { capacity: 0, refillPerSecond: 1 },
      'Expected `capacity` to be an integer from 1 and up, got `0` (number)',
    ],
    [
      { capacity: 1.5, refillPerSecond: 1 },
      'Expected `capacity` to be an integer from 1 and up, got `1.5` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 0 },
      'Expected `refillPerSecond` to be a finite number above 0, got `0` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: '2' },
      'Expected `refillPerSecond` to be a finite number above 0, got `"2"` (string)',
    ],
    [
      { capacity: 1, refillPerSecond: Number.POSITIVE_INFINITY },
      'Expected `refillPerSecond` to be a finite number above 0, got `Infinity` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, maxKeys: 0 },
      'Expected `maxKeys` to be an integer from 1 and up, got `0` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, maxKeys: 5, store: new MemoryTokenBucketStore() },
      'Expected `maxKeys` to be unset when `store` is given (bound the store itself), got `5` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, timeoutMs: 0 },
      'Expected `timeoutMs` to be a number above 0 and at most 2147483647, got `0` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, timeoutMs: Number.NaN },
      'Expected `timeoutMs` to be a number above 0 and at most 2147483647, got `NaN` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, maxPending: 0 },
      'Expected `maxPending` to be an integer from 1 and up, got `0` (number)',
    ],
    [
      { capacity: 1, refillPerSecond: 1, store: { take: () => Promise.reject(), onError: 'ignore' } },
      "Expected `store.onError` to be 'reject', 'allow' or unset, got `\"ignore\"` (string)",
    ],
    [
      { capacity: 1, refillPerSecond: 1, store: {} },
      'Expected `store` to be an object with a take(key, cost, now, policy) method, got (object)',
    ],
  ]
  it.each(cases)('rejects %o', (options, message) => {
    const build = () => new TokenBucketLimiter({ clock, ...options } as never)
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(message)
  })

  it('rejects a cost outside 0..capacity at take', () => {
    const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 1, clock })
    expect(() => limiter.take('k', 4)).toThrow(
      'Expected `cost` to be a number from 0 to capacity (3), got `4` (number)',
    )
    expect(() => limiter.take('k', -1)).toThrow(InvalidOptionError)
    expect(() => limiter.take('k', Number.NaN)).toThrow(InvalidOptionError)
  })
})
