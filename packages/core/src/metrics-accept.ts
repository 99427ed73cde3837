/**
 * Content negotiation for the metrics route, between its two forms: the Prometheus text and JSON
 * (RFC 9110 §12.5.1). Core has no dependencies, so this is the small part of a negotiator the route
 * needs. It runs for every request to the public route, so it reads the header in one pass without
 * splitting it, and gives up on headers longer than any real client sends.
 */

/** A form the route can send, as negotiation sees it; parameter values lowercased. */
interface Offer {
  readonly type: string
  readonly subtype: string
  readonly params: Readonly<Record<string, string>>
}

/**
 * The Prometheus text stands for whatever exposition is rendered (`metrics.render` may give another
 * content type, known only once rendered).
 */
const TEXT_OFFER: Offer = { type: 'text', subtype: 'plain', params: { version: '0.0.4', charset: 'utf-8' } }
const JSON_OFFER: Offer = { type: 'application', subtype: 'json', params: { charset: 'utf-8' } }

/**
 * Real `Accept` headers are a few hundred bytes (Prometheus 3's is about 210); a longer one is not
 * read but answered with the text, so a flood of huge headers cannot make negotiation cost more than
 * rendering would.
 */
export const MAX_ACCEPT_LENGTH = 1024

/** What a header grants one form: the weight of the most specific range matching it. */
interface Grant {
  q: number
  /** 4 for the type, 2 for the subtype, 1 for parameters; -1 while no range matches. */
  specificity: number
}

/** A weight: 0 to 1 with at most three decimals (RFC 9110 §12.4.2). */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

const COMMA = 44
const SEMICOLON = 59
const EQUALS = 61
const QUOTE = 34
const BACKSLASH = 92
const SPACE = 32
const TAB = 9

/**
 * Whether `Accept` prefers the JSON form to the Prometheus text. Each form gets the weight of the most
 * specific range that matches it (of equally specific ones, the highest); q=0 refuses it. JSON is sent
 * only when it is preferred: a higher weight, or the same weight from a more specific range
 * (`application/json` beside the any-type wildcard). Anything else gets the text, the form Prometheus
 * asks for: a tie (`application/json, text/plain`: the order of ranges means nothing), no header, and
 * a header that accepts neither form (a scraper asking for `application/openmetrics-text` alone takes
 * the text, as Prometheus does when the OpenMetrics it prefers is not offered) rather than a 406.
 *
 * Read leniently where the grammar is broken: a member without a `/` is no media range, one whose
 * weight is not a valid q-value is dropped rather than guessed at, a parameter without `=` is skipped,
 * and what follows the weight is not a media-type parameter. Types, subtypes and parameter values
 * compare case-insensitively (our forms' values are all tokens); a quoted value is unquoted.
 */
export function prefersJson(accept: string | undefined): boolean {
  if (accept === undefined || accept.length > MAX_ACCEPT_LENGTH) return false
  const text: Grant = { q: 0, specificity: -1 }
  const json: Grant = { q: 0, specificity: -1 }
  const end = accept.length
  let i = 0
  while (i < end) {
    // The media type, up to its parameters or the next range.
    let stop = i
    while (stop < end && !isDelimiter(accept.charCodeAt(stop))) stop++
    const name = accept.slice(i, stop).trim().toLowerCase()
    i = stop
    let q = 1
    let valid = true
    let hasParams = false
    let textParams = true
    let jsonParams = true
    while (i < end && accept.charCodeAt(i) === SEMICOLON) {
      i = skipSpace(accept, i + 1, end)
      const keyStart = i
      while (i < end && !isDelimiter(accept.charCodeAt(i)) && accept.charCodeAt(i) !== EQUALS) i++
      if (i >= end || accept.charCodeAt(i) !== EQUALS) continue
      const key = accept.slice(keyStart, i).trim().toLowerCase()
      i = skipSpace(accept, i + 1, end)
      let value: string
      if (accept.charCodeAt(i) === QUOTE) {
        const close = closingQuote(accept, i + 1, end)
        value = unquoted(accept.slice(i + 1, close))
        i = close + 1
        while (i < end && !isDelimiter(accept.charCodeAt(i))) i++
      } else {
        const valueStart = i
        while (i < end && !isDelimiter(accept.charCodeAt(i))) i++
        value = accept.slice(valueStart, i).trim()
      }
      value = value.toLowerCase()
      if (key === 'q') {
        valid = QVALUE.test(value)
        q = Number(value)
        break
      }
      if (key === '') continue
      hasParams = true
      if (TEXT_OFFER.params[key] !== value) textParams = false
      if (JSON_OFFER.params[key] !== value) jsonParams = false
    }
    i = nextRange(accept, i, end)
    if (!valid) continue
    const slash = name.indexOf('/')
    if (slash <= 0 || slash === name.length - 1) continue
    const type = name.slice(0, slash)
    const subtype = name.slice(slash + 1)
    if (textParams) grant(text, TEXT_OFFER, type, subtype, hasParams, q)
    if (jsonParams) grant(json, JSON_OFFER, type, subtype, hasParams, q)
  }
  if (json.q === 0) return false
  return json.q > text.q || (json.q === text.q && json.specificity > text.specificity)
}

function grant(to: Grant, offer: Offer, type: string, subtype: string, hasParams: boolean, q: number): void {
  let specificity = hasParams ? 1 : 0
  if (type === offer.type) specificity += 4
  else if (type !== '*') return
  if (subtype === offer.subtype) specificity += 2
  else if (subtype !== '*') return
  if (specificity > to.specificity || (specificity === to.specificity && q > to.q)) {
    to.specificity = specificity
    to.q = q
  }
}

function isDelimiter(code: number): boolean {
  return code === SEMICOLON || code === COMMA
}

function skipSpace(text: string, i: number, end: number): number {
  while (i < end && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB)) i++
  return i
}

/** The index of the quote closing a quoted string that starts at `i` (or the end: unterminated). */
function closingQuote(text: string, i: number, end: number): number {
  while (i < end) {
    const code = text.charCodeAt(i)
    if (code === QUOTE) return i
    i += code === BACKSLASH ? 2 : 1
  }
  return end
}

function unquoted(quoted: string): string {
  return quoted.includes('\\') ? quoted.replace(/\\(.)/g, '$1') : quoted
}

/** Past the comma that ends the current range: what is left of it (after the weight) may hold quotes. */
function nextRange(text: string, i: number, end: number): number {
  while (i < end) {
    const code = text.charCodeAt(i)
    if (code === COMMA) return i + 1
    i = code === QUOTE ? closingQuote(text, i + 1, end) + 1 : i + 1
  }
  return end
}
