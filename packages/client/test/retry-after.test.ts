import { describe, expect, it } from 'vitest'
import { parseHttpDate, parseRetryAfter } from '../src/index.js'

const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT')

describe('parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('0', now)).toBe(0)
    expect(parseRetryAfter('5', now)).toBe(5000)
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000)
  })

  // RFC 9111 §1.2.2: a delta-seconds value too large to represent is read as 2^31 seconds. Past 309
  // digits Number() gives Infinity, which must not reach a timer or a comparison.
  it('reads delay-seconds beyond 2^31 as 2^31 seconds, never Infinity', () => {
    expect(parseRetryAfter('2147483647', now)).toBe(2_147_483_647_000)
    expect(parseRetryAfter('2147483649', now)).toBe(2 ** 31 * 1000)
    expect(parseRetryAfter('9'.repeat(400), now)).toBe(2 ** 31 * 1000)
  })

  it('reads an IMF-fixdate relative to now, and a past date as zero', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', now)).toBe(10_000)
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:00 GMT', now)).toBe(0)
  })

  it('reads the obsolete RFC 850 and asctime forms', () => {
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:40 GMT', now)).toBe(3000)
    // asctime has no zone and means GMT, whatever the local time zone of the process.
    expect(parseRetryAfter('Sun Nov  6 08:49:42 1994', now)).toBe(5000)
  })

  it('measures an HTTP-date against the response Date header, so clock skew cannot shorten the wait', () => {
    const skewedNow = now + 60_000
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', skewedNow)).toBe(0)
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', skewedNow, 'Sun, 06 Nov 1994 08:49:37 GMT')).toBe(
      10_000,
    )
    // An unreadable Date header falls back to our clock.
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', now, 'yesterday')).toBe(10_000)
  })

  it.each([
    [''],
    ['   '],
    ['-1'],
    ['1.5'],
    ['5s'],
    ['+5'],
    ['soon'],
    ['0x10'],
    ['1e3'],
    ['Sun, 06 Nov 1994'],
    ['2024-01-01T00:00:00Z'],
    ['Sun, 06 Nov 1994 08:49:37 PST'],
  ])('ignores the invalid value %j', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined()
  })

  it('returns undefined when the header is missing', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
  })
})

describe('parseHttpDate', () => {
  it('puts a two-digit RFC 850 year in the right century', () => {
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(now)
    expect(
      new Date(parseHttpDate('Monday, 01-Jan-30 00:00:00 GMT', Date.parse('2025-06-01'))!).getUTCFullYear(),
    ).toBe(2030)
  })
})
