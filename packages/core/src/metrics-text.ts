import type { HistogramSnapshot } from './cumulative-histogram.js'
import { REJECTION_REASON_LIST } from './errors.js'
import type { BackpressureStats } from './stats.js'

/** The Prometheus text exposition format's content type (the same string prom-client sends). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * Renders controllers' stats in the Prometheus text format with no dependency. Several controllers
 * are told apart by the `controller` label. `@backpressure/prometheus` offers the same metrics as
 * prom-client collectors for a registry of the user's.
 */
export function renderPrometheus(all: readonly BackpressureStats[]): string {
  const lines: string[] = []
  const family = (
    name: string,
    type: string,
    help: string,
    values: (stats: BackpressureStats) => string[],
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const stats of all) lines.push(...values(stats))
  }
  const label = (stats: BackpressureStats) => `controller="${escapeLabel(stats.name)}"`
  const sample = (name: string) => (stats: BackpressureStats) => [
    `${name}{${label(stats)}} ${formatNumber(pick(stats, name))}`,
  ]

  family(
    'backpressure_requests_total',
    'counter',
    'Admission attempts.',
    sample('backpressure_requests_total'),
  )
  family(
    'backpressure_rejections_total',
    'counter',
    'Requests turned away, by stable reason code.',
    (stats) =>
      REJECTION_REASON_LIST.map(
        (reason) =>
          `backpressure_rejections_total{${label(stats)},reason="${reason}"} ${stats.rejections[reason]}`,
      ),
  )
  family(
    'backpressure_queue_depth',
    'gauge',
    'Requests waiting for a slot.',
    sample('backpressure_queue_depth'),
  )
  family(
    'backpressure_queue_max_depth',
    'gauge',
    'Configured bound of the queue.',
    sample('backpressure_queue_max_depth'),
  )
  family('backpressure_in_flight', 'gauge', 'Requests running.', sample('backpressure_in_flight'))
  family(
    'backpressure_concurrency_limit',
    'gauge',
    'Concurrency limit in force.',
    sample('backpressure_concurrency_limit'),
  )
  family(
    'backpressure_active',
    'gauge',
    '1 while requests are being queued or shed, else 0.',
    sample('backpressure_active'),
  )
  family(
    'backpressure_active_seconds_total',
    'counter',
    'Seconds backpressure has been active.',
    sample('backpressure_active_seconds_total'),
  )
  family(
    'backpressure_latency_p99_seconds',
    'gauge',
    'p99 latency (queue wait and service) over the sliding window.',
    sample('backpressure_latency_p99_seconds'),
  )
  histogram(
    lines,
    all,
    'backpressure_request_duration_seconds',
    'Service time of admitted requests.',
    (s) => s.histograms.requestDurationSeconds,
  )
  histogram(
    lines,
    all,
    'backpressure_queue_wait_seconds',
    'Time admitted requests waited in the queue.',
    (s) => s.histograms.queueWaitSeconds,
  )
  histogram(
    lines,
    all,
    'backpressure_retry_after_seconds',
    'Retry-After values sent with rejections.',
    (s) => s.histograms.retryAfterSeconds,
  )
  lines.push('')
  return lines.join('\n')
}

function pick(stats: BackpressureStats, name: string): number {
  switch (name) {
    case 'backpressure_requests_total':
      return stats.requests
    case 'backpressure_queue_depth':
      return stats.queueDepth
    case 'backpressure_queue_max_depth':
      return stats.maxQueueDepth
    case 'backpressure_in_flight':
      return stats.inFlight
    case 'backpressure_concurrency_limit':
      return stats.limit
    case 'backpressure_active':
      return stats.backpressureActive ? 1 : 0
    case 'backpressure_active_seconds_total':
      return stats.activeSeconds
    case 'backpressure_latency_p99_seconds':
      return stats.p99LatencyMs / 1000
    default:
      return 0
  }
}

function histogram(
  lines: string[],
  all: readonly BackpressureStats[],
  name: string,
  help: string,
  get: (stats: BackpressureStats) => HistogramSnapshot,
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
  for (const stats of all) {
    const snapshot = get(stats)
    const label = `controller="${escapeLabel(stats.name)}"`
    snapshot.bounds.forEach((bound, i) => {
      lines.push(`${name}_bucket{${label},le="${formatNumber(bound)}"} ${snapshot.cumulativeCounts[i]}`)
    })
    lines.push(`${name}_bucket{${label},le="+Inf"} ${snapshot.count}`)
    lines.push(`${name}_sum{${label}} ${formatNumber(snapshot.sum)}`)
    lines.push(`${name}_count{${label}} ${snapshot.count}`)
  }
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

/** The JSON form of `/metrics`, with the field names operators already curl for. */
export function metricsJson(stats: BackpressureStats): Record<string, unknown> {
  return {
    controller: stats.name,
    queue_depth: stats.queueDepth,
    max_queue_depth: stats.maxQueueDepth,
    concurrency: stats.inFlight,
    concurrency_limit: stats.limit,
    p50_latency_ms: round(stats.p50LatencyMs),
    p99_latency_ms: round(stats.p99LatencyMs),
    requests: stats.requests,
    rejected: stats.rejected,
    rejections: stats.rejections,
    rejection_rate: round(stats.rejectionRate),
    throughput_per_second: round(stats.throughputPerSecond),
    backpressure_active: stats.backpressureActive,
    backpressure_active_seconds: round(stats.activeSeconds),
    shutting_down: stats.shuttingDown,
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000
}
