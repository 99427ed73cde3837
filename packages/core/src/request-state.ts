import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { BodyWatch } from './body-deadlines.js'
import type { TimerHandle } from './clock.js'
import type { AbortSignalLike, BackpressureController, Permit } from './controller.js'

/**
 * What one HTTP request holds of a controller: its wait, then its permit, for as long as its work runs.
 *
 * The permit is bound to the work, not to one event of the response, because each event can lie:
 * - a response's `close` can come too early: the client left but the route still awaits its database.
 *   Releasing then would admit more work while the old still runs, and the limit would bound nothing.
 *   So a client's departure aborts the request's signal and releases the permit only once the route
 *   has ended (its response ended, or the adapter reports the handler settled), or after a bound for
 *   routes that never end (counted as abandoned);
 * - a response's `close` can never come: on Node 20 a response queued behind a pipelined request has
 *   no socket yet, and when the client hangs up only the socket closes. So those are watched on their
 *   socket as well;
 * - a `close` that already happened will not happen again: admission checks that the client is still
 *   there before it takes a permit.
 *
 * While the request waits, the state is also the wait's abort signal (the controller's
 * AbortSignalLike), which spares every queued request an AbortController. The standard AbortSignal
 * that routes read (`req.signal`) is made only when a route asks for it.
 */

export const kState = Symbol.for('backpressure.requestState')
const kWatched = Symbol('backpressure.watchedStates')
const kSignal = Symbol('backpressure.signal')
const kRemainingMs = Symbol.for('backpressure.remainingMs')
const kEndBefore = Symbol('backpressure.endBefore')
const kResponse = Symbol.for('backpressure.response')

/** What a request state needs of the HTTP layer that made it. */
export interface StateOwner {
  readonly controller: BackpressureController
  /** How long a permit stays held for a route that has not ended after its client left. */
  abandonAfterMs(): number
}

type StatefulResponse = ServerResponse & {
  [kState]?: RequestState
  /** The own `end` property found before endThenRelease replaced it (null: none, the prototype's). */
  [kEndBefore]?: PropertyDescriptor | null | undefined
}
type WatchedSocket = Socket & { [kWatched]?: Set<RequestState> | undefined }
type End = ServerResponse['end']

export class RequestState implements AbortSignalLike {
  permit: Permit | undefined = undefined
  /** AbortSignalLike: the wait has ended (settled or aborted); a later abort does nothing. */
  aborted = false
  /** The client left: its response closed before finishing, or its connection closed. */
  gone = false
  /** The route's work has ended (the adapter said so). */
  private routeEnded = false
  /** The permit went back; nothing is held any more. */
  private done = false
  /** Its place in the body-timeout watch, emptied on release so the request is not kept alive. */
  bodyWatch: BodyWatch | undefined = undefined
  /** A later layer with another controller (Express router, Koa sub-app): its own state. */
  next: RequestState | undefined = undefined
  private listener: { handleEvent(): void } | undefined = undefined
  private abortController: AbortController | undefined = undefined
  private abandonTimer: TimerHandle | undefined = undefined
  private deadlineTimer: TimerHandle | undefined = undefined
  private socket: WatchedSocket | undefined = undefined

  constructor(
    readonly owner: StateOwner,
    readonly res: ServerResponse,
    /** Clock ms after which the caller will no longer wait (the deadline header), if any. */
    readonly deadline: number | undefined,
  ) {}

  addEventListener(_type: 'abort', listener: { handleEvent(): void }): void {
    this.listener = listener
  }

  removeEventListener(_type: 'abort', listener: { handleEvent(): void }): void {
    if (this.listener === listener) this.listener = undefined
  }

  /** Ends the wait (AbortSignalLike): the controller takes the request out of its queue. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const listener = this.listener
    this.listener = undefined
    listener?.handleEvent()
  }

  /**
   * A standard AbortSignal that aborts when the client leaves, or when the deadline the client
   * declared passes. Made on first use: a route that never reads it pays nothing.
   */
  get signal(): AbortSignal {
    let controller = this.abortController
    if (controller !== undefined) return controller.signal
    controller = new AbortController()
    this.abortController = controller
    if (this.gone) controller.abort()
    else if (this.deadline !== undefined && !this.done) {
      const clock = this.owner.controller.clock
      const wait = this.deadline - clock.now()
      if (wait <= 0) controller.abort(deadlineError())
      else this.deadlineTimer = clock.setTimeout(() => this.passDeadline(), wait)
      // A downstream call made with this signal through @backpressure/client inherits the deadline
      // (and sends it on), so the services below never start work for a caller that gave up.
      const deadline = this.deadline
      Object.defineProperty(controller.signal, kRemainingMs, { value: () => deadline - clock.now() })
    }
    return controller.signal
  }

