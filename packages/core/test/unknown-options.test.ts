import { describe, expect, it } from 'vitest'
import {
  BackpressureController,
  CircuitBreaker,
  HttpBackpressure,
  InvalidOptionError,
  MemoryTokenBucketStore,
  TokenBucketLimiter,
} from '../src/index.js'

function thrown(make: () => unknown): InvalidOptionError {
  try {
    make()
  } catch (error) {
    return error as InvalidOptionError
  }
  throw new Error('expected a throw')
}

const key = (): string => 'k'

// A misspelt key in every options object core takes, and the error it must produce. Typed callers
// cannot write these; JavaScript callers and `as` casts can, and the default would be used in silence.
const misspelt: [string, () => unknown, string, string][] = [
  [
    'controller options',
    () => new BackpressureController({ maxConcurency: 5 } as never),
    'maxConcurency',
    'Unknown option `maxConcurency`: did you mean `maxConcurrency`?',
  ],
  [
    'gradient limit options',
    () => new BackpressureController({ maxConcurrency: { initalLimit: 5 } } as never),
    'maxConcurrency.initalLimit',
    'Unknown option `maxConcurrency.initalLimit`: did you mean `maxConcurrency.initialLimit`?',
  ],
  [
    'AIMD limit options',
    () =>
      new BackpressureController({
        maxConcurrency: { algorithm: 'aimd', latencyTargetMs: 10, backofRatio: 0.8 },
      } as never),
    'maxConcurrency.backofRatio',
    'Unknown option `maxConcurrency.backofRatio`: did you mean `maxConcurrency.backoffRatio`?',
  ],
  [
    'codel',
    () => new BackpressureController({ codel: { tagetMs: 5 } } as never),
    'codel.tagetMs',
    'Unknown option `codel.tagetMs`: did you mean `codel.targetMs`?',
  ],
  [
    'retryAfter range',
    () => new BackpressureController({ retryAfter: { min: 1, max: 3, mx: 4 } } as never),
    'retryAfter.mx',
    'Unknown option `retryAfter.mx`: did you mean `retryAfter.max`?',
  ],
  [
    'circuit breaker options',
    () => new CircuitBreaker({ coolDownMS: 5000 } as never),
    'coolDownMS',
    'Unknown option `coolDownMS`: did you mean `coolDownMs`?',
  ],
  [
    'token bucket options',
    () => new TokenBucketLimiter({ capacity: 1, refillPerSecond: 1, maxKey: 5 } as never),
    'maxKey',
    'Unknown option `maxKey`: did you mean `maxKeys`?',
  ],
  [
    'memory store options',
    () => new MemoryTokenBucketStore({ maxkeys: 5 } as never),
    'maxkeys',
    'Unknown option `maxkeys`: did you mean `maxKeys`?',
  ],
  [
    'HTTP options',
    () => new HttpBackpressure({ priorty: 1 } as never),
    'priorty',
    'Unknown option `priorty`: did you mean `priority`?',
  ],
  [
    'a core option given to the HTTP layer',
    () => new HttpBackpressure({ maxQueueWaitMS: 100 } as never),
    'maxQueueWaitMS',
    'Unknown option `maxQueueWaitMS`: did you mean `maxQueueWaitMs`?',
  ],
  [
    'HTTP options with a shared controller',
    () => new HttpBackpressure({ controller: new BackpressureController(), skipp: () => false } as never),
    'skipp',
    'Unknown option `skipp`: did you mean `skip`?',
  ],
  [
    'metrics',
    () => new HttpBackpressure({ metrics: { cachMs: 100 } } as never),
    'metrics.cachMs',
    'Unknown option `metrics.cachMs`: did you mean `metrics.cacheMs`?',
  ],
  [
    'rateLimit',
    () => new HttpBackpressure({ rateLimit: { key, capacty: 5, refillPerSecond: 1 } } as never),
    'rateLimit.capacty',
    'Unknown option `rateLimit.capacty`: did you mean `rateLimit.capacity`?',
  ],
  [
    'a route table row',
    () => new HttpBackpressure({ routes: [{ path: '/a' }, { path: '/b', priorty: 5 }] } as never),
    'routes[1].priorty',
    'Unknown option `routes[1].priorty`: did you mean `routes[1].priority`?',
  ],
]

describe('unknown options', () => {
  it.each(misspelt)(
    '%s: a misspelt key throws, naming the nearest valid one',
    (_what, make, option, message) => {
      const error = thrown(make)
      expect(error).toBeInstanceOf(InvalidOptionError)
      expect(error.code).toBe('BP_ERR_INVALID_OPTION')
      expect(error.option).toBe(option)
      expect(error.message).toBe(message)
    },
  )

  it('lists the valid keys when none is close', () => {
    expect(thrown(() => new BackpressureController({ codel: { foo: 1 } } as never)).message).toBe(
      'Unknown option `codel.foo`: expected one of `targetMs`, `intervalMs`',
    )
    const error = thrown(() => new HttpBackpressure({ concurrency: 5 } as never))
    expect(error.option).toBe('concurrency')
    expect(error.message).toMatch(/^Unknown option `concurrency`: expected one of `maxConcurrency`, .*`skip`/)
  })

  it('an option of the other adaptive algorithm is unknown there', () => {
    const error = thrown(
      () => new BackpressureController({ maxConcurrency: { latencyTargetMs: 50 } } as never),
    )
    expect(error.option).toBe('maxConcurrency.latencyTargetMs')
    expect(error.message).toMatch(/expected one of `algorithm`, /)
  })

  it('refuses an unknown key even when its value is undefined', () => {
    expect(thrown(() => new BackpressureController({ maxConcurency: undefined } as never)).option).toBe(
      'maxConcurency',
    )
  })

  // `as never`: with exactOptionalPropertyTypes a typed caller cannot write `undefined`; JavaScript can.
  it('accepts every known key, set or undefined', () => {
    const controller = new BackpressureController({
      maxConcurrency: undefined,
      codel: undefined,
      name: 'a',
    } as never)
    expect(
      () =>
        new HttpBackpressure({
          controller,
          priority: undefined,
          routes: [{ method: 'GET', path: '/a', priority: 1, backpressure: undefined }],
          metrics: { path: '/m', guard: undefined, render: undefined, cacheMs: 0 },
          rateLimit: {
            key,
            capacity: 1,
            refillPerSecond: 1,
            cost: 1,
            maxKeys: 10,
            store: undefined,
            timeoutMs: 10,
            maxPending: 1,
            policyName: 'p',
            headers: false,
          },
        } as never),
    ).not.toThrow()
  })

  it('passes only the controller its own options when the HTTP layer makes it', () => {
    const http = new HttpBackpressure({ maxConcurrency: 3, priority: 2, healthPath: false, name: 'api' })
    expect(http.controller.limit).toBe(3)
    expect(http.controller.name).toBe('api')
  })
})
