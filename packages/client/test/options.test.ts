import { describe, expect, it } from 'vitest'
import {
  AdaptiveThrottle,
  createFetch,
  createRetry,
  ERROR_CODES,
  InvalidOptionError,
  RetryBudget,
  RetryError,
  retry,
  ThrottledError,
} from '../src/index.js'

// Every option of the retry policy, with a bad value and the exact message it must produce.
const policyCases: [string, unknown, string][] = [
  ['maxAttempts', 0, 'Expected `maxAttempts` to be an integer from 1 and up, got `0` (number)'],
  ['maxAttempts', 2.5, 'Expected `maxAttempts` to be an integer from 1 and up, got `2.5` (number)'],
  ['maxAttempts', '3', 'Expected `maxAttempts` to be an integer from 1 and up, got `"3"` (string)'],
  [
    'retryStatusCodes',
    [503, 99],
    'Expected `retryStatusCodes` to be an array of HTTP status codes (integers from 100 to 599), got (array)',
  ],
  [
    'retryStatusCodes',
    503,
    'Expected `retryStatusCodes` to be an array of HTTP status codes (integers from 100 to 599), got `503` (number)',
  ],
  ['retryOnError', true, 'Expected `retryOnError` to be a function, got `true` (boolean)'],
  ['baseDelayMs', -1, 'Expected `baseDelayMs` to be a number from 0 and up, got `-1` (number)'],
  ['baseDelayMs', Number.NaN, 'Expected `baseDelayMs` to be a number from 0 and up, got `NaN` (number)'],
  ['maxDelayMs', 50, 'Expected `maxDelayMs` to be a number from 100 and up, got `50` (number)'],
  ['maxRetryAfterMs', -5, 'Expected `maxRetryAfterMs` to be a number from 0 and up, got `-5` (number)'],
  ['retryAfterJitter', 1.5, 'Expected `retryAfterJitter` to be a number from 0 to 1, got `1.5` (number)'],
  ['timeoutMs', 0, 'Expected `timeoutMs` to be a number above 0, got `0` (number)'],
  ['timeoutMs', null, 'Expected `timeoutMs` to be a number above 0, got `null`'],
  ['budget', true, 'Expected `budget` to be a RetryBudget or false, got `true` (boolean)'],
  ['budget', {}, 'Expected `budget` to be a RetryBudget or false, got (object)'],
  ['throttle', 'on', 'Expected `throttle` to be an AdaptiveThrottle or false, got `"on"` (string)'],
  ['onRetry', 1, 'Expected `onRetry` to be a function, got `1` (number)'],
  [
    'clock',
    { now: () => 0 },
    'Expected `clock` to be an object with now(), setTimeout() and clearTimeout(), got (object)',
  ],
  ['random', 0.5, 'Expected `random` to be a function, got `0.5` (number)'],
]

function thrown(fn: () => unknown): InvalidOptionError {
  try {
    fn()
  } catch (error) {
    return error as InvalidOptionError
  }
  throw new Error('expected a throw')
}

describe('option validation', () => {
  it.each(policyCases)('createFetch rejects %s = %j at creation', (name, value, message) => {
    const error = thrown(() => createFetch({ [name]: value }))
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toBe(message)
    expect(error.code).toBe('BP_ERR_INVALID_OPTION')
    expect(error.option).toBe(name)
  })

  it.each(policyCases)('createRetry rejects %s = %j at creation', (name, value, message) => {
    expect(() => createRetry({ [name]: value })).toThrow(message)
  })

  it.each(policyCases)('retry rejects %s = %j before the first attempt', async (name, value, message) => {
    let called = false
    await expect(
      retry(
        () => {
          called = true
        },
        { [name]: value },
      ),
    ).rejects.toThrow(message)
    expect(called).toBe(false)
  })

  it.each([
    ['fetch', 'https://x', 'Expected `fetch` to be a function, got `"https://x"` (string)'],
    [
      'retryMethods',
      'GET',
      'Expected `retryMethods` to be an array of HTTP method names, got `"GET"` (string)',
    ],
    [
      'retryMethods',
      ['GET', 'NOT A METHOD'],
      'Expected `retryMethods` to be an array of HTTP method names, got (array)',
    ],
  ])('createFetch rejects %s = %j', (name, value, message) => {
    expect(() => createFetch({ [name]: value })).toThrow(message)
  })

  it('rejects an options argument that is not an object', () => {
    expect(() => createFetch(5 as never)).toThrow('Expected `options` to be an object, got `5` (number)')
    expect(() => new RetryBudget([] as never)).toThrow('Expected `options` to be an object, got (array)')
  })

  it('rejects a signal that is not an AbortSignal', async () => {
    const client = createFetch({ fetch: async () => new Response('') })
    await expect(client('http://x.test', { signal: {} as AbortSignal })).rejects.toThrow(
      'Expected `signal` to be an AbortSignal, got (object)',
    )
  })

  it.each([
    ['ratio', -0.1, 'Expected `ratio` to be a number from 0 and up, got `-0.1` (number)'],
    ['windowMs', 0, 'Expected `windowMs` to be a number above 0, got `0` (number)'],
    [
      'minRetriesPerSecond',
      -1,
      'Expected `minRetriesPerSecond` to be a number from 0 and up, got `-1` (number)',
    ],
    [
      'clock',
      Date,
      'Expected `clock` to be an object with now(), setTimeout() and clearTimeout(), got (function)',
    ],
  ])('RetryBudget rejects %s = %j', (name, value, message) => {
    expect(() => new RetryBudget({ [name]: value })).toThrow(message)
  })

  it.each([
    ['k', 0.5, 'Expected `k` to be a number from 1 and up, got `0.5` (number)'],
    ['windowMs', -1, 'Expected `windowMs` to be a number above 0, got `-1` (number)'],
    ['minRequests', -1, 'Expected `minRequests` to be a number from 0 and up, got `-1` (number)'],
    [
      'maxRejectionProbability',
      1.5,
      'Expected `maxRejectionProbability` to be a number from 0 to 1, got `1.5` (number)',
    ],
    [
      'maxRejectionProbability',
      Number.NaN,
      'Expected `maxRejectionProbability` to be a number from 0 to 1, got `NaN` (number)',
    ],
    ['random', 'seed', 'Expected `random` to be a function, got `"seed"` (string)'],
    [
      'clock',
      null,
      'Expected `clock` to be an object with now(), setTimeout() and clearTimeout(), got `null`',
    ],
  ])('AdaptiveThrottle rejects %s = %j', (name, value, message) => {
    expect(() => new AdaptiveThrottle({ [name]: value })).toThrow(message)
  })

  it('accepts every option at its boundary', () => {
    expect(() =>
      createFetch({
        maxAttempts: 1,
        retryStatusCodes: [],
        retryMethods: [],
        baseDelayMs: 0,
        maxDelayMs: 0,
        maxRetryAfterMs: 0,
        retryAfterJitter: 0,
        timeoutMs: 1,
        budget: false,
        throttle: false,
      }),
    ).not.toThrow()
    expect(() => new RetryBudget({ ratio: 0, minRetriesPerSecond: 0 })).not.toThrow()
    expect(() => new AdaptiveThrottle({ k: 1, maxRejectionProbability: 0 })).not.toThrow()
    expect(() => new AdaptiveThrottle({ maxRejectionProbability: 1 })).not.toThrow()
  })

  it('never mutates the caller’s options', () => {
    const options = Object.freeze({ maxAttempts: 2, retryStatusCodes: Object.freeze([503]) })
    expect(() => createFetch(options)).not.toThrow()
  })
})

