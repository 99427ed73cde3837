/**
 * The consumers' tests' database: `connections` queries at once, each `queryMs` long, every further
 * caller in a FIFO, as pg-pool's. Its size can change while it runs (`resize`), for a capacity drop
 * mid-run; it records the most queries it ever ran at once, to prove a limit held.
 */
export class TestPool {
  private size: number
  private busy = 0
  private readonly waiters: (() => void)[] = []
  private head = 0
  /** Queries completed. */
  completed = 0

  constructor(
    connections: number,
    readonly queryMs: number,
  ) {
    this.size = connections
  }

  get connections(): number {
    return this.size
  }

  /** Queries waiting for a connection now. */
  get waiting(): number {
    return this.waiters.length - this.head
  }

  /** Changes the number of connections; a shrink takes effect as running queries finish. */
  resize(connections: number): void {
    this.size = connections
    while (this.busy < this.size && this.head < this.waiters.length) this.startNext()
  }

  async query(): Promise<void> {
    if (this.busy < this.size) this.busy++
    else await new Promise<void>((resolve) => this.waiters.push(resolve))
    try {
      await new Promise((resolve) => setTimeout(resolve, this.queryMs))
      this.completed++
    } finally {
      this.release()
    }
  }

  private release(): void {
    this.busy--
    if (this.busy < this.size && this.head < this.waiters.length) this.startNext()
  }

  private startNext(): void {
    this.busy++
    const next = this.waiters[this.head++]!
    if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head)
      this.head = 0
    }
    next()
  }
}
