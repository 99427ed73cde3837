/**
 * The load generators. Open loop (`runLoad`, every tier but one): requests leave on a fixed schedule (one every 1/rate s), whatever
 * happened to earlier ones, so queueing in the server shows up as latency instead of slowing the load
 * down, as a closed-loop tool's would. Each request carries the client's deadline (aborted at
 * deadline after its scheduled time) and every outcome is counted. It reports the rate it actually
 * achieved, so a generator that falls behind is seen, not hidden.
 *
 * The client is a minimal HTTP/1.1 one over `node:net`, because it shares two cores with the server it
 * measures: a general-purpose client (undici) cost 40-130 µs of CPU per answered request and over 300 µs
 * per timed-out one, so at 10× load the generator starved the server (and fell behind its own schedule)
 * and the rows measured that instead of admission control. Keep-alive sockets, each carrying at most
 * one request at a time (no pipelining: a late answer holds up no other request), opened on demand up
 * to `connections`; a request that finds them all busy waits for one. One prebuilt request buffer, one
 * shared read buffer, and an incremental parser that reads only the status line and the headers that
 * matter (Content-Length, Transfer-Encoding: chunked, Connection, Retry-After) and skips the body. A request still unanswered at its deadline is counted as a timeout and its socket
 * destroyed, as an aborted fetch would: the server sees the client leave.
 *
 * Closed loop (`runClosedLoop`, the rejection tier only): each of N sockets sends its next request as
 * soon as the previous answer arrives, so it measures how many answers a second a server can give,
 * over the same client.
 */
