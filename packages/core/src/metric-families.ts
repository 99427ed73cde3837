import type { HistogramSnapshot } from './cumulative-histogram.js'
import type { BackpressureStats } from './stats.js'

/** How prom-client's AggregatorRegistry combines one series across cluster workers. */
export type ClusterAggregator = 'sum' | 'max'

interface FamilyBase {
  /** The metric name (without any prefix an exporter adds). */
  readonly name: string
  readonly help: string
  readonly aggregator: ClusterAggregator
}

export interface ScalarFamily extends FamilyBase {
  readonly type: 'counter' | 'gauge'
  readonly read: (stats: BackpressureStats) => number
}

export interface HistogramFamily extends FamilyBase {
  readonly type: 'histogram'
  readonly read: (stats: BackpressureStats) => HistogramSnapshot
}

/**
 * Every Prometheus metric family, defined once: core's dependency-free renderer (`renderPrometheus`)
 * and `@backpressure/prometheus`'s prom-client collectors both expose exactly these names, types and
 * help texts (DESIGN §4 names, base units). `rejections_total` is listed apart because it carries the
 * `reason` label.
 */
export const SCALAR_FAMILIES: readonly ScalarFamily[] = [
  {
    name: 'backpressure_requests_total',
    type: 'counter',
    help: 'Admission attempts.',
    aggregator: 'sum',
    read: (s) => s.requests,
  },
  {
    name: 'backpressure_queue_depth',
    type: 'gauge',
    help: 'Requests waiting for a slot.',
    aggregator: 'sum',
    read: (s) => s.queueDepth,
  },
  {
    name: 'backpressure_queue_max_depth',
    type: 'gauge',
    help: 'Configured bound of the queue.',
    aggregator: 'sum',
    read: (s) => s.maxQueueDepth,
  },
  {
    name: 'backpressure_in_flight',
    type: 'gauge',
    help: 'Requests running.',
    aggregator: 'sum',
    read: (s) => s.inFlight,
  },
  {
    name: 'backpressure_concurrency_limit',
    type: 'gauge',
    help: 'Concurrency limit in force.',
    aggregator: 'sum',
    read: (s) => s.limit,
  },
  {
    name: 'backpressure_abandoned_permits_total',
    type: 'counter',
    help: 'Permits released after the abandonment bound: the client left and the route never ended.',
    aggregator: 'sum',
    read: (s) => s.abandoned,
  },
  {
    name: 'backpressure_body_timeouts_total',
    type: 'counter',
    help: 'Requests answered 408 because their body did not arrive within the body timeout.',
    aggregator: 'sum',
    read: (s) => s.bodyTimeouts,
  },
  {
    name: 'backpressure_active',
    type: 'gauge',
    help: '1 while requests are being queued or shed, else 0.',
    // One worker under pressure makes the service under pressure.
    aggregator: 'max',
    read: (s) => (s.backpressureActive ? 1 : 0),
  },
  {
    name: 'backpressure_active_seconds_total',
    type: 'counter',
    help: 'Seconds backpressure has been active.',
    aggregator: 'sum',
    read: (s) => s.activeSeconds,
  },
  {
    name: 'backpressure_latency_p99_seconds',
    type: 'gauge',
    help: 'p99 latency (queue wait and service) over the sliding window.',
    // Percentiles do not add; the worst worker's is an upper bound of the whole.
    aggregator: 'max',
    read: (s) => s.p99LatencyMs / 1000,
  },
  {
    name: 'backpressure_event_loop_lag_seconds',
    type: 'gauge',
    help: 'How late the event-loop shedder last found the loop.',
    aggregator: 'max',
    read: (s) => s.eventLoopLagMs / 1000,
  },
  {
    name: 'backpressure_event_loop_shed_ratio',
    type: 'gauge',
    help: 'Share of arrivals turned away to hold the event-loop lag at its target (0-1).',
    aggregator: 'max',
    read: (s) => s.eventLoopShedFraction,
  },
]

export const REJECTIONS_FAMILY = {
  name: 'backpressure_rejections_total',
  type: 'counter',
  help: 'Requests turned away, by stable reason code.',
  aggregator: 'sum',
} as const

export const HISTOGRAM_FAMILIES: readonly HistogramFamily[] = [
  {
    name: 'backpressure_request_duration_seconds',
    type: 'histogram',
    help: 'Service time of admitted requests.',
    aggregator: 'sum',
    read: (s) => s.histograms.requestDurationSeconds,
  },
  {
    name: 'backpressure_queue_wait_seconds',
    type: 'histogram',
    help: 'Time admitted requests waited in the queue.',
    aggregator: 'sum',
    read: (s) => s.histograms.queueWaitSeconds,
  },
  {
    name: 'backpressure_retry_after_seconds',
    type: 'histogram',
    help: 'Retry-After values sent with rejections.',
    aggregator: 'sum',
    read: (s) => s.histograms.retryAfterSeconds,
  },
]

/** Name, type and help of every family, in exposition order. */
export const METRIC_FAMILIES: readonly {
  readonly name: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  readonly help: string
}[] = [SCALAR_FAMILIES[0]!, REJECTIONS_FAMILY, ...SCALAR_FAMILIES.slice(1), ...HISTOGRAM_FAMILIES].map(
  ({ name, type, help }) => Object.freeze({ name, type, help }),
)