  /** Whether the request holds its permit now (admitted, not yet released). */
  get holding(): boolean {
    return this.permit !== undefined && !this.done
  }

  /** Holds an admitted request's permit; a pipelined response is watched on its socket too. */
  hold(permit: Permit, socket: Socket | null): void {
    this.permit = permit
    const res = this.res as StatefulResponse
    // A response queued behind a pipelined one has no socket yet and no `close` of its own to come
    // when the client hangs up; its connection's `close` is certain.
    if (res.socket === null && socket !== null) this.watch(socket as WatchedSocket)
  }

  /** The client left. A waiting request leaves the queue; a running one keeps its slot until its route ends. */
  leave(): void {
    if (this.gone || this.done) return
    this.gone = true
    this.abortController?.abort()
    if (this.permit === undefined) {
      this.abort()
      return
    }
    // A response already under way (a stream, SSE, a file: headers sent) was the work left, and it
    // stops with the client; only a route still computing its answer keeps the slot.
    if (this.routeEnded || this.res.headersSent) {
      this.release()
      return
    }
    // Rare path (a client left mid-route), so a closure here is fine: the first of the route ending
    // its response or the bound gives the slot back.
    const res = this.res as StatefulResponse
    // A wrapper of end put there before (compression, a session store) is kept and called.
    if (res[kEndBefore] === undefined) {
      res[kEndBefore] = Object.getOwnPropertyDescriptor(res, 'end') ?? null
      ;(res as { end: End }).end = endThenRelease
    }
    this.abandonTimer = this.owner.controller.clock.setTimeout(() => {
      this.abandonTimer = undefined
      this.abandon()
    }, this.owner.abandonAfterMs())
  }

  /** The adapter's word that the route's handler has settled. */
  endRoute(): void {
    this.routeEnded = true
    if (this.gone) this.release()
  }

  /** Gives the permit back, once; later calls do nothing. */
  release(): void {
    if (this.done) return
    this.done = true
    this.clearTimers()
    const permit = this.permit
    if (permit !== undefined) permit.release()
  }

  private abandon(): void {
    if (this.done) return
    this.done = true
    this.clearTimers()
    this.permit?.abandon()
  }

  private passDeadline(): void {
    this.deadlineTimer = undefined
    this.abortController?.abort(deadlineError())
  }

  private clearTimers(): void {
    if (this.bodyWatch !== undefined) {
      this.bodyWatch.state = undefined
      this.bodyWatch = undefined
    }
    const clock = this.owner.controller.clock
    if (this.abandonTimer !== undefined) clock.clearTimeout(this.abandonTimer)
    if (this.deadlineTimer !== undefined) clock.clearTimeout(this.deadlineTimer)
    this.abandonTimer = undefined
    this.deadlineTimer = undefined
    if (this.socket !== undefined) {
      this.socket[kWatched]?.delete(this)
      this.socket = undefined
    }
  }

  private watch(socket: WatchedSocket): void {
    let watched = socket[kWatched]
    if (watched === undefined) {
      watched = new Set()
      socket[kWatched] = watched
      socket.once('close', onSocketClose)
    }
    watched.add(this)
    this.socket = socket
  }
}

/** Every state of a response, outermost layer first. */
export function statesOf(res: ServerResponse): RequestState | undefined {
  return (res as StatefulResponse)[kState]
}

/** Attaches a state to its response (after any a previous layer attached) and listens for its end. */
export function attachState(state: RequestState): void {
  const res = state.res as StatefulResponse
  const first = res[kState]
  if (first === undefined) {
    res[kState] = state
    res.on('close', onResponseClose)
    return
  }
  let last = first
  while (last.next !== undefined) last = last.next
  last.next = state
}

