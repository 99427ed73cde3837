/**
 * What the examples share: a database with a fixed number of connections, simulated, and the orders
 * service over it. The pool behaves like pg-pool: `connections` queries run at once, each takes
 * `queryMs`, and every further caller waits in an unbounded FIFO — the queue that grows without limit
 * under overload unless something in front of it (backpressure) bounds the work let in.
 */

export interface PoolOptions {
  /** Connections: queries that run at once. @default 4 */
  readonly connections?: number
  /** How long each query takes, in ms. @default 10 */
  readonly queryMs?: number
}

export class SimulatedPool {
  private size: number
  readonly queryMs: number
  private active = 0
  // An array with a moving head, compacted now and then: FIFO without shift() per dequeue.
  private waiters: Waiter[] = []
  private head = 0
  private queriesRun = 0
  private cancelledWaiters = 0

  constructor(options: PoolOptions = {}) {
    this.size = checkConnections(options.connections ?? 4)
    this.queryMs = options.queryMs ?? 10
    if (!(this.queryMs >= 0)) {
      throw new TypeError(`Expected \`queryMs\` to be a number from 0 and up, got ${this.queryMs}`)
    }
  }

  /** Connections: queries that run at once. */
  get connections(): number {
    return this.size
  }

  /**
   * Changes the number of connections while the pool runs (a failover, a noisy neighbour): more start
   * waiting queries at once; fewer take effect as running queries finish.
   */
  resize(connections: number): void {
    this.size = checkConnections(connections)
    while (this.active < this.size && this.waiting > 0) {
      this.active++
      this.release()
    }
  }

  /** Queries running now. */
  get busy(): number {
    return this.active
  }

  /** Callers waiting for a connection now. */
  get waiting(): number {
    return this.waiters.length - this.head - this.cancelledWaiters
  }

  /** Queries completed since start. */
  get completed(): number {
    return this.queriesRun
  }

  /**
   * Runs `work` on a connection once one is free, after the query's simulated I/O time. With a
   * `signal` (the request's: `req.signal`, `ctx.signal`, `request.clientSignal`), a caller that leaves
   * gives up its place in the pool's queue, and a running query is cancelled and frees its connection
   * at once, as a driver's query cancellation does: no work for a client that is gone.
   */
  async query<T>(work: () => T, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted()
    await this.connect(signal)
    try {
      await this.io(signal)
      this.queriesRun++
      return work()
    } finally {
      this.release()
    }
  }

  private io(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        signal?.removeEventListener('abort', cancel)
        resolve()
      }
      const timer = setTimeout(done, this.queryMs)
      const cancel = () => {
        clearTimeout(timer)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', cancel, { once: true })
    })
  }

  private connect(signal: AbortSignal | undefined): Promise<void> {
    if (this.active < this.size) {
      this.active++
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, cancelled: false }
      this.waiters.push(waiter)
      signal?.addEventListener(
        'abort',
        () => {
          // Left in place and skipped when its turn comes: no search through the queue.
          if (waiter.cancelled) return
          waiter.cancelled = true
          this.cancelledWaiters++
          reject(signal.reason)
        },
        { once: true },
      )
    })
  }

  private release(): void {
    // The pool shrank: this connection closes instead of going to the next waiter.
    if (this.active > this.size) {
      this.active--
      return
    }
    while (this.head < this.waiters.length) {
      // The connection goes straight to the next waiter still there; `active` stays the same.
      const next = this.waiters[this.head++] as Waiter
      if (this.head > 1024 && this.head * 2 > this.waiters.length) {
        this.waiters = this.waiters.slice(this.head)
        this.head = 0
      }
      if (next.cancelled) {
        this.cancelledWaiters--
        continue
      }
      next.cancelled = true
      next.resolve()
      return
    }
    this.active--
  }
}

interface Waiter {
  readonly resolve: () => void
  cancelled: boolean
}

function checkConnections(connections: number): number {
  if (!Number.isInteger(connections) || connections < 1) {
    throw new TypeError(`Expected \`connections\` to be an integer from 1 and up, got ${connections}`)
  }
  return connections
}

export interface Order {
  readonly id: number
  readonly item: string
  readonly quantity: number
  readonly createdAt: string
}

export interface NewOrder {
  readonly item: string
  readonly quantity: number
}

/** Checks a request body: `{ item: non-empty string, quantity: positive integer }`, or undefined. */
export function parseNewOrder(body: unknown): NewOrder | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const { item, quantity } = body as Record<string, unknown>
  if (typeof item !== 'string' || item.length === 0 || item.length > 200) return undefined
  if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1) return undefined
  return { item, quantity }
}

/** The orders API's data access: every call is one query on the pool. */
export class OrderService {
  private readonly orders: Order[] = []
  private nextId = 1

  constructor(readonly pool: SimulatedPool) {}

  /** Stores an order; `signal` cancels it while it waits for, or runs on, a connection. */
  create(input: NewOrder, signal?: AbortSignal): Promise<Order> {
    return this.pool.query(() => {
      const order: Order = { id: this.nextId++, ...input, createdAt: new Date().toISOString() }
      this.orders.push(order)
      return order
    }, signal)
  }

  /** The newest orders first, at most `limit`. */
  list(limit = 50, signal?: AbortSignal): Promise<readonly Order[]> {
    return this.pool.query(() => this.orders.slice(-limit).reverse(), signal)
  }
}

/** The simulated database's size from the environment (`DB_CONNECTIONS`, `DB_QUERY_MS`), as the examples start it. */
export function poolOptionsFromEnv(): PoolOptions {
  return {
    connections: Number(process.env.DB_CONNECTIONS ?? 4),
    queryMs: Number(process.env.DB_QUERY_MS ?? 10),
  }
}

/**
 * Draining on SIGTERM/SIGINT: closing the limiter turns /ready to 503 (the load balancer stops sending
 * new traffic) and answers queued requests with 503; the server then stops once the requests in flight
 * have finished.
 */
export function drainOnSignals(limiter: { close(): Promise<void> }, server: { close(): unknown }): void {
  const drain = () => {
    void limiter.close().then(() => server.close())
  }
  process.once('SIGTERM', drain)
  process.once('SIGINT', drain)
}
