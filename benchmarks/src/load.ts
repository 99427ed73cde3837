/**
 * The open-loop load generator: requests leave on a fixed schedule (one every 1/rate s), whatever
 * happened to earlier ones, so queueing in the server shows up as latency instead of slowing the load
 * down, as a closed-loop tool's would. Each request carries the client's deadline (aborted at
 * deadline after its scheduled time) and every outcome is counted. It reports the rate it actually
 * achieved, so a generator that falls behind is seen, not hidden.
 */
import { Pool } from 'undici'
import { quantile } from './stats.js'

export interface LoadOptions {
  /** http://127.0.0.1:PORT — only loopback is ever a target. */
  readonly origin: string
  readonly path: string
  /** Requests per second. */
  readonly rate: number
  readonly durationMs: number
  /** Client deadline from each request's scheduled time. @default 1000 */
  readonly deadlineMs?: number
  /** Sockets the generator may open; each outstanding request needs one (HTTP/1.1, no pipelining). */
  readonly connections?: number
  /** How long to wait after the last send for answers before counting the rest as unanswered. @default deadline + 1000 */
  readonly settleMs?: number
  /** Called about once a second while the load runs. */
  readonly onProgress?: (progress: LoadProgress) => void
}

export interface LoadProgress {
  readonly elapsedMs: number
  readonly sent: number
  readonly okInTime: number
  readonly shed: number
  readonly timeouts: number
  readonly other: number
  readonly inFlight: number
}

export interface PerSecond {
  /** Second since the load started in which the outcome arrived (sent: in which it left). */
  second: number
  sent: number
  okInTime: number
  okLate: number
  shed: number
  timeouts: number
}

