import type { HistogramSnapshot } from './cumulative-histogram.js'
import type { RejectionReason } from './errors.js'

/** A point-in-time snapshot of a controller, for health checks, metrics and tests. */
export interface BackpressureStats {
  readonly name: string
  readonly queueDepth: number
  readonly maxQueueDepth: number
  readonly inFlight: number
  /** The concurrency limit in force. */
  readonly limit: number
  /** Median latency (queue wait + service) over the latency window, in ms; 0 with no samples. */
  readonly p50LatencyMs: number
  /** p99 latency (queue wait + service) over the latency window, in ms; 0 with no samples. */
  readonly p99LatencyMs: number
  /** Admission attempts since start. */
  readonly requests: number
  readonly admitted: number
  readonly completed: number
  readonly rejected: number
  /**
   * Permits released after the abandonment bound: the client left mid-route and the route neither
   * ended its response nor settled in time, so its work may still run.
   */
  readonly abandoned: number
  /** Requests answered 408 because their body had not arrived within the body timeout. */
  readonly bodyTimeouts: number
  readonly rejections: Readonly<Record<RejectionReason, number>>
  /** rejected / requests since start (0–1). */
  readonly rejectionRate: number
  readonly throughputPerSecond: number
  /** True while requests are being queued or shed, and for a second after. */
  readonly backpressureActive: boolean
  /** Total seconds backpressure has been active since start. */
  readonly activeSeconds: number
  readonly shuttingDown: boolean
  readonly eventLoopDelayMs: number
  readonly eventLoopUtilization: number
  readonly histograms: {
    readonly requestDurationSeconds: HistogramSnapshot
    readonly queueWaitSeconds: HistogramSnapshot
    readonly retryAfterSeconds: HistogramSnapshot
  }
}
