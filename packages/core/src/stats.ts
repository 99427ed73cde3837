import type { HistogramSnapshot } from './cumulative-histogram.js'
import { REJECTION_REASON_LIST, type RejectionReason } from './errors.js'

/**
 * Which rejections the client caused rather than a lack of capacity: it left while queued (`aborted`),
 * spent its own rate limit (`rate_limited`), or declared a deadline that passed before its work could
 * start (`deadline_exceeded`: anyone can send `x-request-timeout-ms: 0`). They are counted by reason
 * like every other, but they do not make backpressure active (so `/health` stays `healthy`), and they
 * are left out of `rejectionRate` and of the rejection-rate alert. `downstream_overloaded` is classed
 * with them: the request was admitted and ran; the lack of capacity is a downstream's, not this server's.
 * Every reason must be classed here.
 */
const CLIENT_CAUSED: Readonly<Record<RejectionReason, boolean>> = {
  queue_full: false,
  displaced: false,
  queue_timeout: false,
  queue_delay: false,
  concurrency_limit: false,
  latency: false,
  event_loop_delay: false,
  event_loop_utilization: false,
  heap: false,
  rss: false,
  deadline_exceeded: true,
  circuit_open: false,
  shutting_down: false,
  aborted: true,
  rate_limited: true,
  downstream_overloaded: true,
}

/** The rejection reasons a client causes itself, which are not overload (see `rejectionRate`). */
export const CLIENT_CAUSED_REASONS: readonly RejectionReason[] = Object.freeze(
  REJECTION_REASON_LIST.filter((reason) => CLIENT_CAUSED[reason]),
)

export function isClientCaused(reason: RejectionReason): boolean {
  return CLIENT_CAUSED[reason]
}

/**
 * Rejections for lack of capacity among the requests the server could have served: client-caused
 * rejections are left out of both sides, so a flood of spent deadlines neither raises the rate nor
 * dilutes a real overload's.
 */
export function overloadRejectionRate(
  requests: number,
  rejected: number,
  rejections: Readonly<Record<RejectionReason, number>>,
): number {
  let clientCaused = 0
  for (const reason of CLIENT_CAUSED_REASONS) clientCaused += rejections[reason]
  const servable = requests - clientCaused
  return servable <= 0 ? 0 : (rejected - clientCaused) / servable
}

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
  /**
   * Rejections for lack of capacity / requests since start (0–1), both without the rejections the
   * client caused (`aborted`, `rate_limited`, `deadline_exceeded`: `CLIENT_CAUSED_REASONS`).
   */
  readonly rejectionRate: number
  readonly throughputPerSecond: number
  /** True while requests are queued near the bound or shed for overload, and for a second after. */
  readonly backpressureActive: boolean
  /** Total seconds backpressure has been active since start. */
  readonly activeSeconds: number
  readonly shuttingDown: boolean
  readonly eventLoopDelayMs: number
  readonly eventLoopUtilization: number
  /** How late the event-loop shedder's timer ran at its last tick, in ms (0 with the shedder off). */
  readonly eventLoopLagMs: number
  /** The share of arrivals the event-loop shedder turns away now (0–1). */
  readonly eventLoopShedFraction: number
  /** While backpressure is active: the reason of the last overload rejection (which signal sheds). */
  readonly pressureReason: RejectionReason | undefined
  readonly histograms: {
    readonly requestDurationSeconds: HistogramSnapshot
    readonly queueWaitSeconds: HistogramSnapshot
    readonly retryAfterSeconds: HistogramSnapshot
  }
}
