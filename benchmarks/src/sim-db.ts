/**
 * The simulated database of DESIGN §7: a pool of `size` connections, each query holding one for
 * `queryMs` of I/O. Callers beyond the pool wait in the pool's own unbounded FIFO, as pg-pool's do:
 * that unbounded queue is exactly what an unprotected server falls into under overload.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads'
import { Fifo } from './fifo.js'

/**
 * The database server, on a thread of its own: a query holds its connection for `queryMs` from when
 * the app sent it, and the answer then waits, like a reply in a socket buffer, until the app's event
 * loop reads it, so a busy app still pays for its own lateness. A `setTimeout` on the app's loop would
 * instead fire up to a millisecond late even when idle (libuv keeps time in whole milliseconds): a
 * mean hold of 10.4-10.6 ms for 10 ms queries at 2× load, a pool slower than the P / S the scenario
 * promises, and a goodput bar no system could reach. The thread sleeps in `Atomics.wait` and spins the
 * last quarter millisecond; `calibrate()` measures the mean delay from the thread posting an answer
 * to an idle app reading it (about 0.1 ms here, a thread wake-up) and the thread answers that much
 * early, so an idle app sees each query take `queryMs`. Queries all take the same time, so they finish
 * in the order sent and both sides keep a plain FIFO.
 */
export class SimDatabase {
  private readonly worker: Worker
  private readonly port: MessagePort
  /** [0]: bumped to wake the thread; as Float64 at [1]: ms to answer early. */
  private readonly shared = new SharedArrayBuffer(16)
  private readonly wake = new Int32Array(this.shared, 0, 1)
  private readonly earlyMs = new Float64Array(this.shared, 8, 1)
  private readonly answers = new Fifo<(postedAt: number) => void>()

  constructor(queryMs: number) {
    const { port1, port2 } = new MessageChannel()
    this.port = port1
    this.worker = new Worker(DATABASE_THREAD, {
      eval: true,
      workerData: { port: port2, shared: this.shared, queryMs, spinMs: 0.25 },
      transferList: [port2],
    })
    this.worker.unref()
    this.port.on('message', (postedAt: number) => {
      const answer = this.answers.shift()!
      // Only a pending query keeps the process alive, as an open database socket would.
      if (this.answers.size === 0) this.port.unref()
      answer(postedAt)
    })
    this.port.unref()
  }

  query(): Promise<void> {
    return new Promise<void>((resolve) => this.send(() => resolve()))
  }

  /** Measures the idle delivery delay over `samples` sequential queries and answers that much early from then on; resolves to it in ms. */
  async calibrate(samples = 40): Promise<number> {
    const delays: number[] = []
    for (let i = 0; i < samples; i++) {
      const postedAt = await new Promise<number>((resolve) => this.send(resolve))
      delays.push(monotonicMs() - postedAt)
    }
    // The mean, since capacity is P over the mean hold; without the slowest tenth, which are the
    // machine's hiccups, not the delivery path.
    delays.sort((a, b) => a - b)
    const kept = delays.slice(0, Math.ceil(delays.length * 0.9))
    const mean = kept.reduce((sum, d) => sum + d, 0) / kept.length
    // A bound, so a calibration on a busy machine cannot make the database faster than it claims by much.
    this.earlyMs[0] = Math.min(mean, 0.5)
    return this.earlyMs[0]
  }

  close(): Promise<number> {
    return this.worker.terminate()
  }

  private send(answer: (postedAt: number) => void): void {
    if (this.answers.size === 0) this.port.ref()
    this.answers.push(answer)
    this.port.postMessage(monotonicMs())
    Atomics.add(this.wake, 0, 1)
    Atomics.notify(this.wake, 0)
  }
}

/** CLOCK_MONOTONIC in ms: the one clock both threads read the same. */
function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime()
  return seconds * 1e3 + nanoseconds / 1e6
}

const DATABASE_THREAD = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads')
const { port, queryMs, spinMs } = workerData
const wake = new Int32Array(workerData.shared, 0, 1)
const earlyMs = new Float64Array(workerData.shared, 8, 1)
const now = () => { const t = process.hrtime(); return t[0] * 1e3 + t[1] / 1e6 }
let due = []
let head = 0
for (;;) {
  const seen = Atomics.load(wake, 0)
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    due.push(m.message + queryMs - earlyMs[0])
  }
  let t = now()
  if (head < due.length && due[head] - t < spinMs) {
    while (t < due[head]) t = now()
  }
  while (head < due.length && due[head] <= t) {
    port.postMessage(t)
    head++
  }
  if (head > 1024 && head * 2 > due.length) {
    due = due.slice(head)
    head = 0
  }
  Atomics.wait(wake, 0, seen, head < due.length ? Math.max(0, due[head] - t - spinMs) : Infinity)
}
`
export interface SimPoolOptions {
  /** Connections (P). */
  readonly size: number
  /** Milliseconds of I/O per query (S). */
  readonly queryMs: number
  /** The query itself; the default sends it to a SimDatabase thread. Tests pass one they settle by hand. */
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
  private readonly database: SimDatabase | undefined
  private readonly waiters = new Fifo<Waiter>()
  private closed = false
  /** Queries started. */
  queries = 0
  /** Queries that started after their client's deadline had passed: work done for nobody. */
  departed = 0
  /** The most connections ever busy at once; a test checks it never passes the pool size. */
  maxBusy = 0
  /** Milliseconds connections were held, summed over queries: above queries × queryMs when the app reads answers late. */
  heldMs = 0

  constructor(options: SimPoolOptions) {
    this.sizeNow = options.size
    if (options.run === undefined) {
      const database = new SimDatabase(options.queryMs)
      this.database = database
      this.run = () => database.query()
    } else {
      this.run = options.run
    }
  }

  /** Calibrates the database thread (see SimDatabase.calibrate); 0 when queries run through a custom `run`. */
  calibrate(): Promise<number> {
    return this.database?.calibrate() ?? Promise.resolve(0)
  }

  get size(): number {
    return this.sizeNow
  }

  get busy(): number {
    return this.busyNow
  }

  get waiting(): number {
    return this.waiters.size
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
    const startedAt = performance.now()
    try {
      await this.run(tag)
    } finally {
      this.heldMs += performance.now() - startedAt
      this.busyNow--
      this.pump()
    }
  }

  /** Fails every waiter; used when a benchmark phase ends. */
  close(): void {
    this.closed = true
    void this.database?.close()
    const error = new Error('pool closed')
    while (this.waiting > 0) this.waiters.shift()!.reject(error)
  }

  private take(deadlineAt: number): void {
    this.busyNow++
    if (this.busyNow > this.maxBusy) this.maxBusy = this.busyNow
    this.queries++
    if (performance.now() > deadlineAt) this.departed++
  }

  private pump(): void {
    while (this.busyNow < this.sizeNow && this.waiting > 0) {
      const waiter = this.waiters.shift()!
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
