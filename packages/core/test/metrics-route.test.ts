import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import Negotiator from 'negotiator'
import { describe, expect, it, vi } from 'vitest'
import {
  HttpBackpressure,
  type HttpBackpressureOptions,
  type HttpResponse,
  InvalidOptionError,
  ManualClock,
  PASS,
  PROMETHEUS_CONTENT_TYPE,
  seededRandom,
} from '../src/index.js'

const JSON_TYPE = 'application/json; charset=utf-8'

/** A response object as decide() sees it: its request's headers, and a `close` event. */
function responseFor(accept: string | undefined): ServerResponse {
  return Object.assign(new EventEmitter(), {
    req: { headers: accept === undefined ? {} : { accept } },
  }) as unknown as ServerResponse
}

function layer(options: HttpBackpressureOptions<unknown> = {}) {
  return new HttpBackpressure<unknown>({ maxConcurrency: 4, ...options })
}

async function formFor(http: HttpBackpressure<unknown>, accept: string | undefined): Promise<string> {
  const response = await http.metrics(undefined, accept)
  expect(response.status).toBe(200)
  const type = response.headers['content-type']
  if (type === PROMETHEUS_CONTENT_TYPE) return 'text'
  if (type === JSON_TYPE) return 'json'
  throw new Error(`unexpected content type ${type}`)
}