/** True when the request's client is gone already: its response or its connection closed. */
export function clientGone(res: ServerResponse): boolean {
  if (res.destroyed) return true
  const socket = (res.req as IncomingMessage | undefined)?.socket
  return socket == null || socket.destroyed
}

/** The `close` listener of every admitted response: one shared function, no closure per request. */
function onResponseClose(this: StatefulResponse): void {
  const finished = this.writableFinished
  for (let state = this[kState]; state !== undefined; state = state.next) {
    if (finished) state.release()
    else state.leave()
  }
}

function onSocketClose(this: WatchedSocket): void {
  const watched = this[kWatched]
  this[kWatched] = undefined
  if (watched === undefined) return
  for (const state of watched) state.leave()
}

/** Put in place of `res.end` once a client left mid-route: the route ending its response ends the work. */
function endThenRelease(this: StatefulResponse, ...args: unknown[]): ServerResponse {
  // The end that was there before, for this call and anything that calls it later.
  const before = this[kEndBefore]
  this[kEndBefore] = undefined
  if (before) Object.defineProperty(this, 'end', before)
  else delete (this as { end?: End }).end
  try {
    return (this.end as (...a: unknown[]) => ServerResponse)(...args)
  } finally {
    for (let state = this[kState]; state !== undefined; state = state.next) state.release()
  }
}

function deadlineError(): DOMException {
  return new DOMException('The deadline the client declared has passed', 'TimeoutError')
}

/** A signal for a request that holds no permit (health, skipped routes): aborts when its client leaves. */
function signalWithoutPermit(res: ServerResponse): AbortSignal {
  const controller = new AbortController()
  if (clientGone(res)) controller.abort()
  else
    res.once('close', () => {
      if (!res.writableFinished) controller.abort()
    })
  return controller.signal
}

/**
 * A request no adapter saw (a route registered before the plugin): its connection closing is the
 * one sign to watch, and only while the request lasts, so a kept-alive connection collects no
 * listeners.
 */
function signalOfUnlinked(req: IncomingMessage): AbortSignal {
  const holder = req as IncomingMessage & { [kSignal]?: AbortSignal }
  if (holder[kSignal] !== undefined) return holder[kSignal]
  const controller = new AbortController()
  holder[kSignal] = controller.signal
  const socket = req.socket
  if (socket == null || socket.destroyed) {
    controller.abort()
    return controller.signal
  }
  const abort = (): void => controller.abort()
  socket.once('close', abort)
  req.once('close', () => {
    if (socket.destroyed) controller.abort()
    else socket.removeListener('close', abort)
  })
  return controller.signal
}

/**
 * For frameworks whose request object does not reach the response (Fastify): the adapter links them,
 * so `requestSignal(req)` finds the request's state.
 */
export function linkResponse(req: IncomingMessage, res: ServerResponse): void {
  ;(req as IncomingMessage & { [kResponse]?: ServerResponse })[kResponse] = res
}

/**
 * The AbortSignal of a request (given its response, or a request the adapter linked to it): its
 * state's, or one made once for a request that holds no permit.
 */
export function requestSignal(target: ServerResponse | IncomingMessage): AbortSignal {
  const res =
    'writableFinished' in target
      ? target
      : (target as IncomingMessage & { [kResponse]?: ServerResponse })[kResponse]
  if (res === undefined) return signalOfUnlinked(target as IncomingMessage)
  const holder = res as StatefulResponse & { [kSignal]?: AbortSignal }
  const state = holder[kState]
  if (state !== undefined) return state.signal
  holder[kSignal] ??= signalWithoutPermit(res)
  return holder[kSignal]
}

const kSignalGetter = Symbol.for('backpressure.signalGetter')

/**
 * Puts a `signal` getter on the prototype of a framework's request object (Express's `app.request`,
 * Koa's `app.context`), once per prototype, where those frameworks define their own accessors: a
 * request that never reads it pays nothing. `responseOf` finds the Node response of such an object.
 */
export function defineSignalGetter<T extends object>(
  instance: T,
  responseOf: (self: T) => ServerResponse,
): void {
  const proto = Object.getPrototypeOf(instance) as Record<symbol, unknown>
  if (proto[kSignalGetter] === true) return
  Object.defineProperty(proto, 'signal', {
    configurable: true,
    get(this: T): AbortSignal {
      return requestSignal(responseOf(this))
    },
  })
  proto[kSignalGetter] = true
}
