import type { TimerHandle } from './clock.js'
import type { BackpressureController, Permit, Rejection } from './controller.js'
import { InvalidOptionError } from './errors.js'

/** First and longest wait before asking again when nothing is in flight (no release can come). */
const MIN_RETRY_MS = 10
const MAX_RETRY_MS = 1000

/**
 * Admission for work that must not be dropped (`map`, `writable`): an item that is turned away
 * (`queue_full`, `queue_timeout`, `latency`, …) waits for room and asks again, as often as it takes.
 *
 * Room is a release or a limit change, never a fixed sleep. While every slot is taken and nobody
 * queues, it does not join the queue at all: its waiter would form a standing queue of its own, be
 * shed by CoDel and counted as pressure, when the next release is simply the earliest a slot can come.
 * Only when it was turned away with nothing in flight (a process signal, a latency window that has
 * not slid yet) does no release come; then time is what changes things, and it retries on a doubling
 * timer of the controller's clock (10 ms up to 1 s).
 */
export class PatientAdmission {
  private wakeUp: (() => void) | undefined = undefined
  private watchedRoom: Promise<void> | undefined = undefined
  private timer: TimerHandle | undefined = undefined
  private retryMs = MIN_RETRY_MS
  private readonly unsubscribe: () => void
  private readonly onWake = (): void => this.wake()

  constructor(
    private readonly controller: BackpressureController,
    private readonly priority: number,
    /** Ends the wait: `acquire` resolves to undefined once it aborts. */
    private readonly signal: AbortSignal,
  ) {
    this.unsubscribe = controller.on('limit', this.onWake)
    signal.addEventListener('abort', this.onWake, { once: true })
  }

  /**
   * A permit for one item, or undefined once the signal has aborted. Rejects only when the controller
   * closes (`shutting_down`): no permit will ever come then.
   */
  async acquire(): Promise<Permit | undefined> {
    const controller = this.controller
    const signal = this.signal
    while (!signal.aborted) {
      if (controller.queueDepth === 0 && controller.inFlight >= controller.limit && !controller.isClosed) {
        await this.waitForRoom(false)
        continue
      }
      let result: Permit | Rejection | Promise<Permit | Rejection> = controller.admit(this.priority, signal)
      if (result instanceof Promise) result = await result
      if (!('reason' in result)) {
        this.retryMs = MIN_RETRY_MS
        // Aborted while the permit was on its way: the caller is gone, the slot goes back.
        if (signal.aborted) {
          result.release()
          return undefined
        }
        return result
      }
      if (result.reason === 'aborted') return undefined
      if (result.reason === 'shutting_down') throw result.toError()
      await this.waitForRoom(true)
    }
    return undefined
  }

  /** Something changed that may make room (a limit change, the caller stopping): ask again now. */
  wake(): void {
    if (this.timer !== undefined) {
      this.controller.clock.clearTimeout(this.timer)
      this.timer = undefined
    }
    const wakeUp = this.wakeUp
    this.wakeUp = undefined
    wakeUp?.()
  }

  dispose(): void {
    this.unsubscribe()
    this.signal.removeEventListener('abort', this.onWake)
    this.wake()
  }

  private waitForRoom(rejected: boolean): Promise<void> {
    const controller = this.controller
    return new Promise<void>((resolve) => {
      this.wakeUp = resolve
      // The room promise is shared until the next release: watch each one once, not once per wait.
      const room = controller._nextRoom()
      if (room !== this.watchedRoom) {
        this.watchedRoom = room
        void room.then(this.onWake)
      }
      if (rejected && controller.inFlight === 0) {
        this.timer = controller.clock.setTimeout(this.onWake, this.retryMs)
        // An iteration still under way keeps the process alive (the system clock's timers are unref'd).
        ;(this.timer as { ref?: () => void } | undefined)?.ref?.()
        this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2)
      }
    })
  }
}

/** `priority` of map and writable: any finite number, as admission takes it. */
export function priorityOption(value: unknown): number {
  if (value === undefined) return 0
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidOptionError('priority', 'a finite number', value)
  }
  return value
}

/** `signal` of map and writable: a standard AbortSignal (fn is handed one derived from it). */
export function signalOption(value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value
  throw new InvalidOptionError('signal', 'an AbortSignal', value)
}
