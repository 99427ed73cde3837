import { describe, expect, it } from 'vitest'
import { InvalidOptionError } from '../src/index.js'
import { assertKnownKeys, editDistance, integerOption, numberOption, optionalLimit } from '../src/validate.js'

function message(check: () => unknown): string {
  try {
    check()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError)
    return (error as Error).message
  }
  throw new Error('expected a throw')
}

const INF = Number.POSITIVE_INFINITY

// Every shape of range the checks can state, read as a sentence.
const ranges: [string, () => unknown, string][] = [
  [
    'integer, min only',
    () => integerOption('x', -1, 0, 0),
    'Expected `x` to be an integer from 0 and up, got `-1` (number)',
  ],
  [
    'integer, min and max',
    () => integerOption('x', 11, 1, 1, 10),
    'Expected `x` to be an integer from 1 to 10, got `11` (number)',
  ],
  [
    'number, min only',
    () => numberOption('x', -1, 0, 0),
    'Expected `x` to be a number from 0 and up, got `-1` (number)',
  ],
  [
    'number, min and max',
    () => numberOption('x', 2, 0, 0, 1),
    'Expected `x` to be a number from 0 to 1, got `2` (number)',
  ],
  [
    'number above min',
    () => numberOption('x', -5, 1, 0, INF, true),
    'Expected `x` to be a number above 0, got `-5` (number)',
  ],
  [
    'number above min, at most max',
    () => numberOption('x', 0, 0.5, 0, 1, true),
    'Expected `x` to be a number above 0 and at most 1, got `0` (number)',
  ],
  ['optional limit', () => optionalLimit('x', 0), 'Expected `x` to be a number above 0, got `0` (number)'],
  [
    'optional limit with max',
    () => optionalLimit('x', 2, 1),
    'Expected `x` to be a number above 0 and at most 1, got `2` (number)',
  ],
]

describe('range wording', () => {
  it.each(ranges)('%s', (_shape, check, expected) => {
    expect(message(check)).toBe(expected)
  })
})

const METRICS = ['path', 'guard', 'render', 'cacheMs']

// The unknown-key message: the nearest valid key when it is within a third of the key's length (at
// least one edit), else the list of valid keys.
const unknown: [string, string, object, readonly string[], string][] = [
  ['one edit', '', { mx: 1 }, ['min', 'max'], 'Unknown option `mx`: did you mean `max`?'],
  ['a case slip', '', { cacheMS: 1 }, METRICS, 'Unknown option `cacheMS`: did you mean `cacheMs`?'],
  [
    'swapped neighbours',
    'metrics',
    { gaurd: 1 },
    METRICS,
    'Unknown option `metrics.gaurd`: did you mean `metrics.guard`?',
  ],
  [
    'snake case',
    '',
    { max_queue_depth: 1 },
    ['maxQueueDepth', 'maxQueueWaitMs'],
    'Unknown option `max_queue_depth`: did you mean `maxQueueDepth`?',
  ],
  [
    'an indexed path',
    'routes[0]',
    { prority: 1 },
    ['path', 'priority'],
    'Unknown option `routes[0].prority`: did you mean `routes[0].priority`?',
  ],
  ['nothing close', '', { foo: 1 }, ['min', 'max'], 'Unknown option `foo`: expected one of `min`, `max`'],
  [
    'too far for its length',
    '',
    { concurrency: 1 },
    ['maxConcurrency', 'name'],
    'Unknown option `concurrency`: expected one of `maxConcurrency`, `name`',
  ],
  ['set to undefined', '', { mx: undefined }, ['min', 'max'], 'Unknown option `mx`: did you mean `max`?'],
]

describe('unknown keys', () => {
  it.each(unknown)('%s', (_case, path, options, known, expected) => {
    expect(message(() => assertKnownKeys(path, options, known))).toBe(expected)
  })

  it('passes known keys, set or not, and ignores inherited ones', () => {
    expect(() => assertKnownKeys('', { min: 1, max: undefined }, ['min', 'max'])).not.toThrow()
    expect(() => assertKnownKeys('', Object.create({ inherited: 1 }) as object, ['min'])).not.toThrow()
  })

  it.each([
    ['', '', 0],
    ['abc', 'abc', 0],
    ['gard', 'guard', 1],
    ['gaurd', 'guard', 1],
    ['maxConcurency', 'maxConcurrency', 1],
    ['kitten', 'sitting', 3],
  ])('edit distance from %j to %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance)
    expect(editDistance(b, a)).toBe(distance)
  })
})