describe('/metrics content negotiation', () => {
  // Hand-picked: each line is a rule of RFC 9110 §12.5.1 or one of our choices.
  const table: [accept: string | undefined, form: 'text' | 'json', why: string][] = [
    [undefined, 'text', 'no Accept: anything goes, the default'],
    ['', 'text', 'an empty Accept accepts nothing: the default rather than 406'],
    ['application/json', 'json', 'asked for'],
    ['APPLICATION/JSON', 'json', 'types are case-insensitive'],
    ['text/plain', 'text', 'asked for'],
    ['text/plain, application/json;q=0', 'text', 'q=0 means "not acceptable", not "contains json"'],
    ['application/json;q=0', 'text', 'JSON refused, nothing else named: the default'],
    ['application/jsonx', 'text', 'another type, not a prefix match'],
    ['application/json-seq', 'text', 'another type'],
    ['text/html,application/xhtml+xml', 'text', "a browser's: neither named, the default"],
    ['application/json, text/plain', 'text', 'a tie in q and specificity: the Prometheus text'],
    ['application/json, text/plain, */*', 'text', "axios's default: a tie, the Prometheus text"],
    ['text/plain;q=0.5, application/json', 'json', 'higher q wins'],
    ['application/json;q=0.9, text/plain;q=0.8', 'json', 'higher q wins'],
    ['application/json;q=0.8, text/plain;q=0.9', 'text', 'higher q wins'],
    ['*/*', 'text', 'a tie: the default'],
    ['application/*', 'json', 'a wildcard subtype'],
    ['text/*', 'text', 'a wildcard subtype'],
    ['application/json, */*', 'json', 'equal q, JSON named by a more specific range'],
    ['*/*;q=0.5, application/json;q=0', 'text', 'the most specific range sets JSON’s q'],
    ['application/json;q=0, */*', 'text', 'the order of ranges does not matter'],
    ['text/plain;q=0, */*', 'json', 'text refused, JSON through */*'],
    ['text/*;q=0.1, application/*', 'json', 'higher q through wildcards'],
    ['application/json;charset=utf-8', 'json', 'a parameter the JSON form has'],
    ['application/json;charset=latin1', 'text', 'a parameter value the JSON form has not'],
    ['text/plain;version=0.0.4, application/json;q=0.5', 'text', 'the exposition version asked for'],
    ['application/json;q=1.0, text/plain;q=0.999', 'json', 'three decimals'],
    ['application/json;q=2', 'text', 'an invalid weight: the range is ignored'],
    ['application/json;q=abc', 'text', 'an invalid weight: the range is ignored'],
    ['application/json;q=', 'text', 'an empty weight: the range is ignored'],
    ['application/json;q=0.5;charset=utf-8', 'json', 'what follows the weight is not a media parameter'],
    ['application/json ; q=0.5 , text/plain ; q=0.4', 'json', 'optional whitespace around ; and ,'],
    ['application/json;foo="a,b", text/plain;q=0.1', 'text', 'a quoted comma does not split (foo unmatched)'],
    ['application/json;charset="utf-8";q="0.9", text/plain;q=0.8', 'json', 'quoted values'],
    ['json, text/plain;q=0.1', 'text', 'no slash: not a media range'],
    [
      'text/plain;q=0.1, application/json;q=0.2, application/json;q=0',
      'json',
      'of two equal ranges, the higher q',
    ],
    [
      'application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      'text',
      "Prometheus 2's scrape Accept",
    ],
    [
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
      'text',
      "Prometheus 3's scrape Accept",
    ],
    ['application/openmetrics-text', 'text', 'OpenMetrics alone: the text format, as Prometheus falls back'],
  ]

  it.each(table)('Accept %j gets %s (%s)', async (accept, form) => {
    expect(await formFor(layer(), accept)).toBe(form)
  })

  it('does not read an Accept header longer than 1024 characters: the text', async () => {
    const padded = (length: number) => `application/json, text/plain;q=0.5, x/${'y'.repeat(length - 38)}`
    expect(padded(1024)).toHaveLength(1024)
    expect(await formFor(layer(), padded(1024))).toBe('json')
    expect(await formFor(layer(), padded(1025))).toBe('text')
  })

  it('answers each of alternating headers by its own ranges', async () => {
    const http = layer({ metrics: { cacheMs: 0 } })
    for (let i = 0; i < 4; i++) {
      expect(await formFor(http, 'application/json')).toBe('json')
      expect(await formFor(http, 'application/json;q=0')).toBe('text')
      expect(await formFor(http, undefined)).toBe('text')
    }
  })

  /**
   * The oracle: the `negotiator` package (what Express's `req.accepts` uses), made blind to the order of
   * ranges (RFC 9110 gives order no meaning; negotiator breaks a tie by it, we break it for the text):
   * where it answers the same for the ranges in either order, ours must be that answer (the text when it
   * accepts neither); where its answer depends on the order, it is a tie and ours is the text.
   */
  it('agrees with negotiator over thousands of generated Accept headers', async () => {
    const http = layer()
    const random = seededRandom(7)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
    const types = [
      'application/json',
      'text/plain',
      '*/*',
      'application/*',
      'text/*',
      'application/openmetrics-text',
      'application/jsonx',
      'text/html',
      'application/xml',
      'image/*',
      'APPLICATION/JSON',
      'Text/Plain',
    ]
    const params = [
      '',
      ';charset=utf-8',
      ';charset="utf-8"',
      ';CHARSET=UTF-8',
      ';charset=latin1',
      ';version=0.0.4',
      ';version=1.0.0',
      ';version=0.0.4;charset=utf-8',
      ';escaping=allow-utf-8',
      ';foo=bar',
    ]
    const weights = [
      '',
      ';q=1',
      ';q=1.0',
      ';q=0',
      ';q=0.0',
      ';q=0.1',
      ';q=0.5',
      ';q=0.50',
      ';q=0.9',
      ';q=0.999',
      ';q=0.001',
    ]
    const spaces = ['', ' ', '  ', '\t']
    const offered = [PROMETHEUS_CONTENT_TYPE, JSON_TYPE]
    const negotiated = (accept: string) => {
      const chosen = new Negotiator({ headers: { accept } }).mediaType(offered)
      return chosen === JSON_TYPE ? 'json' : 'text'
    }
    let json = 0
    for (let n = 0; n < 3000; n++) {
      const ranges = new Set<string>()
      const count = 1 + Math.floor(random() * 5)
      const seen = new Set<string>()
      while (ranges.size < count) {
        const type = pick(types)
        const param = pick(params)
        // Two ranges for one media type and parameters make negotiator depend on their order in a way
        // the reversal below does not see; the hand-written table covers duplicates.
        const key = `${type.toLowerCase()}${param.toLowerCase().replace(/"/g, '')}`
        if (seen.has(key)) continue
        seen.add(key)
        ranges.add(`${type}${pick(spaces) === '' ? '' : ' '}${param}${pick(weights)}`)
      }
      const list = [...ranges]
      const separator = `,${pick(spaces)}`
      const accept = list.join(separator)
      const forward = negotiated(accept)
      const backward = negotiated(list.reverse().join(separator))
      const expected = forward === backward ? forward : 'text'
      const actual = await formFor(http, accept)
      if (actual !== expected)
        throw new Error(`Accept ${JSON.stringify(accept)}: ${actual}, expected ${expected}`)
      if (actual === 'json') json++
    }
    // The generator reaches both answers often enough to mean something.
    expect(json).toBeGreaterThan(300)
    expect(json).toBeLessThan(2700)
  })
})

describe('HEAD /metrics', () => {
  it('is answered like GET (the adapters leave the body out), never admitted', async () => {
    const http = layer()
    const head = http.decide(undefined, 'HEAD', '/metrics', responseFor(undefined))
    expect(head).not.toBe(PASS)
    const response = (await head) as HttpResponse
    expect(response.status).toBe(200)
    expect(response.headers['content-type']).toBe(PROMETHEUS_CONTENT_TYPE)
    expect(response.headers['content-length']).toBe(String(Buffer.byteLength(response.body)))
    const json = (await http.decide(
      undefined,
      'HEAD',
      '/metrics',
      responseFor('application/json'),
    )) as HttpResponse
    expect(json.headers['content-type']).toBe(JSON_TYPE)
    expect(http.controller.stats().requests).toBe(0)
  })

  it('is refused by the guard like GET', async () => {
    const http = layer({ metrics: { guard: () => false } })
    const response = (await http.decide(
      undefined,
      'HEAD',
      '/metrics',
      responseFor(undefined),
    )) as HttpResponse
    expect(response.status).toBe(403)
  })
})

