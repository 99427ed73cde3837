import { setMaxListeners } from 'node:events'
import type { BackpressureController, Permit } from './controller.js'
import { InvalidOptionError } from './errors.js'
import { PatientAdmission, priorityOption, signalOption } from './patient-admission.js'
import { assertKnownKeys, assertObject, booleanOption } from './validate.js'

export interface MapOptions {
  /**
   * Yield results in the order of their inputs. A slow item then holds back the results after it
   * (they wait, counted against the limit, so memory stays bounded); otherwise each is yielded as it
   * finishes.
   * @default false
   */
  readonly ordered?: boolean
  /** Priority every item is admitted with (higher first, as for `acquire`). @default 0 */
  readonly priority?: number
  /**
   * Aborting ends the iteration with the signal's reason: work in flight is aborted (through `fn`'s
   * signal) and awaited, and the source's `return()` is called.
   */
  readonly signal?: AbortSignal
}

const MAP_OPTION_KEYS: readonly string[] = Object.keys({
  ordered: true,
  priority: true,
  signal: true,
} satisfies Record<keyof MapOptions, true>)

/** What `next` answers once every item has been yielded. */
const DONE: unique symbol = Symbol('done')

/**
 * `controller.map(source, fn, options)`: see BackpressureController.map. Options and arguments are
 * checked here, at the call; the source is opened at the first `next()`.
 */
export function mapWithController<T, R>(
  controller: BackpressureController,
  source: Iterable<T> | AsyncIterable<T>,
  fn: (item: T, signal: AbortSignal) => R | PromiseLike<R>,
  options: MapOptions = {},
): AsyncIterableIterator<R> {
  if (!isIterable(source)) throw new InvalidOptionError('source', 'an Iterable or AsyncIterable', source)
  if (typeof fn !== 'function') throw new InvalidOptionError('fn', 'a function', fn)
  assertObject('options', options as unknown)
  assertKnownKeys('', options, MAP_OPTION_KEYS)
  const ordered = booleanOption('ordered', options.ordered, false)
  const priority = priorityOption(options.priority)
  const signal = signalOption(options.signal)
  return iterate(new MapRun(controller, source, fn, ordered, priority, signal))
}

async function* iterate<T, R>(run: MapRun<T, R>): AsyncGenerator<R, void, undefined> {
  run.start()
  try {
    for (;;) {
      const value = await run.next()
      if (value === DONE) return
      yield value
    }
  } finally {
    // Runs on completion, on an error, and when the consumer breaks out of its for-await.
    await run.close()
  }
}

/**
 * One iteration of `map`: a pump pulls an item, waits for its permit and starts `fn`; the consumer
 * takes results. Items pulled but not yet yielded (running, or finished and waiting to be taken) are
 * held to the controller's limit, read before each pull, so a limit that moves is followed and a slow
 * consumer stops the pulling; one more item may wait for its permit (the read-ahead), so a freed slot
 * need not wait for the source.
 */
class MapRun<T, R> {
  private iterator: Iterator<T> | AsyncIterator<T> | undefined = undefined
  private readonly abortController = new AbortController()
  private readonly admission: PatientAdmission
  private unsubscribeLimit: () => void = noop
  /** Items whose `fn` has not settled. */
  private running = 0
  /** Index of the next item started, and (ordered) of the next item yielded. */
  private startedCount = 0
  private yieldedCount = 0
  /** Finished results: by index when ordered, else in completion order from `head`. */
  private readonly byIndex = new Map<number, R>()
  private readonly finished: R[] = []
  private head = 0
  private stopped = false
  private failed = false
  private failure: unknown = undefined
  private sourceDone = false
  private pumpDone = false
  private wakeConsumer: (() => void) | undefined = undefined
  private wakePump: (() => void) | undefined = undefined
  private whenIdle: (() => void) | undefined = undefined
  private readonly onLimit = (): void => this.resumePump()
  private readonly onAbort = (): void => this.fail(this.signal!.reason)

  constructor(
    private readonly controller: BackpressureController,
    private readonly source: Iterable<T> | AsyncIterable<T>,
    private readonly fn: (item: T, signal: AbortSignal) => R | PromiseLike<R>,
    private readonly ordered: boolean,
    priority: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    // Every fn running at once gets this one signal, up to the limit of them, and each may listen to
    // it (fetch does): more than Node's 10 is expected, not a leak.
    setMaxListeners(0, this.abortController.signal)
    this.admission = new PatientAdmission(controller, priority, this.abortController.signal)
  }

  start(): void {
    if (this.signal?.aborted) {
      this.fail(this.signal.reason)
      this.pumpDone = true
      return
    }
    this.signal?.addEventListener('abort', this.onAbort, { once: true })
    this.unsubscribeLimit = this.controller.on('limit', this.onLimit)
    try {
      const source = this.source as Partial<AsyncIterable<T> & Iterable<T>>
      const openAsync = source[Symbol.asyncIterator]
      this.iterator = openAsync !== undefined ? openAsync.call(source) : source[Symbol.iterator]!()
    } catch (error) {
      this.sourceDone = true
      this.fail(error)
      this.pumpDone = true
      return
    }
    void this.pump()
  }

