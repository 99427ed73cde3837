import { setMaxListeners } from 'node:events'
import { Writable } from 'node:stream'
import type { BackpressureController, Permit } from './controller.js'
import { InvalidOptionError } from './errors.js'
import { PatientAdmission, priorityOption, signalOption } from './patient-admission.js'
import { assertKnownKeys, assertObject, integerOption } from './validate.js'

export interface WritableOptions {
  /** Priority every chunk is admitted with (higher first, as for `acquire`). @default 0 */
  readonly priority?: number
  /**
   * Aborting destroys the stream (an `AbortError` whose `cause` is the signal's reason), as for any
   * Node stream; work in flight is aborted through `fn`'s signal and awaited.
   */
  readonly signal?: AbortSignal
  /**
   * Chunks the stream buffers, beyond the one waiting for its permit and those in flight, before
   * `write()` returns false (and `pipeline` pauses the source). At most `limit + 1 + highWaterMark`
   * chunks are held at once.
   * @default 16 (Node's default for object-mode streams)
   */
  readonly highWaterMark?: number
}

const WRITABLE_OPTION_KEYS: readonly string[] = Object.keys({
  priority: true,
  signal: true,
  highWaterMark: true,
} satisfies Record<keyof WritableOptions, true>)

/** `controller.writable(fn, options)`: see BackpressureController.writable. */
export function writableWithController<T>(
  controller: BackpressureController,
  fn: (chunk: T, signal: AbortSignal) => unknown,
  options: WritableOptions = {},
): Writable {
  if (typeof fn !== 'function') throw new InvalidOptionError('fn', 'a function', fn)
  assertObject('options', options as unknown)
  assertKnownKeys('', options, WRITABLE_OPTION_KEYS)
  const priority = priorityOption(options.priority)
  const signal = signalOption(options.signal)
  const highWaterMark = integerOption('highWaterMark', options.highWaterMark, 16, 0)
  return new AdmittedWritable(controller, fn, priority, signal, highWaterMark)
}

/**
 * An object-mode Writable that runs `fn` for each chunk under a permit. A write's callback is held
 * until the chunk has its permit and has started: while every slot is busy, the stream's buffer fills
 * to its high-water mark and `write()` returns false, which is how a piped source learns to pause.
 */
class AdmittedWritable<T> extends Writable {
  private readonly abortController = new AbortController()
  private readonly admission: PatientAdmission
  private running = 0
  /** Shared by `final` and `destroy`, which may both wait for the work in flight. */
  private idleWait: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined = undefined

  constructor(
    controller: BackpressureController,
    private readonly fn: (chunk: T, signal: AbortSignal) => unknown,
    priority: number,
    signal: AbortSignal | undefined,
    highWaterMark: number,
  ) {
    super({ objectMode: true, highWaterMark, signal })
    // Every fn running at once gets this one signal, up to the limit of them, and each may listen to
    // it (fetch does): more than Node's 10 is expected, not a leak.
    setMaxListeners(0, this.abortController.signal)
    this.admission = new PatientAdmission(controller, priority, this.abortController.signal)
  }

  override _write(chunk: T, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.admission.acquire().then(
      (permit) => {
        // Destroyed while waiting: Node answers the buffered writes itself once this one calls back.
        if (permit !== undefined) void this.runOne(chunk, permit)
        callback()
      },
      // The controller closed: no permit will come, and the stream ends with the rejection.
      callback,
    )
  }

  override _final(callback: (error?: Error | null) => void): void {
    void this.idle().then(() => callback())
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A stream that finished is destroyed too (autoDestroy), with nothing in flight or waiting: nothing
    // to abort, and fn's signal stays unaborted, as map's does when the iteration completes.
    if (!this.writableFinished) {
      this.abortController.abort(error ?? new DOMException('The stream was destroyed', 'AbortError'))
    }
    this.admission.dispose()
    void this.idle().then(() => callback(error))
  }

  private async runOne(chunk: T, permit: Permit): Promise<void> {
    this.running++
    try {
      await this.fn(chunk, this.abortController.signal)
    } catch (error) {
      // The first failure destroys the stream; the aborted work's own errors after it are dropped.
      if (!this.destroyed) this.destroy(error as Error)
    } finally {
      this.running--
      permit.release()
      if (this.running === 0 && this.idleWait !== undefined) {
        this.idleWait.resolve()
        this.idleWait = undefined
      }
    }
  }

  private idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve()
    if (this.idleWait === undefined) {
      let resolve: () => void = () => {}
      const promise = new Promise<void>((settle) => {
        resolve = settle
      })
      this.idleWait = { promise, resolve }
    }
    return this.idleWait.promise
  }
}
