/**
 * The simulated database of DESIGN §7: a pool of `size` connections, each query holding one for
 * `queryMs` of I/O. Callers beyond the pool wait in the pool's own unbounded FIFO, as pg-pool's do:
 * that unbounded queue is exactly what an unprotected server falls into under overload.
 */

export interface SimPoolOptions {
  /** Connections (P). */
  readonly size: number
  /** Milliseconds of I/O per query (S). */
  readonly queryMs: number
  /** The query itself; the default waits `queryMs` on a timer. Tests pass one they settle by hand. */
  readonly run?: (tag: unknown) => Promise<void>
}

interface Waiter {
  readonly resolve: () => void
  readonly reject: (error: Error) => void
  readonly deadlineAt: number
}

export class SimPool {
  private sizeNow: number
  private busyNow = 0
  private readonly run: (tag: unknown) => Promise<void>
  // A ring-free FIFO: an array with a moving head, compacted when half is dead. No shift() per query.
  private waiters: Waiter[] = []
  private head = 0
  private closed = false
  /** Queries started. */
  queries = 0
  /** Queries that started after their client's deadline had passed: work done for nobody. */
  departed = 0
  /** The most connections ever busy at once; a test checks it never passes the pool size. */
  maxBusy = 0

  constructor(options: SimPoolOptions) {
    this.sizeNow = options.size
    const queryMs = options.queryMs
    this.run = options.run ?? (() => new Promise<void>((resolve) => setTimeout(resolve, queryMs)))
  }

  get size(): number {
    return this.sizeNow
  }

  get busy(): number {
    return this.busyNow
  }

  get waiting(): number {
    return this.waiters.length - this.head
  }

  /** Changes the number of connections: extra waiters start at once when it grows; when it shrinks, running queries finish and no new one starts until busy < size. */
  resize(size: number): void {
    this.sizeNow = size
    this.pump()
  }

  /**
   * Runs one query. `deadlineAt` (performance.now() ms) is when the client that asked gives up; a
   * query that starts after it is counted as work for a departed client. `tag` is handed to `run`.
   */
  async query(deadlineAt = Number.POSITIVE_INFINITY, tag?: unknown): Promise<void> {
    if (this.closed) throw new Error('pool closed')
    if (this.busyNow >= this.sizeNow || this.waiting > 0) {
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject, deadlineAt })
      })
    } else {
      this.take(deadlineAt)
    }
    try {
      await this.run(tag)
    } finally {
      this.busyNow--
      this.pump()
    }
  }

  /** Fails every waiter; used when a benchmark phase ends. */
  close(): void {
    this.closed = true
    const error = new Error('pool closed')
    while (this.waiting > 0) this.next().reject(error)
  }

  private take(deadlineAt: number): void {
    this.busyNow++
    if (this.busyNow > this.maxBusy) this.maxBusy = this.busyNow
    this.queries++
    if (performance.now() > deadlineAt) this.departed++
  }

  private next(): Waiter {
    const waiter = this.waiters[this.head]!
    this.waiters[this.head] = undefined as unknown as Waiter
    this.head++
    if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head)
      this.head = 0
    }
    return waiter
  }

  private pump(): void {
    while (this.busyNow < this.sizeNow && this.waiting > 0) {
      const waiter = this.next()
      // The slot is taken now, synchronously, so a newcomer cannot barge past the FIFO.
      this.take(waiter.deadlineAt)
      waiter.resolve()
    }
  }
}

/** Burns about `ms` of CPU on the event loop: the CPU-bound variant's request work. */
export function spin(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy
  }
}