  /** The next result, DONE after the last; throws the error that ended the iteration. */
  async next(): Promise<R | typeof DONE> {
    for (;;) {
      if (this.failed) throw this.failure
      if (this.ordered ? this.byIndex.has(this.yieldedCount) : this.head < this.finished.length) {
        const value = this.take()
        this.resumePump()
        return value
      }
      if (this.pumpDone && this.running === 0) return DONE
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve
      })
    }
  }

  /** Ends the iteration: in-flight work is aborted (unless all is done) and awaited, the source returned. */
  async close(): Promise<void> {
    if (!this.stopped && !(this.pumpDone && this.running === 0)) {
      this.stop(new DOMException('The iteration ended before its source did', 'AbortError'))
    }
    this.stopped = true
    if (this.running > 0) {
      await new Promise<void>((resolve) => {
        this.whenIdle = resolve
      })
    }
    this.signal?.removeEventListener('abort', this.onAbort)
    this.unsubscribeLimit()
    this.admission.dispose()
    if (!this.sourceDone && this.iterator !== undefined) {
      this.sourceDone = true
      try {
        await this.iterator.return?.()
      } catch (error) {
        // As for-await does: the error that ended the iteration wins over one from return().
        if (!this.failed) throw error
      }
    }
  }

  private take(): R {
    if (this.ordered) {
      const value = this.byIndex.get(this.yieldedCount)!
      this.byIndex.delete(this.yieldedCount++)
      return value
    }
    const value = this.finished[this.head]!
    this.finished[this.head++] = undefined as R
    if (this.head === this.finished.length) {
      this.finished.length = 0
      this.head = 0
    }
    return value
  }

  /** Items pulled and admitted but not yet taken by the consumer. */
  private held(): number {
    return this.running + (this.ordered ? this.byIndex.size : this.finished.length - this.head)
  }

  private async pump(): Promise<void> {
    const iterator = this.iterator!
    let holding = false
    let item: T | undefined
    try {
      while (!this.stopped) {
        if (!holding) {
          // Pulled and not yet taken: up to the limit, plus the one item that waits for its permit.
          if (this.held() > this.controller.limit) {
            await new Promise<void>((resolve) => {
              this.wakePump = resolve
            })
            continue
          }
          let step: IteratorResult<T>
          try {
            step = await iterator.next()
          } catch (error) {
            // An iterator that threw is finished: its return() is not called.
            this.sourceDone = true
            throw error
          }
          if (step.done) {
            this.sourceDone = true
            break
          }
          if (this.stopped) break
          item = step.value
          holding = true
        }
        const permit = await this.admission.acquire()
        if (permit === undefined) break
        // Stopped while the permit was on its way (acquire resolves a tick later): nothing more starts.
        if (this.stopped) {
          permit.release()
          break
        }
        holding = false
        void this.runOne(item as T, permit, this.startedCount++)
      }
    } catch (error) {
      this.fail(error)
    } finally {
      this.pumpDone = true
      this.resumeConsumer()
    }
  }

  private async runOne(item: T, permit: Permit, index: number): Promise<void> {
    this.running++
    try {
      const value = await this.fn(item, this.abortController.signal)
      if (!this.stopped) {
        if (this.ordered) this.byIndex.set(index, value)
        else this.finished.push(value)
      }
    } catch (error) {
      // Once stopped, an error is the aborted work's answer to its signal, not news.
      if (!this.stopped) this.fail(error)
    } finally {
      this.running--
      permit.release()
      if (this.running === 0) this.whenIdle?.()
      this.resumeConsumer()
      this.resumePump()
    }
  }

  /** The first error ends the iteration; later ones (the aborted work's) are dropped. */
  private fail(error: unknown): void {
    if (this.failed) return
    this.failed = true
    this.failure = error
    this.stop(error)
    this.resumeConsumer()
  }

  private stop(reason: unknown): void {
    if (this.stopped) return
    this.stopped = true
    this.abortController.abort(reason)
    this.resumePump()
  }

  private resumePump(): void {
    const wake = this.wakePump
    this.wakePump = undefined
    wake?.()
  }

  private resumeConsumer(): void {
    const wake = this.wakeConsumer
    this.wakeConsumer = undefined
    wake?.()
  }
}

function isIterable(value: unknown): value is Iterable<unknown> | AsyncIterable<unknown> {
  if (value === null || value === undefined) return false
  const candidate = value as Partial<Iterable<unknown> & AsyncIterable<unknown>>
  return (
    typeof candidate[Symbol.asyncIterator] === 'function' || typeof candidate[Symbol.iterator] === 'function'
  )
}

function noop(): void {}