// A misspelt key in every options object the client takes, and the error it must produce.
const misspelt: [string, () => unknown, string, string][] = [
  [
    'createFetch',
    () => createFetch({ maxAtempts: 3 } as never),
    'maxAtempts',
    'Unknown option `maxAtempts`: did you mean `maxAttempts`?',
  ],
  [
    'createFetch, an option of its own',
    () => createFetch({ retryMethod: ['GET'] } as never),
    'retryMethod',
    'Unknown option `retryMethod`: did you mean `retryMethods`?',
  ],
  [
    'createRetry',
    () => createRetry({ timeOutMs: 1000 } as never),
    'timeOutMs',
    'Unknown option `timeOutMs`: did you mean `timeoutMs`?',
  ],
  [
    'RetryBudget',
    () => new RetryBudget({ ration: 0.2 } as never),
    'ration',
    'Unknown option `ration`: did you mean `ratio`?',
  ],
  [
    'AdaptiveThrottle',
    () => new AdaptiveThrottle({ minRequest: 5 } as never),
    'minRequest',
    'Unknown option `minRequest`: did you mean `minRequests`?',
  ],
]

describe('unknown options', () => {
  it.each(misspelt)(
    '%s: a misspelt key throws at creation, naming the key meant',
    (_what, make, option, message) => {
      const error = thrown(make)
      expect(error).toBeInstanceOf(InvalidOptionError)
      expect(error.code).toBe('BP_ERR_INVALID_OPTION')
      expect(error.option).toBe(option)
      expect(error.message).toBe(message)
    },
  )

  it('retry() rejects a misspelt key before the first attempt', async () => {
    let called = false
    const call = () => {
      called = true
    }
    await expect(retry(call, { signl: AbortSignal.timeout(1000) } as never)).rejects.toThrow(
      'Unknown option `signl`: did you mean `signal`?',
    )
    await expect(retry(call, { maxAttemps: 2 } as never)).rejects.toThrow(
      'Unknown option `maxAttemps`: did you mean `maxAttempts`?',
    )
    expect(called).toBe(false)
  })

  it('a call through createRetry() rejects a misspelt call option before the first attempt', async () => {
    let called = false
    const withRetry = createRetry()
    await expect(
      withRetry(
        () => {
          called = true
        },
        { sigal: AbortSignal.timeout(1000) } as never,
      ),
    ).rejects.toThrow('Unknown option `sigal`: did you mean `signal`?')
    expect(called).toBe(false)
  })

  it('lists the valid keys when none is close: createFetch options are not createRetry options', () => {
    const error = thrown(() => createRetry({ fetch: globalThis.fetch } as never))
    expect(error.option).toBe('fetch')
    expect(error.message).toMatch(/^Unknown option `fetch`: expected one of `maxAttempts`, .*`random`$/)
  })

  it('refuses an unknown key set to undefined, accepts a known one', () => {
    expect(thrown(() => new RetryBudget({ ration: undefined } as never)).option).toBe('ration')
    expect(() => new RetryBudget({ ratio: undefined } as never)).not.toThrow()
  })
})

describe('errors', () => {
  it('have stable codes and brands that survive duplicate package copies', () => {
    expect(ERROR_CODES).toEqual({
      invalidOption: 'BP_ERR_INVALID_OPTION',
      retryFailed: 'BP_ERR_RETRY_FAILED',
      clientThrottled: 'BP_ERR_CLIENT_THROTTLED',
      clientLimited: 'BP_ERR_CLIENT_LIMITED',
    })
    const foreign = Object.create({ [Symbol.for('backpressure.client.retry-error')]: true })
    expect(RetryError.is(foreign)).toBe(true)
    expect(RetryError.is(new Error('x'))).toBe(false)
    expect(ThrottledError.is(new ThrottledError(0.5))).toBe(true)
    expect(new ThrottledError(0.5).message).toContain('0.50')
  })
})
