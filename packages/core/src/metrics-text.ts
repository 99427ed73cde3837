import { REJECTION_REASON_LIST } from './errors.js'
import {
  HISTOGRAM_FAMILIES,
  REJECTIONS_FAMILY,
  SCALAR_FAMILIES,
  type ScalarFamily,
} from './metric-families.js'
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
  const header = (family: { name: string; type: string; help: string }) =>
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`)
  const label = (stats: BackpressureStats) => `controller="${escapeLabel(stats.name)}"`

  for (const family of [SCALAR_FAMILIES[0]!, REJECTIONS_FAMILY, ...SCALAR_FAMILIES.slice(1)]) {
    header(family)
    for (const stats of all) {
      if (family === REJECTIONS_FAMILY) {
        for (const reason of REJECTION_REASON_LIST) {
          lines.push(`${family.name}{${label(stats)},reason="${reason}"} ${stats.rejections[reason]}`)
        }
      } else {
        lines.push(`${family.name}{${label(stats)}} ${formatNumber((family as ScalarFamily).read(stats))}`)
      }
    }
  }
  for (const family of HISTOGRAM_FAMILIES) {
    header(family)
    for (const stats of all) {
      const snapshot = family.read(stats)
      const name = family.name
      snapshot.bounds.forEach((bound, i) => {
        lines.push(
          `${name}_bucket{${label(stats)},le="${formatNumber(bound)}"} ${snapshot.cumulativeCounts[i]}`,
        )
      })
      lines.push(`${name}_bucket{${label(stats)},le="+Inf"} ${snapshot.count}`)
      lines.push(`${name}_sum{${label(stats)}} ${formatNumber(snapshot.sum)}`)
      lines.push(`${name}_count{${label(stats)}} ${snapshot.count}`)
    }
  }
  lines.push('')
  return lines.join('\n')
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
    pressure_reason: stats.pressureReason ?? null,
    event_loop_lag_ms: round(stats.eventLoopLagMs),
    event_loop_shed_fraction: round(stats.eventLoopShedFraction),
    shutting_down: stats.shuttingDown,
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000
}
