import { randomUUID } from 'node:crypto'
import { InvalidOptionError, type SharedBaseline } from '@backpressure/core'
import type { Cluster, Redis } from 'ioredis'
import { checkedClient, functionOption, msOption } from './options.js'
import { BASELINE_SCRIPT } from './script.js'

export interface RedisSharedBaselineOptions {
  /**
   * The ioredis client (a `Redis` or a `Cluster`: the fleet's baselines are one key) the share sends
   * its script through. Never connected, quit or configured here; configure it to fail fast.
   */
  readonly client: Redis | Cluster
  /**
   * The hash holding the fleet's baselines, one field per instance: one key per downstream the fleet
   * shares (two databases of different speeds must not share a baseline).
   * @default 'bp:baseline'
   */
  readonly key?: string
  /** How long an instance's baseline counts after it published it, in ms (Redis's clock): about three probe intervals. @default 30000 */
  readonly ttl?: number
  /** How often the fleet's baseline is read, in the background, in ms. @default 5000 */
  readonly refreshInterval?: number
  /** Called with every Redis failure; the limit then goes on with its own baseline. */
  readonly reportError?: (error: unknown) => void
}

/** Every key of RedisSharedBaselineOptions (the compiler keeps the two in step): any other is refused. */
const OPTION_KEYS: readonly string[] = Object.keys({
  client: true,
  key: true,
  ttl: true,
  refreshInterval: true,
  reportError: true,
} satisfies Record<keyof RedisSharedBaselineOptions, true>)

const COMMAND = 'backpressureSharedBaseline'
const MAX_TIMER_MS = 2 ** 31 - 1

type BaselineCommand = (key: string, id: string, ms: string, ttl: number) => Promise<string[]>

/**
 * The adaptive limit's no-load baseline shared by the instances of a fleet through Redis, so that an
 * instance joining a busy fleet starts from the fleet's baseline instead of measuring the queue its
 * siblings keep (docs/fleet.md). Pass one per instance as `maxConcurrency: { sharedBaseline }`.
 *
 * Each instance writes its baseline after every probe into one hash field of its own, stamped with
 * Redis's time; the fleet's value is the median of the fields younger than `ttl`. `current()` never
 * waits: it answers from the last read (made when the share is created, then every `refreshInterval`
 * on an unref'd timer until `close()`), and nothing while Redis has not answered or is down.
 *
 * @example
 * const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
 * app.use(backpressure({ maxConcurrency: { sharedBaseline: new RedisSharedBaseline({ client: redis, key: 'bp:baseline:orders-db' }) } }))
 */
export class RedisSharedBaseline implements SharedBaseline {
  readonly client: Redis | Cluster
  readonly key: string
  readonly ttl: number
  readonly refreshInterval: number
  /** This instance's field in the hash. */
  readonly id = randomUUID()
  private readonly reportError: ((error: unknown) => void) | undefined
  private readonly command: BaselineCommand
  private fleetMs: number | undefined
  /** performance.now() when the read that gave `fleetMs` was sent. */
  private readAt = Number.NEGATIVE_INFINITY
  /** The background read, while under way: one at a time. */
  private reading: Promise<number | undefined> | undefined
  private readonly timer: NodeJS.Timeout
  /** Commands sent and not yet answered: close() waits for them before it removes this field. */
  private readonly inFlight = new Set<Promise<unknown>>()
  private closed = false

  constructor(options: RedisSharedBaselineOptions) {
    const client = checkedClient(options, OPTION_KEYS)
    const key = options.key ?? 'bp:baseline'
    if (typeof key !== 'string' || key === '') throw new InvalidOptionError('key', 'a non-empty string', key)
    this.ttl = msOption('ttl', options.ttl) ?? 30_000
    // At most what a Node timer takes: setInterval runs a longer delay every millisecond.
    this.refreshInterval = msOption('refreshInterval', options.refreshInterval, MAX_TIMER_MS) ?? 5_000
    const reportError = functionOption('reportError', options.reportError)
    this.client = client
    this.key = key
    this.reportError = reportError
    this.client.defineCommand(COMMAND, { numberOfKeys: 1, lua: BASELINE_SCRIPT })
    const command = (this.client as unknown as Record<string, BaselineCommand>)[COMMAND]!
    this.command = command.bind(this.client)
    // Read now, and every refreshInterval: a limit asks once, at its first update, which comes when
    // its first requests do (about 100 ms from now, or whenever a balancer first sends it traffic),
    // and must be answered at once with what the fleet knows then. Unref'd: it never keeps a process up.
    this.readInBackground()
    this.timer = setInterval(() => this.readInBackground(), this.refreshInterval)
    this.timer.unref()
  }

  private readInBackground(): void {
    this.reading ??= this.refresh().then((fleetMs) => {
      this.reading = undefined
      return fleetMs
    })
  }

  /** The fleet's baseline in ms as last read, or undefined. Never waits. */
  current(): number | undefined {
    return performance.now() - this.readAt < this.ttl ? this.fleetMs : undefined
  }

  /**
   * Writes this instance's baseline (the limit calls it after each probe and does not wait). Resolves
   * to the fleet's baseline after the write, or undefined; never rejects.
   */
  publish(baselineMs: number): Promise<number | undefined> {
    if (this.closed || !Number.isFinite(baselineMs) || baselineMs <= 0) return Promise.resolve(this.fleetMs)
    return this.run(String(baselineMs))
  }

  /** Reads the fleet's baseline now; resolves to it, or undefined. Never rejects. */
  refresh(): Promise<number | undefined> {
    if (this.closed) return Promise.resolve(this.current())
    return this.run('')
  }

  /**
   * Stops reading and writing (a probe that ends while the server drains publishes nothing), waits
   * for the commands already sent, and removes this instance's baseline, so the fleet stops counting
   * it then rather than `ttl` later. Never rejects.
   */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await Promise.all(this.inFlight)
    try {
      await this.client.hdel(this.key, this.id)
    } catch (error) {
      this.report(error)
    }
  }

  private run(ms: string): Promise<number | undefined> {
    const startedAt = performance.now()
    const sent = this.command(this.key, ms === '' ? '' : this.id, ms, this.ttl)
      .then((fresh) => {
        if (!Array.isArray(fresh))
          throw new TypeError(`${COMMAND}: expected an array reply, got ${typeof fresh}`)
        const fleetMs = median(fresh.map(Number).filter((v) => Number.isFinite(v) && v > 0))
        // Replies on two connections (a Cluster's) may arrive out of order: keep the newest read.
        if (startedAt >= this.readAt) {
          this.fleetMs = fleetMs
          this.readAt = startedAt
        }
        return fleetMs
      })
      .catch((error: unknown) => {
        this.report(error)
        return undefined
      })
      .finally(() => this.inFlight.delete(sent))
    this.inFlight.add(sent)
    return sent
  }

  private report(error: unknown): void {
    if (this.reportError === undefined) return
    try {
      this.reportError(error)
    } catch {
      // A reporter that throws must not turn a Redis outage into an unhandled rejection.
    }
  }
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined
  values.sort((a, b) => a - b)
  const mid = values.length >> 1
  return values.length % 2 === 1 ? values[mid] : (values[mid - 1]! + values[mid]!) / 2
}