import net from 'node:net'
import { Fifo } from './fifo.js'
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
  /** Sockets the generator may open; each outstanding request needs one (HTTP/1.1, no pipelining): past it, requests wait for a free socket. */
  readonly connections?: number
  /**
   * Sockets connected before the first request (up to `connections`): clients already connected when
   * the load begins, as a server's keep-alive clients or a proxy's pool are. Without them every socket
   * past the first few is opened during the overload, and a server whose loop is saturated accepts
   * few: the kernel's accept queue (511 for Node) fills and drops the rest's SYNs, so most excess
   * requests time out without the server ever reading them. @default 0
   */
  readonly preconnect?: number
  /** Called once the preconnected sockets are up, just before the first request leaves. */
  readonly onConnected?: () => void
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
  /** Latencies (ms) of the 2xx answers that arrived in this second. */
  latencies: number[]
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
  /**
   * 2xx within the deadline that arrived while the load ran: goodput's numerator. Answers that drain
   * from a deep queue after the last send are real, but counting them against the load's duration
   * would credit a system with more than its capacity.
   */
  readonly okInTimeDuringLoad: number
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

  let sent = 0
  let okInTime = 0
  let okInTimeDuringLoad = 0
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
      perSecond.push({ second: i, sent: 0, okInTime: 0, okLate: 0, shed: 0, timeouts: 0, latencies: [] })
    }
    return perSecond[second]!
  }

  let start = performance.now()
  let lastSentAt = start
  let drained: (() => void) | undefined

  const settle = (req: InFlight, status: number, retryAfterValue: string | undefined): void => {
    if (req.settled) return
    req.settled = true
    req.conn = undefined
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
      b.latencies.push(latency)
      if (latency <= deadlineMs) {
        okInTime++
        if (doneAt - start <= options.durationMs) okInTimeDuringLoad++
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

  const client = new Client(options.origin, options.path, connections, settle)
  const preconnect = Math.min(connections, options.preconnect ?? 0)
  if (preconnect > 0) {
    await client.preconnect(preconnect)
    start = performance.now()
    lastSentAt = start
  }
  options.onConnected?.()

  // Requests leave in schedule order, so their deadlines are in order too: one FIFO expires them all.
  // Past its deadline a request counts as a timeout at once, wherever it is (waiting for a socket, or
  // sent), and the socket it was sent on is destroyed.
  const expiries = new DeadlineFifo()

  const one = (scheduledAt: number): void => {
    const now = performance.now()
    const lag = now - scheduledAt
    if (lag > maxSendLagMs) maxSendLagMs = lag
    const req = new InFlight(scheduledAt, scheduledAt + deadlineMs)
    expiries.push(req)
    outstanding++
    sent++
    lastSentAt = now
    bucket(now - start).sent++
    client.dispatch(req)
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

  // The schedule: every tick sends whatever is due, so a late tick sends its backlog at once, then
  // expires what is past its deadline. One timer for both, asleep until the next send or deadline.
  let n = 0
  let timer: NodeJS.Timeout | undefined
  let allSent: (() => void) | undefined
  const tick = (): void => {
    timer = undefined
    const now = performance.now()
    while (n < total && start + n * interval <= now) {
      one(start + n * interval)
      n++
    }
    expiries.expire(now, client)
    if (n === total) allSent?.()
    const next = Math.min(n < total ? start + n * interval : Number.POSITIVE_INFINITY, expiries.next())
    if (next !== Number.POSITIVE_INFINITY) {
      timer = setTimeout(tick, Math.max(1, Math.ceil(next - performance.now())))
    }
  }
  await new Promise<void>((resolve) => {
    allSent = resolve
    tick()
  })
  const sendWindowMs = Math.max(lastSentAt - start, interval * (total - 1), 1)

  const settleMs = options.settleMs ?? deadlineMs + 1000
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const settleTimer = setTimeout(resolve, settleMs)
      drained = () => {
        clearTimeout(settleTimer)
        resolve()
      }
    })
  }
  if (ticker !== undefined) clearInterval(ticker)
  if (timer !== undefined) clearTimeout(timer)
  const unanswered = outstanding
  client.destroy()

  return {
    rate: options.rate,
    durationMs: options.durationMs,
    deadlineMs,
    sent,
    achievedRate: total <= 1 ? sent : ((sent - 1) * 1000) / sendWindowMs,
    maxSendLagMs,
    okInTime,
    okInTimeDuringLoad,
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

export interface ClosedLoopOptions {
  /** http://127.0.0.1:PORT — only loopback is ever a target. */
  readonly origin: string
  readonly path: string
  /** Keep-alive sockets, each always carrying exactly one request. */
  readonly connections: number
  readonly durationMs: number
  /** A request unanswered this long counts as a timeout; its socket is destroyed and a fresh one takes its place. @default 1000 */
  readonly deadlineMs?: number
  /** Called as the measured window closes, before any late answer arrives: read the server's CPU here. */
  readonly onWindowEnd?: () => void
}

export interface ClosedLoopResult {
  readonly connections: number
  /** The measured window, ms: outcomes that arrived in it are counted, later ones are not. */
  readonly windowMs: number
  readonly sent: number
  readonly status2xx: number
  readonly status503WithRetryAfter: number
  readonly status503NoRetryAfter: number
  readonly status429: number
  readonly otherStatus: number
  readonly timeouts: number
  readonly socketErrors: number
  /** Retry-After values seen on 503 and 429, value (seconds) → count. */
  readonly retryAfter: Record<string, number>
}

/**
 * Closed-loop load: `connections` requests outstanding at all times, the next one sent the moment an
 * answer (or a timeout) ends the last; for `durationMs`, then the ones still outstanding are let finish
 * uncounted. One request per socket at a time, as in the open loop: an answered socket carries its
 * next request itself.
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const deadlineMs = options.deadlineMs ?? 1000
  let counting = true
  let sent = 0
  let ok = 0
  let with503 = 0
  let without503 = 0
  let got429 = 0
  let other = 0
  let timeouts = 0
  let socketErrors = 0
  let outstanding = 0
  let drained: (() => void) | undefined
  const retryAfter: Record<string, number> = {}
  const expiries = new DeadlineFifo()

  const next = (): void => {
    const now = performance.now()
    const req = new InFlight(now, now + deadlineMs)
    expiries.push(req)
    outstanding++
    sent++
    client.dispatch(req)
  }
  const settle: Settle = (req, status, retryAfterValue) => {
    if (req.settled) return
    req.settled = true
    req.conn = undefined
    outstanding--
    if (!counting) {
      if (outstanding === 0) drained?.()
      return
    }
    if (status === TIMEOUT) timeouts++
    else if (status === SOCKET_ERROR) socketErrors++
    else if (status >= 200 && status < 300) ok++
    else if (status === 503 || status === 429) {
      if (status === 429) got429++
      else if (retryAfterValue === undefined) without503++
      else with503++
      if (retryAfterValue !== undefined) retryAfter[retryAfterValue] = (retryAfter[retryAfterValue] ?? 0) + 1
    } else other++
    next()
  }
  const client = new Client(options.origin, options.path, options.connections, settle)

  const start = performance.now()
  for (let i = 0; i < options.connections; i++) next()
  const expirer = setInterval(() => expiries.expire(performance.now(), client), 50)
  await new Promise<void>((resolve) => setTimeout(resolve, options.durationMs))
  counting = false
  const windowMs = performance.now() - start
  options.onWindowEnd?.()
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const settleTimer = setTimeout(resolve, deadlineMs)
      drained = () => {
        clearTimeout(settleTimer)
        resolve()
      }
    })
  }
  clearInterval(expirer)
  client.destroy()
  return {
    connections: options.connections,
    windowMs,
    sent,
    status2xx: ok,
    status503WithRetryAfter: with503,
    status503NoRetryAfter: without503,
    status429: got429,
    otherStatus: other,
    timeouts,
    socketErrors,
    retryAfter,
  }
}

const TIMEOUT = -1
const SOCKET_ERROR = -2

type Settle = (req: InFlight, status: number, retryAfter: string | undefined) => void

/** One request: its schedule, whether it has an outcome yet, and the socket it went out on. */
class InFlight {
  settled = false
  conn: Conn | undefined = undefined
  constructor(
    readonly scheduledAt: number,
    readonly deadline: number,
  ) {}
}

/**
 * Don't reuse a socket idle this long: Node's HTTP server closes keep-alive sockets after 5 s by
 * default, and a request written as the server closes its socket would be lost.
 */
const MAX_IDLE_MS = 4000
/** Every socket reads into this one buffer; each read is parsed before the next can arrive. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

/** The socket pool: at most `connections` sockets, one request each at a time. */
class Client {
  readonly request: Buffer
  readonly host: string
  readonly port: number
  /** Sockets open (or opening), at most `connections`. */
  private open = 0
  /** Idle sockets, most recently freed last (so the oldest are at the bottom). */
  private idle: Conn[] = []
  /** Requests waiting for a socket, in schedule order. */
  private waiting: InFlight[] = []
  private waitingHead = 0
  private readonly all = new Set<Conn>()
  private destroyed = false

  constructor(
    origin: string,
    path: string,
    private readonly connections: number,
    readonly settle: Settle,
  ) {
    const url = new URL(origin)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost', '::1'].includes(host)) {
      throw new Error(`the load generator only targets http on loopback, not ${origin}`)
    }
    this.host = host
    this.port = Number(url.port || 80)
    this.request = Buffer.from(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\n\r\n`,
      'latin1',
    )
  }

  /**
   * Opens `count` sockets, a batch at a time so the server's accept queue never overflows (a dropped
   * SYN is retried only a second later), and keeps those that connected as idle ones.
   */
  async preconnect(count: number): Promise<void> {
    const batch = 256
    for (let opened = 0; opened < count; opened += batch) {
      const conns: Conn[] = []
      for (let i = opened; i < Math.min(count, opened + batch); i++) conns.push(this.connect())
      await Promise.all(conns.map((conn) => conn.connected))
      const now = performance.now()
      for (const conn of conns) {
        if (conn.dead) continue
        conn.idleSince = now
        this.idle.push(conn)
      }
    }
  }

  dispatch(req: InFlight): void {
    const conn = this.take()
    if (conn !== undefined) conn.send(req)
    else if (this.open < this.connections) this.connect().send(req)
    else this.waiting.push(req)
  }

  /** The most recently freed live socket, dropping those idle too long (all below it are older). */
  private take(): Conn | undefined {
    const idle = this.idle
    while (idle.length > 0) {
      const conn = idle.pop()!
      if (conn.dead) continue
      if (performance.now() - conn.idleSince > MAX_IDLE_MS) {
        conn.kill()
        for (const older of idle) older.kill()
        idle.length = 0
        return undefined
      }
      return conn
    }
    return undefined
  }

  private connect(): Conn {
    this.open++
    const conn = new Conn(this)
    this.all.add(conn)
    return conn
  }

  /** A socket finished its request and may carry another: the next waiting one, if any. */
  release(conn: Conn): void {
    if (this.destroyed) {
      conn.kill()
      return
    }
    const next = this.nextWaiting()
    if (next !== undefined) {
      conn.send(next)
      return
    }
    conn.idleSince = performance.now()
    this.idle.push(conn)
  }

  /** A socket is gone (server closed it, error, or killed at a deadline): its place may go to a waiting request. */
  closed(conn: Conn): void {
    this.open--
    this.all.delete(conn)
    if (this.destroyed) return
    while (this.open < this.connections) {
      const next = this.nextWaiting()
      if (next === undefined) break
      this.dispatch(next)
    }
  }

  /** The next waiting request still within its deadline (those past it are left to the deadline FIFO to count). */
  private nextWaiting(): InFlight | undefined {
    const now = this.waitingHead < this.waiting.length ? performance.now() : 0
    while (this.waitingHead < this.waiting.length) {
      const req = this.waiting[this.waitingHead]!
      this.waiting[this.waitingHead++] = undefined as unknown as InFlight
      if (!req.settled && req.deadline > now) {
        if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
          this.waiting = this.waiting.slice(this.waitingHead)
          this.waitingHead = 0
        }
        return req
      }
    }
    if (this.waitingHead > 0) {
      this.waiting = []
      this.waitingHead = 0
    }
    return undefined
  }

  destroy(): void {
    this.destroyed = true
    for (const conn of [...this.all]) conn.kill()
    this.idle.length = 0
    this.waiting = []
    this.waitingHead = 0
  }
}

// Parser states.
const HEAD = 0
const BODY = 1
const CHUNK_SIZE = 2
const CHUNK_DATA = 3
const CHUNK_END = 4
const TRAILERS = 5
const UNTIL_CLOSE = 6

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1')
const MAX_HEAD = 64 * 1024

/** One keep-alive socket and the incremental parser of the response to its current request. */
class Conn {
  readonly socket: net.Socket
  req: InFlight | undefined = undefined
  dead = false
  idleSince = 0
  /** Settles once the socket connected or failed to. */
  readonly connected: Promise<void>
  private state = HEAD
  /** Bytes of a head split across reads, copied out of the shared read buffer. */
  private partial: Buffer | undefined = undefined
  private status = 0
  private retryAfter: string | undefined = undefined
  /** Body bytes still to skip (Content-Length, or the current chunk). */
  private remaining = 0
  private chunkSize = 0
  private chunkExt = false
  private chunkDigits = 0
  private lineLength = 0
  /** The server will close the socket after this response (Connection: close, HTTP/1.0, body until close). */
  private closeAfter = false

  constructor(private readonly client: Client) {
    this.socket = net.connect({
      host: client.host,
      port: client.port,
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes: number, buffer: Uint8Array): boolean => {
          this.feed(buffer as Buffer, bytes)
          return true
        },
      },
    })
    this.socket.on('error', noop)
    this.socket.on('close', (hadError) => this.onClose(hadError))
    this.connected = new Promise<void>((resolve) => {
      this.socket.once('connect', resolve)
      this.socket.once('close', () => resolve())
    })
  }

  send(req: InFlight): void {
    this.req = req
    req.conn = this
    this.socket.write(this.client.request)
  }

  /** End the socket now (deadline passed, protocol error, or the run is over); its request is already counted or left so. */
  kill(): void {
    this.req = undefined
    if (this.dead) return
    this.dead = true
    this.socket.destroy()
    this.client.closed(this)
  }

  private onClose(hadError: boolean): void {
    const req = this.req
    this.req = undefined
    if (req !== undefined) {
      // A body delimited by the end of the connection is complete now; anything else is lost.
      if (this.state === UNTIL_CLOSE && !hadError) this.client.settle(req, this.status, this.retryAfter)
      else this.client.settle(req, SOCKET_ERROR, undefined)
    }
    if (this.dead) return
    this.dead = true
    this.client.closed(this)
  }

  private fail(): void {
    const req = this.req
    this.req = undefined
    if (req !== undefined) this.client.settle(req, SOCKET_ERROR, undefined)
    this.kill()
  }

  private feed(buffer: Buffer, end: number): void {
    let i = 0
    while (i < end) {
      if (this.req === undefined || this.req.settled) {
        // Bytes nobody asked for (or for a request already counted as a timeout): this socket is done.
        this.req = undefined
        this.kill()
        return
      }
      switch (this.state) {
        case HEAD: {
          let data = buffer.subarray(i, end)
          if (this.partial !== undefined) data = Buffer.concat([this.partial, data])
          const at = data.indexOf(CRLFCRLF)
          if (at < 0) {
            if (data.length > MAX_HEAD) {
              this.fail()
              return
            }
            this.partial = this.partial === undefined ? Buffer.from(data) : data
            return
          }
          const consumed = at + 4 - (this.partial?.length ?? 0)
          this.partial = undefined
          if (!this.head(data, at)) {
            this.fail()
            return
          }
          i += consumed
          if (this.state === HEAD) {
            // 1xx: an interim response; the real one follows. No body: the request is answered.
            if (this.status >= 200) this.complete(i < end)
          }
          break
        }
        case BODY: {
          const take = Math.min(this.remaining, end - i)
          i += take
          this.remaining -= take
          if (this.remaining === 0) this.complete(i < end)
          break
        }
        case CHUNK_SIZE: {
          const c = buffer[i++]!
          if (c === 10) {
            if (this.chunkDigits === 0) {
              this.fail()
              return
            }
            if (this.chunkSize === 0) {
              this.state = TRAILERS
              this.lineLength = 0
            } else {
              this.state = CHUNK_DATA
              this.remaining = this.chunkSize
            }
          } else if (c === 13) {
            // the CR before LF
          } else if (this.chunkExt) {
            // chunk extension: ignored
          } else if (c === 59 || c === 32 || c === 9) {
            this.chunkExt = true
          } else {
            const digit = hexDigit(c)
            if (digit < 0 || this.chunkDigits >= 12) {
              this.fail()
              return
            }
            this.chunkSize = this.chunkSize * 16 + digit
            this.chunkDigits++
          }
          break
        }
        case CHUNK_DATA: {
          const take = Math.min(this.remaining, end - i)
          i += take
          this.remaining -= take
          if (this.remaining === 0) {
            this.state = CHUNK_END
            this.remaining = 2
          }
          break
        }
        case CHUNK_END: {
          // The CRLF after a chunk's data.
          i++
          if (--this.remaining === 0) this.startChunk()
          break
        }
        case TRAILERS: {
          const c = buffer[i++]!
          if (c === 10) {
            if (this.lineLength === 0) this.complete(i < end)
            else this.lineLength = 0
          } else if (c !== 13) {
            this.lineLength++
          }
          break
        }
        case UNTIL_CLOSE:
          return
      }
    }
  }

  private startChunk(): void {
    this.state = CHUNK_SIZE
    this.chunkSize = 0
    this.chunkDigits = 0
    this.chunkExt = false
  }

  /** Parse a response head (status line and headers, `at` = index of its final CRLFCRLF) and set the body state. */
  private head(data: Buffer, at: number): boolean {
    // "HTTP/1.x SSS ..."
    if (at < 12 || data[0] !== 72 || data[4] !== 47 || data[5] !== 49 || data[6] !== 46 || data[8] !== 32) {
      return false
    }
    const s0 = data[9]! - 48
    const s1 = data[10]! - 48
    const s2 = data[11]! - 48
    if (s0 < 1 || s0 > 5 || s1 < 0 || s1 > 9 || s2 < 0 || s2 > 9) return false
    const status = s0 * 100 + s1 * 10 + s2
    this.status = status
    this.retryAfter = undefined
    this.closeAfter = data[7] === 48 // HTTP/1.0 closes unless it says keep-alive
    let contentLength = -1
    let chunked = false
    let line = data.indexOf(10, 12) + 1
    const headEnd = at + 2
    while (line > 0 && line < headEnd) {
      const eol = data.indexOf(13, line)
      const colon = data.indexOf(58, line)
      if (colon > line && colon < eol) {
        const nameLength = colon - line
        let v = colon + 1
        while (data[v] === 32 || data[v] === 9) v++
        let e = eol
        while (e > v && (data[e - 1] === 32 || data[e - 1] === 9)) e--
        if (nameLength === 14 && is(data, line, 'content-length')) {
          let n = 0
          for (let k = v; k < e; k++) {
            const d = data[k]! - 48
            if (d < 0 || d > 9) return false
            n = n * 10 + d
          }
          contentLength = n
        } else if (nameLength === 17 && is(data, line, 'transfer-encoding')) {
          chunked = data.toString('latin1', v, e).toLowerCase().trimEnd().endsWith('chunked')
        } else if (nameLength === 10 && is(data, line, 'connection')) {
          const value = data.toString('latin1', v, e).toLowerCase()
          if (value.includes('close')) this.closeAfter = true
          else if (value.includes('keep-alive')) this.closeAfter = false
        } else if (nameLength === 11 && (status === 503 || status === 429) && is(data, line, 'retry-after')) {
          this.retryAfter = data.toString('latin1', v, e)
        }
      }
      line = eol + 2
    }
    if (status < 200) {
      // Interim (1xx): wait for the final response. 101 would switch protocols: not HTTP any more.
      if (status === 101) return false
      this.state = HEAD
    } else if (status === 204 || status === 304) {
      this.state = HEAD
    } else if (chunked) {
      this.startChunk()
    } else if (contentLength >= 0) {
      this.remaining = contentLength
      this.state = contentLength === 0 ? HEAD : BODY
    } else {
      this.state = UNTIL_CLOSE
      this.closeAfter = true
    }
    return true
  }

  /**
   * The response is complete: count it, then give the socket its next request, or close it (the server
   * said it would, or sent bytes beyond the response: nothing was pipelined, so they answer nothing).
   */
  private complete(extra: boolean): void {
    const req = this.req!
    this.req = undefined
    this.state = HEAD
    this.client.settle(req, this.status, this.retryAfter)
    if (this.closeAfter || extra) this.kill()
    else this.client.release(this)
  }
}

function noop(): void {}

/** Case-insensitive match of a lower-case ASCII header name at `at`. */
function is(data: Buffer, at: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    if ((data[at + k]! | 0x20) !== name.charCodeAt(k)) return false
  }
  return true
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const l = c | 0x20
  if (l >= 97 && l <= 102) return l - 87
  return -1
}

class DeadlineFifo {
  private readonly requests = new Fifo<InFlight>()

  push(request: InFlight): void {
    this.requests.push(request)
  }

  /** When the earliest request still unanswered reaches its deadline (answered ones are dropped). */
  next(): number {
    while (this.requests.peek()?.settled) this.requests.shift()
    return this.requests.peek()?.deadline ?? Number.POSITIVE_INFINITY
  }

  /** Every request past its deadline and still unanswered: a timeout, and its socket destroyed. */
  expire(now: number, client: Client): void {
    for (let request = this.requests.peek(); request !== undefined && request.deadline <= now; ) {
      this.requests.shift()
      if (!request.settled) {
        const conn = request.conn
        client.settle(request, TIMEOUT, undefined)
        conn?.kill()
      }
      request = this.requests.peek()
    }
  }
}
