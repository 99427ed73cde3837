import type { Clock, RandomSource, TimerHandle } from '../src/index.js'

interface ManualTimer {
  at: number
  seq: number
  callback: () => void
}

/** A clock that moves only when told to; timers fire in order of due time during `advance()`. */
export class ManualClock implements Clock {
  private time: number
  private seq = 0
  private readonly timers = new Set<ManualTimer>()

  constructor(start = 1_700_000_000_000) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, callback }
    this.timers.add(timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as ManualTimer)
  }

  get pendingTimers(): number {
    return this.timers.size
  }

  nextTimerAt(): number | undefined {
    let next: number | undefined
    for (const timer of this.timers) if (next === undefined || timer.at < next) next = timer.at
    return next
  }

  advance(ms: number): void {
    const target = this.time + ms
    for (;;) {
      let next: ManualTimer | undefined
      for (const timer of this.timers) {
        if (
          timer.at <= target &&
          (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))
        ) {
          next = timer
        }
      }
      if (next === undefined) break
      this.timers.delete(next)
      this.time = Math.max(this.time, next.at)
      next.callback()
    }
    this.time = target
  }
}

/** mulberry32, as in core: reproducible draws in [0, 1). */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

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
