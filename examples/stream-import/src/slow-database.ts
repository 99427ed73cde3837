/**
 * A stand-in for a real database: `connections` connections, each insert holding one for `insertMs`.
 * Inserts beyond the pool wait in the pool's own queue, unbounded, as pg-pool's do — the queue an
 * import without backpressure fills with the whole file.
 */
export class SlowDatabase {
  readonly rows = new Map<number, string>()
  /** Connections busy now, the most ever busy at once, and inserts waiting for one. */
  busy = 0
  maxBusy = 0
  private readonly waiting: (() => void)[] = []
  private waitingHead = 0

  constructor(
    readonly connections: number,
    readonly insertMs: number,
  ) {}

  get queued(): number {
    return this.waiting.length - this.waitingHead
  }

  /** Inserts one row; rejects when `signal` aborts first (the import was stopped). */
  async insert(id: number, name: string, signal?: AbortSignal): Promise<void> {
    if (this.busy >= this.connections) {
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    }
    this.busy++
    this.maxBusy = Math.max(this.maxBusy, this.busy)
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          clearTimeout(timer)
          reject(signal!.reason)
        }
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }, this.insertMs)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
      this.rows.set(id, name)
    } finally {
      this.busy--
      this.next()
    }
  }

  private next(): void {
    if (this.waitingHead === this.waiting.length) return
    const wake = this.waiting[this.waitingHead]!
    this.waiting[this.waitingHead++] = undefined as never
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0
      this.waitingHead = 0
    }
    wake()
  }
}
