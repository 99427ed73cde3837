import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Clock, TimerHandle } from './clock.js'
import type { RequestState } from './request-state.js'

/**
 * Bounds how long an admitted request may take to send its body. The middleware admits before body
 * parsers run (a shed request costs no parsing), so a client that sends headers and then nothing
 * would otherwise hold its slot until the server's own request timeout (300 s in Node, none in
 * Fastify): four such sockets pin a limit of four. A request still missing part of its body when its
 * bound passes is answered `408` with `Connection: close`, and its slot goes back.
 *
 * Every request gets the same bound, so deadlines come due in arrival order: one FIFO and one timer
 * for all of them, and a request whose body arrived (or whose slot went back) is skipped when its
 * turn comes, never searched for.
 */
export class BodyDeadlines {
  /** One small entry per watched request, emptied when its slot goes back, so a finished request (and its body) is not kept alive until its turn. */
  private readonly states: (BodyWatch | undefined)[] = []
  private readonly dueAt: number[] = []
  private head = 0
  private timer: TimerHandle | undefined = undefined
  private readonly onTimer = (): void => this.expire()

  constructor(
    private readonly clock: Clock,
    readonly timeoutMs: number,
    private readonly onTimeout: (state: RequestState) => void,
  ) {}

  add(state: RequestState): void {
    const due = this.clock.now() + this.timeoutMs
    const watch: BodyWatch = { state }
    state.bodyWatch = watch
    this.states.push(watch)
    this.dueAt.push(due)
    if (this.timer === undefined) this.arm(due)
  }

  private arm(due: number): void {
    this.timer = this.clock.setTimeout(this.onTimer, Math.max(0, due - this.clock.now()))
  }

  private expire(): void {
    this.timer = undefined
    const now = this.clock.now()
    while (this.head < this.states.length && (this.dueAt[this.head] as number) <= now) {
      const state = (this.states[this.head] as BodyWatch).state
      this.states[this.head] = undefined
      this.head++
      // Only a request still holding its slot: once released, its connection may serve another request.
      if (state === undefined || !state.holding || state.gone) continue
      if (!(state.res.req as IncomingMessage).complete) this.onTimeout(state)
    }
    // Drop the consumed front now and then, so the arrays stay as long as the requests pending.
    if (this.head > 1024 && this.head * 2 > this.states.length) {
      this.states.splice(0, this.head)
      this.dueAt.splice(0, this.head)
      this.head = 0
    }
    if (this.head < this.states.length) this.arm(this.dueAt[this.head] as number)
  }
}

/** A watched request, until its slot goes back (RequestState empties it). */
export interface BodyWatch {
  state: RequestState | undefined
}

/** Whether a request announced a body: a non-zero Content-Length, or a Transfer-Encoding. */
export function hasBody(req: IncomingMessage): boolean {
  const headers = req.headers
  const length = headers['content-length']
  return (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined
}

/** The 408 for a body that did not arrive in time; the connection closes after it (its rest is unread). */
export function writeBodyTimeout(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = '{"error":"Request Timeout","reason":"body_timeout"}'
  res
    .writeHead(408, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      connection: 'close',
    })
    .end(body)
}
