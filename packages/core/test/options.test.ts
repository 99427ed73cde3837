import { describe, expect, it } from 'vitest'
import { BackpressureController, HttpBackpressure, InvalidOptionError } from '../src/index.js'

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['options', null as unknown as Record<string, unknown>, /Expected `options` to be an object, got `null`/],
  ['maxConcurrency', { maxConcurrency: 0 }, /Expected `maxConcurrency` to be .*, got `0` \(number\)/],
  ['maxConcurrency', { maxConcurrency: 1.5 }, /`maxConcurrency`.*got `1.5` \(number\)/],
  ['maxConcurrency', { maxConcurrency: '10' }, /`maxConcurrency`.*got `"10"` \(string\)/],
  [
    'maxQueueDepth',
    { maxQueueDepth: -1 },
    /Expected `maxQueueDepth` to be an integer from 0 and up, got `-1` \(number\)/,
  ],
  ['maxQueueDepth', { maxQueueDepth: Number.NaN }, /`maxQueueDepth`.*got `NaN` \(number\)/],
  ['maxQueueWaitMs', { maxQueueWaitMs: 0 }, /Expected `maxQueueWaitMs` to be a number above 0, got `0`/],
  [
    'maxQueueWaitMs',
    { maxQueueWaitMs: -5 },
    /^Expected `maxQueueWaitMs` to be a number above 0, got `-5` \(number\)$/,
  ],
  ['latencyThresholdMs', { latencyThresholdMs: -5 }, /`latencyThresholdMs`.*got `-5`/],
  [
    'adaptiveRejection',
    { adaptiveRejection: 'yes' },
    /Expected `adaptiveRejection` to be a boolean, got `"yes"`/,
  ],
  ['latencyWindowMs', { latencyWindowMs: 10 }, /`latencyWindowMs`.*from 100/],
  ['latencyMinSamples', { latencyMinSamples: 0 }, /`latencyMinSamples`.*from 1/],
  ['retryAfter', { retryAfter: 0 }, /Expected `retryAfter` to be an integer number of seconds from 1/],
  ['retryAfter', { retryAfter: 2.5 }, /`retryAfter`.*got `2.5`/],
  ['retryAfter', { retryAfter: 'soon' }, /Expected `retryAfter` to be `\{ min, max \}`.*got `"soon"`/],
  ['retryAfter.min', { retryAfter: { min: 0, max: 3 } }, /Expected `retryAfter.min`/],
  [
    'retryAfter.max',
    { retryAfter: { min: 5, max: 3 } },
    /Expected `retryAfter.max` to be an integer from retryAfter.min \(5\)/,
  ],
  ['maxEventLoopDelayMs', { maxEventLoopDelayMs: 0 }, /`maxEventLoopDelayMs`.*above 0/],
  [
    'maxEventLoopUtilization',
    { maxEventLoopUtilization: 1.5 },
    /`maxEventLoopUtilization` to be a number above 0 and at most 1/,
  ],
  [
    'maxConcurrency.backoffRatio',
    { maxConcurrency: { algorithm: 'aimd', latencyTargetMs: 10, backoffRatio: 1 } },
    /^Expected `maxConcurrency.backoffRatio` to be a number above 0.5 and below 1, got `1` \(number\)$/,
  ],
  [
    'maxConcurrency.backoffRatio',
    { maxConcurrency: { algorithm: 'aimd', latencyTargetMs: 10, backoffRatio: 0.5 } },
    /^Expected `maxConcurrency.backoffRatio` to be a number above 0.5 and below 1, got `0.5` \(number\)$/,
  ],
  ['maxHeapUsedBytes', { maxHeapUsedBytes: -1 }, /`maxHeapUsedBytes`/],
  ['maxRssBytes', { maxRssBytes: 'big' }, /`maxRssBytes`/],
  ['sampleIntervalMs', { sampleIntervalMs: 0 }, /`sampleIntervalMs`/],
  ['name', { name: '' }, /Expected `name` to be a non-empty string/],
  ['random', { random: 4 }, /Expected `random` to be a function, got `4` \(number\)/],
  ['processSampler', { processSampler: {} }, /Expected `processSampler` to be a function, got \(object\)/],
]

describe('option validation', () => {
  it.each(bad)('rejects a bad %s at construction', (option, options, message) => {
    let error: unknown
    try {
      new BackpressureController(options)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect((error as InvalidOptionError).code).toBe('BP_ERR_INVALID_OPTION')
    expect((error as InvalidOptionError).option).toBe(option)
    expect((error as Error).message).toMatch(message)
  })

  it('accepts 0 where 0 is meaningful (no queue) and freezes the resolved options', () => {
    const controller = new BackpressureController({ maxQueueDepth: 0 })
    expect(controller.options.maxQueueDepth).toBe(0)
    expect(Object.isFrozen(controller.options)).toBe(true)
  })

  it('never mutates the caller object', () => {
    const options = Object.freeze({ maxConcurrency: 3 })
    const controller = new BackpressureController(options)
    expect(controller.limit).toBe(3)
  })

  const badHttp: [string, Record<string, unknown>, RegExp][] = [
    ['priority', { priority: 'high' }, /Expected `priority` to be a finite number or a function/],
    ['skip', { skip: true }, /Expected `skip` to be a function, got `true`/],
    [
      'healthPath',
      { healthPath: 'health' },
      /Expected `healthPath` to be a path starting with '\/', or false/,
    ],
    ['readinessPath', { readinessPath: 3 }, /`readinessPath`/],
    ['metrics', { metrics: true }, /Expected `metrics` to be an object/],
    ['metrics.path', { metrics: { path: 'm' } }, /`metrics.path`/],
    ['metrics.guard', { metrics: { guard: 'x' } }, /`metrics.guard`/],
    ['onReject', { onReject: 'log' }, /`onReject`/],
    ['routes', { routes: {} }, /Expected `routes` to be an array/],
    ['routes[0].path', { routes: [{ path: 'x' }] }, /Expected `routes\[0\].path`/],
    [
      'routes[1].priority',
      { routes: [{ path: '/a' }, { path: '/b', priority: 'x' }] },
      /`routes\[1\].priority`/,
    ],
    [
      'routes[0].backpressure',
      { routes: [{ path: '/a', backpressure: true }] },
      /`routes\[0\].backpressure` to be false or unset/,
    ],
    ['controller', { controller: {} }, /Expected `controller` to be a BackpressureController/],
    [
      'maxQueueDepth',
      { controller: new BackpressureController(), maxQueueDepth: 5 },
      /`maxQueueDepth` to be unset when `controller` is given/,
    ],
    [
      'codel',
      { controller: new BackpressureController(), codel: false },
      /^Expected `codel` to be unset when `controller` is given/,
    ],
    [
      'adaptiveLifo',
      { controller: new BackpressureController(), adaptiveLifo: true },
      /^Expected `adaptiveLifo` to be unset when `controller` is given/,
    ],
  ]

  it.each(badHttp)('the HTTP layer rejects a bad %s', (option, options, message) => {
    expect(() => new HttpBackpressure(options)).toThrow(message)
    try {
      new HttpBackpressure(options)
    } catch (e) {
      expect((e as InvalidOptionError).option).toBe(option)
    }
  })
})