export interface LoadResult {
  readonly rate: number
  readonly durationMs: number
  readonly deadlineMs: number
  readonly sent: number
  /** Requests per second actually sent over the sending window. */
  readonly achievedRate: number
  /** Largest delay between a request's scheduled time and its departure. */
  readonly maxSendLagMs: number
  /** 2xx within the deadline. */
  readonly okInTime: number
  /** 2xx after the deadline (the generator fell behind, or the body came late). */
  readonly okLate: number
  readonly status503WithRetryAfter: number
  readonly status503NoRetryAfter: number
  readonly status429: number
  /** Any other status (500s included). */
  readonly otherStatus: number
  /** The deadline passed without an answer: the client gave up. */
  readonly timeouts: number
  /** Connection refused or reset, socket closed without an answer. */
  readonly socketErrors: number
  /** Still without any outcome when the settle time ran out (should be 0). */
  readonly unanswered: number
  /** Retry-After values seen on 503 and 429, value (seconds) → count. */
  readonly retryAfter: Record<string, number>
  /** Latency of 2xx answers (ms from scheduled time). */
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly perSecond: PerSecond[]
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const deadlineMs = options.deadlineMs ?? 1000
  const total = Math.max(1, Math.round((options.rate * options.durationMs) / 1000))
  const interval = 1000 / options.rate
  const connections = options.connections ?? Math.min(8000, Math.max(64, Math.ceil(options.rate * 1.5)))
  const pool = new Pool(options.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  })

  let sent = 0
  let okInTime = 0
  let okLate = 0
  let with503 = 0
  let without503 = 0
  let got429 = 0
  let other = 0
  let timeouts = 0
  let socketErrors = 0
  let outstanding = 0
  let maxSendLagMs = 0
  const retryAfter: Record<string, number> = {}
  const latencies: number[] = []
  const perSecond: PerSecond[] = []
  const bucket = (ms: number): PerSecond => {
    const second = Math.max(0, Math.floor(ms / 1000))
    for (let i = perSecond.length; i <= second; i++) {
      perSecond.push({ second: i, sent: 0, okInTime: 0, okLate: 0, shed: 0, timeouts: 0 })
    }
    return perSecond[second]!
  }

  // Requests leave in schedule order, so their deadlines are in order too: one FIFO and one timer
  // abort them all, with a reason built once. (AbortSignal.timeout per request builds a DOMException
  // with a stack trace for every timeout; undici's promise API a stream per response: on two shared
  // cores that cost the generator its own schedule.)
  const expiries = new DeadlineFifo()
  const expiryTimer = setInterval(() => expiries.expire(performance.now()), 2)

  const start = performance.now()
  let lastSentAt = start
  let drained: (() => void) | undefined

  const settle = (req: InFlight, status: number, retryAfterValue: string | undefined): void => {
    if (req.settled) return
    req.settled = true
    const doneAt = performance.now()
    const b = bucket(doneAt - start)
    if (status === TIMEOUT) {
      timeouts++
      b.timeouts++
    } else if (status === SOCKET_ERROR) {
      socketErrors++
    } else if (status >= 200 && status < 300) {
      const latency = doneAt - req.scheduledAt
      latencies.push(latency)
      if (latency <= deadlineMs) {
        okInTime++
        b.okInTime++
      } else {
        okLate++
        b.okLate++
      }
    } else if (status === 503 || status === 429) {
      b.shed++
      if (status === 429) got429++
      else if (retryAfterValue === undefined) without503++
      else with503++
      if (retryAfterValue !== undefined) retryAfter[retryAfterValue] = (retryAfter[retryAfterValue] ?? 0) + 1
    } else {
      other++
    }
    outstanding--
    if (outstanding === 0) drained?.()
  }

  const dispatchOptions = { path: options.path, method: 'GET' as const }
  const one = (scheduledAt: number): void => {
    const now = performance.now()
    const lag = now - scheduledAt
    if (lag > maxSendLagMs) maxSendLagMs = lag
    const req = new InFlight(scheduledAt, settle)
    expiries.push(scheduledAt + deadlineMs, req)
    outstanding++
    sent++
    lastSentAt = now
    bucket(now - start).sent++
    pool.dispatch(dispatchOptions, req)
  }

  const progress = options.onProgress
  const ticker =
    progress === undefined
      ? undefined
      : setInterval(() => {
          progress({
            elapsedMs: performance.now() - start,
            sent,
            okInTime,
            shed: with503 + without503 + got429,
            timeouts,
            other: other + socketErrors + okLate,
            inFlight: outstanding,
          })
        }, 1000)

  // The schedule: every tick sends whatever is due, so a late tick sends its backlog at once.
  await new Promise<void>((resolve) => {
    let n = 0
    const tick = (): void => {
      const now = performance.now()
      while (n < total && start + n * interval <= now) {
        one(start + n * interval)
        n++
      }
      if (n < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  const sendWindowMs = Math.max(lastSentAt - start, interval * (total - 1), 1)

  const settleMs = options.settleMs ?? deadlineMs + 1000
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, settleMs)
      drained = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
  if (ticker !== undefined) clearInterval(ticker)
  clearInterval(expiryTimer)
  const unanswered = outstanding
  await pool.destroy().catch(() => {})

  return {
    rate: options.rate,
    durationMs: options.durationMs,
    deadlineMs,
    sent,
    achievedRate: total <= 1 ? sent : ((sent - 1) * 1000) / sendWindowMs,
    maxSendLagMs,
    okInTime,
    okLate,
    status503WithRetryAfter: with503,
    status503NoRetryAfter: without503,
    status429: got429,
    otherStatus: other,
    timeouts,
    socketErrors,
    unanswered,
    retryAfter,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.length === 0 ? Number.NaN : latencies.reduce((a, b) => Math.max(a, b), 0),
    perSecond,
  }
}

const DEADLINE = Object.freeze(new Error('client deadline'))
const TIMEOUT = -1
const SOCKET_ERROR = -2

/** One request, as undici's raw dispatch handler: no promise, stream or AbortController per request. */
class InFlight {
  settled = false
  expired = false
  private abort: ((reason: Error) => void) | undefined = undefined
  private status = 0
  private retryAfter: string | undefined = undefined

  constructor(
    readonly scheduledAt: number,
    private readonly done: (req: InFlight, status: number, retryAfter: string | undefined) => void,
  ) {}

  /** The deadline passed: count it now, and end the request wherever it is (queued or on a socket). */
  expire(): void {
    if (this.settled) return
    this.expired = true
    this.done(this, TIMEOUT, undefined)
    this.abort?.(DEADLINE)
  }

  onConnect(abort: (reason: Error) => void): void {
    if (this.expired) abort(DEADLINE)
    else this.abort = abort
  }

  onHeaders(status: number, rawHeaders: Buffer[]): boolean {
    this.status = status
    if (status === 503 || status === 429) {
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const key = rawHeaders[i]!
        if (key.length === 11 && key.toString('latin1').toLowerCase() === 'retry-after') {
          this.retryAfter = rawHeaders[i + 1]!.toString('latin1')
        }
      }
    }
    return true
  }

  onData(): boolean {
    return true
  }

  onComplete(): void {
    this.done(this, this.status, this.retryAfter)
  }

  onError(): void {
    this.done(this, this.expired ? TIMEOUT : SOCKET_ERROR, undefined)
  }
}

class DeadlineFifo {
  private at: number[] = []
  private requests: InFlight[] = []
  private head = 0

  push(deadline: number, request: InFlight): void {
    this.at.push(deadline)
    this.requests.push(request)
  }

  expire(now: number): void {
    while (this.head < this.at.length && this.at[this.head]! <= now) {
      const request = this.requests[this.head]!
      this.requests[this.head] = undefined as unknown as InFlight
      this.head++
      request.expire()
    }
    if (this.head > 4096 && this.head * 2 > this.at.length) {
      this.at = this.at.slice(this.head)
      this.requests = this.requests.slice(this.head)
      this.head = 0
    }
  }
}
