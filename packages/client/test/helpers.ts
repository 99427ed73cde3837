import { ManualClock as CoreManualClock, seededRandom } from '@backpressure/core'
import type { Clock } from '../src/index.js'

/**
 * Core's manual clock, started at a wall-clock-like epoch: the client's `now()` is Date.now()-shaped
 * because HTTP-date Retry-After values are compared against it.
 */
export class ManualClock extends CoreManualClock implements Clock {
  constructor(start = 1_700_000_000_000) {
    super(start)
  }
}

export { seededRandom }

/** Lets pending promise callbacks (and stream reads) run; yields to the event loop, never sleeps. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/**
 * Drives a promise to completion by jumping the manual clock from timer to timer, as if time passed
 * only while the code under test was waiting.
 */
export async function settle<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  let done = false
  promise.then(
    () => {
      done = true
    },
    () => {
      done = true
    },
  )
  for (let step = 0; step < 10_000; step++) {
    await flush()
    if (done) return promise
    const next = clock.nextTimerAt()
    if (next === undefined) throw new Error('the promise is pending with no timer left to fire')
    clock.advance(next - clock.now())
  }
  throw new Error('the promise did not settle')
}

/** Settles a promise and returns what it rejected with (fails the test if it resolved). */
export async function rejection(clock: ManualClock, promise: Promise<unknown>): Promise<unknown> {
  try {
    await settle(clock, promise)
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

export interface RecordedCall {
  at: number
  method: string
  url: string
  body: string | undefined
  headers: Headers
  signal: AbortSignal | undefined
}

type Step = Response | Error | ((call: RecordedCall) => Response | Promise<Response>)

/**
 * A fetch double that answers from a script (the last step repeats) and records when and with what it
 * was called, reading request bodies the way a server would.
 */
export function scriptedFetch(clock: Clock, steps: Step[]) {
  const calls: RecordedCall[] = []
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init)
    const body = request.body === null ? undefined : await request.text()
    const call: RecordedCall = {
      at: clock.now(),
      method: request.method,
      url: request.url,
      body,
      headers: request.headers,
      signal: init?.signal ?? undefined,
    }
    calls.push(call)
    const step = steps[Math.min(calls.length - 1, steps.length - 1)]!
    if (step instanceof Error) throw step
    if (typeof step === 'function') return step(call)
    // A Response can be read once; hand out a copy so a repeated step still has a body.
    return step.clone()
  }
  return { fetch, calls }
}

export function status(code: number, headers: Record<string, string> = {}, body = 'x'): Response {
  return new Response(code === 204 || code === 304 ? null : body, { status: code, headers })
}

/** The `TypeError: fetch failed` Node's fetch throws for a refused connection. */
export function networkError(code = 'ECONNREFUSED'): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) })
}
