import { describe, expect, it } from 'vitest'
import {
  BackpressureError,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitStateChange,
  InvalidOptionError,
  ManualClock,
  seededRandom,
} from '../src/index.js'
import { captureWarnings } from './helpers.js'

function make(options: CircuitBreakerOptions = {}, seed = 7) {
  const clock = new ManualClock(1_000_000)
  const breaker = new CircuitBreaker({ clock, random: seededRandom(seed), ...options })
  const changes: string[] = []
  breaker.onStateChange((change: CircuitStateChange) => changes.push(`${change.from}->${change.to}`))
  const ok = () => breaker.execute(() => 'ok')
  const fail = () =>
    breaker.execute(() => {
      throw new Error('down')
    })
  return { clock, breaker, changes, ok, fail }
}

async function failures(fail: () => Promise<unknown>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await expect(fail()).rejects.toThrow('down')
}

async function openError(promise: Promise<unknown>): Promise<BackpressureError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(BackpressureError.is(error)).toBe(true)
  return error as BackpressureError
}

describe('CircuitBreaker', () => {
  it('stays closed below minimumCalls, whatever the failure rate', async () => {
    const { breaker, fail } = make({ minimumCalls: 5 })
    await failures(fail, 4)
    expect(breaker.state).toBe('closed')
    await failures(fail, 1)
    expect(breaker.state).toBe('open')
  })

  it('opens when the failure rate over the window reaches the threshold', async () => {
    const { breaker, changes, ok, fail } = make({ minimumCalls: 10, failureRateThreshold: 0.5 })
    for (let i = 0; i < 6; i++) await ok()
    await failures(fail, 5) // 5 of 11: below half
    expect(breaker.state).toBe('closed')
    await failures(fail, 1) // 6 of 12
    expect(breaker.state).toBe('open')
    expect(changes).toEqual(['closed->open'])
  })

  it('forgets outcomes older than the window', async () => {
    const { clock, breaker, fail } = make({ minimumCalls: 4, windowMs: 10_000 })
    await failures(fail, 3)
    clock.advance(10_001)
    await failures(fail, 3)
    expect(breaker.state).toBe('closed')
    await failures(fail, 1)
    expect(breaker.state).toBe('open')
  })

  it('fails fast while open with circuit_open and a Retry-After of the remaining cool-down, jittered', async () => {
    const { clock, breaker, fail } = make({ minimumCalls: 1, coolDownMs: 10_000 })
    await failures(fail, 1)
    let calls = 0
    const error = await openError(breaker.execute(() => calls++))
    expect(calls).toBe(0)
    expect(error).toMatchObject({ reason: 'circuit_open', code: 'BP_ERR_CIRCUIT_OPEN', status: 503 })
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(10)
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(15)
    expect(error.headers['Retry-After']).toBe(String(error.retryAfterSeconds))
    expect(error.stack?.split('\n').length ?? 1).toBeLessThanOrEqual(1) // no stack walk per rejection
    clock.advance(7_500)
    expect(breaker.remainingCoolDownMs).toBe(2_500)
    const later = breaker.retryAfterSeconds()
    expect(later).toBeGreaterThanOrEqual(3)
    expect(later).toBeLessThanOrEqual(4)
  })

  it('keeps jitter within [s, s + max(1, ⌊s/2⌋)] and never before the cool-down ends', async () => {
    const { clock, breaker, fail } = make({ minimumCalls: 1, coolDownMs: 20_000 }, 99)
    await failures(fail, 1)
    const seen = new Set<number>()
    for (let elapsed = 0; elapsed < 20_000; elapsed += 37) {
      const remaining = breaker.remainingCoolDownMs
      const s = Math.max(1, Math.ceil(remaining / 1000))
      const wait = breaker.retryAfterSeconds()
      expect(Number.isInteger(wait)).toBe(true)
      expect(wait * 1000).toBeGreaterThanOrEqual(remaining)
      expect(wait).toBeLessThanOrEqual(s + Math.max(1, Math.floor(s / 2)))
      if (s === 20) seen.add(wait)
      clock.advance(37)
    }
    expect(seen.size).toBeGreaterThan(1) // it does spread
  })

  it.each([
    ['a cool-down of a thousand years', 3.2e13],
    ['an endless cool-down', Number.POSITIVE_INFINITY],
  ])('keeps Retry-After a valid header with %s: whole seconds, at most a day', async (_, coolDownMs) => {
    const { breaker, fail } = make({ minimumCalls: 1, coolDownMs })
    await failures(fail, 1)
    const wait = breaker.retryAfterSeconds()
    expect(wait).toBe(86_400)
    const error = await openError(breaker.execute(() => 'never'))
    expect(error.headers['Retry-After']).toBe('86400')
  })

  it('goes half-open after the cool-down, lets limited trials through, and closes on success', async () => {
    const { clock, breaker, changes, fail } = make({
      minimumCalls: 1,
      coolDownMs: 5_000,
      halfOpenMaxCalls: 2,
    })
    await failures(fail, 1)
    clock.advance(5_000)
    expect(breaker.state).toBe('half_open')
    expect(breaker.retryAfterSeconds()).toBe(0)
    const gates: (() => void)[] = []
    const trial = () =>
      breaker.execute(() => new Promise<string>((resolve) => gates.push(() => resolve('ok'))))
    const first = trial()
    const second = trial()
    // Both trial slots are taken: a third call fails fast, and so does the HTTP check.
    const third = await openError(breaker.execute(() => 'never'))
    expect(third.retryAfterSeconds).toBeGreaterThanOrEqual(1)
    expect(third.retryAfterSeconds).toBeLessThanOrEqual(2)
    expect(breaker.retryAfterSeconds()).toBeGreaterThan(0)
    await Promise.resolve()
    gates[0]!()
    await first
    expect(breaker.state).toBe('half_open')
    gates[1]!()
    await second
    expect(breaker.state).toBe('closed')
    expect(changes).toEqual(['closed->open', 'open->half_open', 'half_open->closed'])
  })

  it('re-opens on a failed trial, for a whole new cool-down', async () => {
    const { clock, breaker, changes, fail, ok } = make({ minimumCalls: 1, coolDownMs: 5_000 })
    await failures(fail, 1)
    clock.advance(6_000)
    await failures(fail, 1)
    expect(breaker.state).toBe('open')
    expect(breaker.remainingCoolDownMs).toBe(5_000)
    clock.advance(5_000)
    await ok()
    expect(breaker.state).toBe('closed')
    expect(changes).toEqual([
      'closed->open',
      'open->half_open',
      'half_open->open',
      'open->half_open',
      'half_open->closed',
    ])
  })

  it('ignores outcomes of calls that started before a transition', async () => {
    const { clock, breaker, fail } = make({ minimumCalls: 1, coolDownMs: 1_000 })
    let finishSlow!: () => void
    const slow = breaker.execute(() => new Promise<void>((resolve) => (finishSlow = resolve)))
    await failures(fail, 1)
    clock.advance(1_000)
    expect(breaker.state).toBe('half_open')
    // The slow call began while closed: its success must not close a circuit nobody has probed.
    finishSlow()
    await slow
    expect(breaker.state).toBe('half_open')
  })

  it('counts only what isFailure calls a failure', async () => {
    const { breaker } = make({
      minimumCalls: 1,
      isFailure: (error) => !(error instanceof RangeError),
    })
    await expect(
      breaker.execute(() => {
        throw new RangeError('not found')
      }),
    ).rejects.toThrow(RangeError)
    expect(breaker.state).toBe('closed')
  })

  it('reports a throwing listener without breaking the transition', async () => {
    const { breaker, fail } = make({ minimumCalls: 1 })
    breaker.onStateChange(() => {
      throw new Error('listener bug')
    })
    const warnings = captureWarnings()
    try {
      await failures(fail, 1)
      expect(breaker.state).toBe('open')
      expect(warnings.mock.calls).toEqual([[new Error('listener bug'), 'BackpressureListenerWarning']])
    } finally {
      warnings.mockRestore()
    }
  })

  it('reset() closes it', async () => {
    const { breaker, fail } = make({ minimumCalls: 1 })
    await failures(fail, 1)
    breaker.reset()
    expect(breaker.state).toBe('closed')
    expect(await breaker.run(() => 42)).toBe(42)
  })
})

