import { describe, expect, it } from 'vitest'
import { InvalidOptionError } from '../src/index.js'
import { assertOptions, editDistance, integerOption, numberOption } from '../src/validate.js'

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

// Every shape of range the checks can state, read as a sentence (the same as core's).
const ranges: [string, () => unknown, string][] = [
  [
    'integer, min only',
    () => integerOption('x', 0, 1, 1),
    'Expected `x` to be an integer from 1 and up, got `0` (number)',
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
]

describe('range wording', () => {
  it.each(ranges)('%s', (_shape, check, expected) => {
    expect(message(check)).toBe(expected)
  })
})

// The same suggestions as core's twin: the nearest key within a third of the key's length, else the list.
const unknown: [string, object, readonly string[], string][] = [
  ['one edit', { ratoi: 1 }, ['ratio', 'windowMs'], 'Unknown option `ratoi`: did you mean `ratio`?'],
  [
    'a case slip',
    { windowMS: 1 },
    ['ratio', 'windowMs'],
    'Unknown option `windowMS`: did you mean `windowMs`?',
  ],
  ['nothing close', { foo: 1 }, ['k', 'random'], 'Unknown option `foo`: expected one of `k`, `random`'],
]

describe('unknown keys', () => {
  it.each(unknown)('%s', (_case, options, known, expected) => {
    expect(message(() => assertOptions(options, known))).toBe(expected)
  })

  it.each([
    ['gaurd', 'guard', 1],
    ['kitten', 'sitting', 3],
    ['', 'abc', 3],
  ])('edit distance from %j to %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance)
    expect(editDistance(b, a)).toBe(distance)
  })
})
