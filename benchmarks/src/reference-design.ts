/**
 * A transcription of the seed's reference design (shared/seed.txt §5), kept as-is in behaviour so it
 * can be measured beside ours: a `setImmediate` loop that polls forever and starts at most one request
 * per turn, a sort of the whole queue on every dequeue, `shift()`, a p99 computed by copying and sorting
 * up to 1000 latencies on every submit, `Math.random()` shedding, and a `BackpressureError` (with its
 * stack trace) built for every rejection. Defaults: 100 in flight, 1000 queued.
 *
 * The one addition is `stop()`, so a benchmark process can end the polling loop and exit.
 */

export interface SeedConfig {
  maxQueueDepth: number
  maxConcurrency: number
  latencyThresholdMs: number
  adaptiveRejection: boolean
  retryAfterSeconds: number
}

interface QueueMetrics {
  queueDepth: number
  concurrency: number
  p99Latency: number
  rejectionRate: number
  backpressureActive: boolean
}

interface QueuedRequest {
  workFn: () => Promise<unknown>
  priority: number
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
  enqueuedAt: number
}

export class SeedBackpressureError extends Error {
  constructor(
    public reason: string,
    public retryAfterSeconds: number,
  ) {
    super(`Backpressure applied: ${reason}`)
    this.name = 'BackpressureError'
  }
}

export class SeedBackpressureController {
  private queue: QueuedRequest[] = []
  private inFlight = 0
  private latencies: number[] = []
  private rejectionCount = 0
  private requestCount = 0
  private config: SeedConfig
  private stopped = false

  constructor(config: Partial<SeedConfig> = {}) {
    this.config = {
      maxQueueDepth: config.maxQueueDepth ?? 1000,
      maxConcurrency: config.maxConcurrency ?? 100,
      latencyThresholdMs: config.latencyThresholdMs ?? 1000,
      adaptiveRejection: config.adaptiveRejection ?? true,
      retryAfterSeconds: config.retryAfterSeconds ?? 5,
    }
    void this.processQueue()
  }

  /** Not in the seed: ends the polling loop so the process can exit. */
  stop(): void {
    this.stopped = true
  }

  async submit<T>(workFn: () => Promise<T>, priority = 0): Promise<T> {
    this.requestCount++
    const backpressure = this.shouldApplyBackpressure()
    if (backpressure.shouldReject) {
      this.rejectionCount++
      throw new SeedBackpressureError(backpressure.reason, this.config.retryAfterSeconds)
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        workFn,
        priority,
        resolve: resolve as (value: unknown) => void,
        reject,
        enqueuedAt: Date.now(),
      })
    })
  }

  private shouldApplyBackpressure(): { shouldReject: boolean; reason: string } {
    if (this.queue.length >= this.config.maxQueueDepth) {
      return {
        shouldReject: true,
        reason: `Queue full (${this.queue.length}/${this.config.maxQueueDepth})`,
      }
    }
    if (this.config.adaptiveRejection) {
      const p99 = this.getP99Latency()
      if (p99 > this.config.latencyThresholdMs) {
        const overage = (p99 - this.config.latencyThresholdMs) / this.config.latencyThresholdMs
        const rejectionProb = Math.min(overage, 0.9)
        if (Math.random() < rejectionProb) {
          return {
            shouldReject: true,
            reason: `High latency (p99=${p99}ms > ${this.config.latencyThresholdMs}ms)`,
          }
        }
      }
    }
    return { shouldReject: false, reason: '' }
  }

  private async processQueue(): Promise<void> {
    if (this.stopped) return
    setImmediate(() => this.processQueue())
    if (this.inFlight >= this.config.maxConcurrency) return
    if (this.queue.length === 0) return
    this.queue.sort((a, b) => b.priority - a.priority)
    const item = this.queue.shift()!
    this.inFlight++
    try {
      const result = await item.workFn()
      const latency = Date.now() - item.enqueuedAt
      this.recordLatency(latency)
      item.resolve(result)
    } catch (error) {
      item.reject(error)
    } finally {
      this.inFlight--
    }
  }

  private recordLatency(latency: number): void {
    this.latencies.push(latency)
    if (this.latencies.length > 1000) this.latencies.shift()
  }

  private getP99Latency(): number {
    if (this.latencies.length === 0) return 0
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const index = Math.floor(sorted.length * 0.99)
    return sorted[index]!
  }

  getMetrics(): QueueMetrics {
    const p99 = this.getP99Latency()
    return {
      queueDepth: this.queue.length,
      concurrency: this.inFlight,
      p99Latency: p99,
      rejectionRate: this.rejectionCount / this.requestCount,
      backpressureActive:
        p99 > this.config.latencyThresholdMs || this.queue.length > this.config.maxQueueDepth * 0.8,
    }
  }
}