describe('circuit breaker options', () => {
  const cases: [Record<string, unknown>, string][] = [
    [
      { failureRateThreshold: 0 },
      'Expected `failureRateThreshold` to be a number above 0 and at most 1, got `0` (number)',
    ],
    [
      { failureRateThreshold: 1.5 },
      'Expected `failureRateThreshold` to be a number above 0 and at most 1, got `1.5` (number)',
    ],
    [{ minimumCalls: 0 }, 'Expected `minimumCalls` to be an integer from 1 and up, got `0` (number)'],
    [{ windowMs: 5 }, 'Expected `windowMs` to be a number from 10 and up, got `5` (number)'],
    [{ coolDownMs: 0 }, 'Expected `coolDownMs` to be a number above 0, got `0` (number)'],
    [
      { halfOpenMaxCalls: 1.5 },
      'Expected `halfOpenMaxCalls` to be an integer from 1 and up, got `1.5` (number)',
    ],
    [{ isFailure: true }, 'Expected `isFailure` to be a function, got `true` (boolean)'],
    [{ name: '' }, 'Expected `name` to be a non-empty string, got `""` (string)'],
  ]
  it.each(cases)('rejects %o', (options, message) => {
    const build = () => new CircuitBreaker(options as CircuitBreakerOptions)
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(message)
  })
})
