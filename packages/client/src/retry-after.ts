// RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds. Anything else is ignored rather than
// guessed at: a misread header must not turn into a retry the server did not ask for.
const DELAY_SECONDS = /^\d+$/
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/
const RFC_850 = /^[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/
const ASCTIME = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/
const MAX_DELAY_SECONDS = 2 ** 31

/**
 * Parses an HTTP-date in any of the three forms RFC 9110 allows, as milliseconds since the epoch, or
 * `undefined` when the value is not one.
 */
export function parseHttpDate(value: string, now: number = Date.now()): number | undefined {
  const text = value.trim()
  let time: number
  if (IMF_FIXDATE.test(text)) time = Date.parse(text)
  else if (RFC_850.test(text)) time = parseRfc850(text, now)
  // asctime carries no zone; it is GMT by definition, while Date.parse would read it as local time.
  else if (ASCTIME.test(text)) time = Date.parse(`${text} GMT`)
  else return undefined
  return Number.isNaN(time) ? undefined : time
}

function parseRfc850(text: string, now: number): number {
  const [, rest = ''] = text.split(', ')
  const [day, month, year] = rest.slice(0, 9).split('-')
  // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means the previous century.
  const thisYear = new Date(now).getUTCFullYear()
  let fullYear = Math.floor(thisYear / 100) * 100 + Number(year)
  if (fullYear > thisYear + 50) fullYear -= 100
  return Date.parse(`${day} ${month} ${fullYear} ${rest.slice(10, 18)} GMT`)
}

/**
 * How long a `Retry-After` value asks the client to wait, in milliseconds (never negative), or
 * `undefined` when the value is missing or invalid.
 *
 * An HTTP-date is measured against the response's own `Date` header when one is given, so a skew
 * between the server's clock and ours does not shorten the wait; otherwise against `now`.
 *
 * @example
 * ```ts
 * parseRetryAfter('120', Date.now()) // 120_000
 * parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.now()) // 0 (in the past)
 * parseRetryAfter('soon', Date.now()) // undefined
 * ```
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number,
  responseDate?: string | null,
): number | undefined {
  if (value === null || value === undefined) return undefined
  const text = value.trim()
  // RFC 9111 §1.2.2's rule for delta-seconds too large to represent: read them as 2^31 seconds (68
  // years). Number() would give Infinity past 309 digits, and Infinity must not reach a timer.
  if (DELAY_SECONDS.test(text)) return Math.min(Number(text), MAX_DELAY_SECONDS) * 1000
  const at = parseHttpDate(text, now)
  if (at === undefined) return undefined
  const sent =
    responseDate === null || responseDate === undefined ? undefined : parseHttpDate(responseDate, now)
  return Math.max(0, at - (sent ?? now))
}
