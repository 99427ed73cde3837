/** Helpers shared by the map and writable tests: work the test finishes by hand, and a settled loop. */

/** Lets every pending promise callback and I/O callback run (no timer, no clock time). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A unit of work the test finishes by hand, recording whether its signal was aborted. */
export class Job<T> {
  readonly promise: Promise<T>
  resolve!: (value: T) => void
  reject!: (error: unknown) => void
  settled = false

  constructor(
    readonly item: T,
    readonly signal: AbortSignal,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true
        resolve(value)
      }
      this.reject = (error) => {
        this.settled = true
        reject(error)
      }
    })
  }
}

/**
 * A `fn` for map/writable whose calls wait until the test finishes them; counts the calls running
 * at once and the most ever seen.
 */
export function manualWork<T>() {
  const pending: Job<T>[] = []
  const all: Job<T>[] = []
  const state = { running: 0, maxRunning: 0 }
  const fn = (item: T, signal: AbortSignal): Promise<T> => {
    const job = new Job(item, signal)
    pending.push(job)
    all.push(job)
    state.running++
    state.maxRunning = Math.max(state.maxRunning, state.running)
    const done = (): void => {
      state.running--
      pending.splice(pending.indexOf(job), 1)
    }
    job.promise.then(done, done)
    return job.promise
  }
  return { fn, pending, all, state }
}

/** A source that counts how many items were pulled from it and whether it was returned early. */
export function countingSource(count: number) {
  const state = { pulled: 0, returned: false, finished: false }
  async function* source(): AsyncGenerator<number> {
    try {
      for (let i = 0; i < count; i++) {
        state.pulled++
        yield i
      }
      state.finished = true
    } finally {
      if (!state.finished) state.returned = true
    }
  }
  return { source: source(), state }
}