describe('the rendering is cached for metrics.cacheMs', () => {
  const flood = async (http: HttpBackpressure<unknown>, count: number, accept?: string) => {
    const bodies = new Set<string>()
    for (let i = 0; i < count; i++) {
      const method = i % 2 === 0 ? 'GET' : 'HEAD'
      const response = (await http.decide(undefined, method, '/metrics', responseFor(accept))) as HttpResponse
      expect(response.status).toBe(200)
      bodies.add(response.body)
    }
    return bodies
  }

  it('renders once per interval (250 ms by default) however many scrapes arrive, per form', async () => {
    const clock = new ManualClock(0)
    const http = layer({ clock })
    const stats = vi.spyOn(http.controller, 'stats')
    expect(await flood(http, 1000)).toHaveProperty('size', 1)
    expect(stats).toHaveBeenCalledTimes(1)
    // The JSON form is cached apart: one more reading for it, then none.
    expect(await flood(http, 1000, 'application/json')).toHaveProperty('size', 1)
    expect(stats).toHaveBeenCalledTimes(2)

    // What happened meanwhile shows once the interval is over, not before.
    http.controller.rejectWith('queue_full')
    clock.advance(249)
    const [stale] = await flood(http, 10)
    expect(stale).toMatch(/reason="queue_full"\} 0$/m)
    expect(stats).toHaveBeenCalledTimes(2)
    clock.advance(1)
    const [fresh] = await flood(http, 10)
    expect(fresh).toMatch(/reason="queue_full"\} 1$/m)
    expect(stats).toHaveBeenCalledTimes(3)
  })

  it('gives a Prometheus scraping every second, a little early or late, a fresh rendering each time', async () => {
    const clock = new ManualClock(0)
    const http = layer({ clock })
    const scrape = async () => ((await http.metrics(undefined, undefined)) as HttpResponse).body
    await scrape()
    for (let i = 1; i <= 20; i++) {
      clock.advance(i % 2 === 0 ? 995 : 1004)
      http.controller.rejectWith('queue_full')
      expect(await scrape()).toMatch(new RegExp(`reason="queue_full"\\} ${i}$`, 'm'))
    }
  })

  it('renders every scrape with cacheMs: 0', async () => {
    const http = layer({ clock: new ManualClock(0), metrics: { cacheMs: 0 } })
    const stats = vi.spyOn(http.controller, 'stats')
    await flood(http, 20)
    expect(stats).toHaveBeenCalledTimes(20)
  })

  it('still asks the guard on every request', async () => {
    let allowed = true
    const http = layer({ clock: new ManualClock(0), metrics: { guard: () => allowed } })
    expect(((await http.metrics(undefined, undefined)) as HttpResponse).status).toBe(200)
    allowed = false
    expect(((await http.metrics(undefined, undefined)) as HttpResponse).status).toBe(403)
  })

  it('shares one call of a custom render between concurrent scrapes, and does not keep a failure', async () => {
    const clock = new ManualClock(0)
    let calls = 0
    let fail = true
    const render = async () => {
      calls++
      await new Promise((resolve) => setTimeout(resolve, 1))
      if (fail) throw new Error('registry broke')
      return { contentType: 'text/plain; version=0.0.4', body: `render ${calls}\n` }
    }
    const http = layer({ clock, metrics: { render } })
    const failed = await Promise.allSettled([
      http.metrics(undefined, undefined),
      http.metrics(undefined, undefined),
    ])
    expect(failed.map((result) => result.status)).toEqual(['rejected', 'rejected'])
    expect(calls).toBe(1)
    fail = false
    const answers = await Promise.all(Array.from({ length: 50 }, () => http.metrics(undefined, undefined)))
    expect(new Set(answers.map((answer) => answer.body))).toEqual(new Set(['render 2\n']))
    expect(calls).toBe(2)
    clock.advance(250)
    expect((await http.metrics(undefined, undefined)).body).toBe('render 3\n')
  })

  it.each([
    [-1, '`-1` (number)'],
    [Number.NaN, '`NaN` (number)'],
    [Number.POSITIVE_INFINITY, '`Infinity` (number)'],
    [60_001, '`60001` (number)'],
    ['1000', '`"1000"` (string)'],
  ])('rejects metrics.cacheMs %s', (cacheMs, given) => {
    const make = () => layer({ metrics: { cacheMs: cacheMs as number } })
    expect(make).toThrow(InvalidOptionError)
    expect(make).toThrow(`Expected \`metrics.cacheMs\` to be a number from 0 to 60000, got ${given}`)
  })
})
