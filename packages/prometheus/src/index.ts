import {
  assertKnownKeys,
  type BackpressureStats,
  InvalidOptionError,
  type MetricsExposition,
  REJECTION_REASON_LIST,
} from '@backpressure/core'
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  type Metric,
  Registry,
  type RegistryContentType,
} from 'prom-client'

/** A prom-client registry of either content type (Prometheus text or OpenMetrics). */
export type AnyRegistry = Registry<RegistryContentType>

import { HISTOGRAM_FAMILIES, type HistogramFamily, REJECTIONS_FAMILY, SCALAR_FAMILIES } from './families.js'

export { type ClusterAggregator, METRIC_FAMILIES } from './families.js'

/** Anything with the controller's `stats()`: a `BackpressureController`, for one. */
export interface StatsSource {
  stats(): BackpressureStats
}

export interface BackpressureMetricsOptions {
  /**
   * The prom-client registry to add the metrics to, so one `/metrics` serves yours and ours together.
   * prom-client's global registry is never used unless you pass it here yourself.
   * @default a new `Registry()`
   */
  readonly registry?: AnyRegistry
  /**
   * Prepended to every metric name (`myapp_` gives `myapp_backpressure_queue_depth`). The alert rules
   * and the Grafana dashboard in docs/ assume no prefix.
   * @default ''
   */
  readonly prefix?: string
}

const OPTION_KEYS: readonly string[] = Object.keys({
  registry: true,
  prefix: true,
} satisfies Record<keyof BackpressureMetricsOptions, true>)

export interface BackpressureMetrics {
  /** The registry the metrics live in: the one you passed, or the one made for you. */
  readonly registry: AnyRegistry
  /** Adds a controller to the same metric families; its `name` becomes its `controller` label value. */
  add(source: StatsSource): void
  /** Stops exposing a controller (a router that was torn down, say). */
  remove(source: StatsSource): void
  /** Removes every backpressure metric family from the registry. */
  unregister(): void
}

/**
 * One set of metric families per registry and prefix: a second call with the same registry adds its
 * controllers to the families already there instead of clashing with them.
 */
class Collector {
  readonly sources = new Set<StatsSource>()
  readonly names: string[] = []
  private cache: (readonly [StatsSource, BackpressureStats])[] | undefined = undefined

  constructor(
    readonly registry: AnyRegistry,
    readonly prefix: string,
  ) {}

  /**
   * prom-client calls every metric's `get()` in one synchronous pass per scrape, so a snapshot cached
   * until the next microtask gives all families one consistent reading, and each controller's
   * `stats()` runs once per scrape instead of once per family.
   */
  snapshot(): readonly (readonly [StatsSource, BackpressureStats])[] {
    if (this.cache === undefined) {
      this.cache = [...this.sources].map((source) => [source, source.stats()] as const)
      queueMicrotask(() => {
        this.cache = undefined
      })
    }
    return this.cache
  }

  install(): void {
    const collector = this
    for (const family of SCALAR_FAMILIES) {
      const config = {
        name: this.prefix + family.name,
        help: family.help,
        labelNames: ['controller'] as const,
        registers: [] as AnyRegistry[],
        aggregator: family.aggregator,
        collect(this: Gauge<'controller'> | Counter<'controller'>) {
          this.reset()
          for (const [, stats] of collector.snapshot()) {
            const value = family.read(stats)
            if (this instanceof Gauge) this.set({ controller: stats.name }, value)
            else this.inc({ controller: stats.name }, value)
          }
        },
      }
      this.register(family.type === 'gauge' ? new Gauge(config) : new Counter(config))
    }
    this.register(
      new Counter({
        name: this.prefix + REJECTIONS_FAMILY.name,
        help: REJECTIONS_FAMILY.help,
        labelNames: ['controller', 'reason'] as const,
        registers: [],
        aggregator: REJECTIONS_FAMILY.aggregator,
        collect() {
          this.reset()
          for (const [, stats] of collector.snapshot()) {
            // Every reason, zeros included: a series that appears only on the first rejection makes
            // rate() miss that first increase, and alerts cannot tell "none" from "not scraped".
            for (const reason of REJECTION_REASON_LIST) {
              this.inc({ controller: stats.name, reason }, stats.rejections[reason])
            }
          }
        },
      }),
    )
    for (const family of HISTOGRAM_FAMILIES) {
      this.register(new SnapshotHistogram(this.prefix + family.name, family, this))
    }
  }

  uninstall(): void {
    for (const name of this.names) this.registry.removeSingleMetric(name)
    this.names.length = 0
  }

  private register(metric: Metric | SnapshotHistogram): void {
    this.registry.registerMetric(metric as Metric)
    this.names.push((metric as { name: string }).name)
  }
}

/**
 * A histogram whose buckets are the controller's own cumulative histogram, read at scrape time.
 * prom-client's `Histogram` can only observe values one by one; this object has the shape its
 * registry reads (`name`, `help`, `type`, `aggregator`, `get()`, `reset()`), so the exposition, JSON
 * and cluster aggregation all treat it as a histogram.
 */
class SnapshotHistogram {
  readonly type = 'histogram'
  readonly help: string
  readonly aggregator: string

  constructor(
    public name: string,
    private readonly family: HistogramFamily,
    private readonly collector: Collector,
  ) {
    this.help = family.help
    this.aggregator = family.aggregator
  }

  get(): {
    name: string
    help: string
    type: string
    aggregator: string
    values: { value: number; labels: Record<string, string>; metricName: string }[]
  } {
    const values: { value: number; labels: Record<string, string>; metricName: string }[] = []
    for (const [, stats] of this.collector.snapshot()) {
      const snapshot = this.family.read(stats)
      const controller = stats.name
      snapshot.bounds.forEach((bound, i) => {
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { controller, le: formatBound(bound) },
          value: snapshot.cumulativeCounts[i] as number,
        })
      })
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { controller, le: '+Inf' },
        value: snapshot.count,
      })
      values.push({ metricName: `${this.name}_sum`, labels: { controller }, value: snapshot.sum })
      values.push({ metricName: `${this.name}_count`, labels: { controller }, value: snapshot.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** Nothing to reset: the values live in the controller. Called by `registry.resetMetrics()`. */
  reset(): void {}
}

function formatBound(bound: number): string {
  return bound === Number.POSITIVE_INFINITY ? '+Inf' : String(bound)
}

const collectors = new WeakMap<AnyRegistry, Map<string, Collector>>()

/**
 * Exposes controllers' stats as prom-client metrics, read at scrape time: the families docs/metrics.md
 * lists (`backpressure_requests_total`, `backpressure_rejections_total{reason}`,
 * `backpressure_queue_depth`, …, three histograms), one series per controller told apart by the
 * `controller` label (the controller's `name`, which must be unique per registry).
 *
 * @example
 * const registry = new Registry()
 * collectDefaultMetrics({ register: registry })
 * const limiter = backpressure({ name: 'api', metrics: { render: prometheusRender(registry) } })
 * registerBackpressureMetrics(limiter.controller, { registry })
 * app.use(limiter)
 */
export function registerBackpressureMetrics(
  sources: StatsSource | readonly StatsSource[],
  options: BackpressureMetricsOptions = {},
): BackpressureMetrics {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', 'an object', options)
  }
  assertKnownKeys('', options, OPTION_KEYS)
  const registry: AnyRegistry = options.registry ?? new Registry()
  if (!(registry instanceof Registry)) {
    throw new InvalidOptionError(
      'registry',
      "a prom-client Registry (from the same copy of 'prom-client')",
      registry,
    )
  }
  const prefix = options.prefix ?? ''
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw new InvalidOptionError(
      'prefix',
      'a string of Prometheus name characters ([a-zA-Z_:][a-zA-Z0-9_:]*)',
      prefix,
    )
  }
  let byPrefix = collectors.get(registry)
  if (byPrefix === undefined) {
    byPrefix = new Map()
    collectors.set(registry, byPrefix)
  }
  let collector = byPrefix.get(prefix)
  if (collector === undefined) {
    collector = new Collector(registry, prefix)
    collector.install()
    byPrefix.set(prefix, collector)
  }
  const list = Array.isArray(sources) ? (sources as readonly StatsSource[]) : [sources as StatsSource]
  const own = collector
  const add = (source: StatsSource): void => {
    if (typeof source !== 'object' || source === null || typeof source.stats !== 'function') {
      throw new InvalidOptionError('controller', 'a BackpressureController (an object with stats())', source)
    }
    if (own.sources.has(source)) return
    const name = source.stats().name
    for (const other of own.sources) {
      if (other.stats().name === name) {
        throw new InvalidOptionError(
          'controller',
          `a controller whose name is unique in this registry (give each controller its own \`name\`; "${name}" is taken)`,
          source,
        )
      }
    }
    own.sources.add(source)
  }
  list.forEach(add)
  return {
    registry,
    add,
    remove(source) {
      own.sources.delete(source)
    },
    unregister() {
      own.uninstall()
      own.sources.clear()
      byPrefix.delete(prefix)
    },
  }
}

/**
 * The `metrics.render` function for the adapters' (and core's `HttpBackpressure`) `/metrics` route:
 * the whole registry, yours and ours, with `registry.contentType` as the content type.
 *
 * @example
 * app.use(backpressure({ metrics: { render: prometheusRender(registry) } }))
 */
export function prometheusRender(registry: AnyRegistry): () => Promise<MetricsExposition> {
  if (!(registry instanceof Registry)) {
    throw new InvalidOptionError('registry', 'a prom-client Registry', registry)
  }
  return async () => ({ contentType: registry.contentType, body: await registry.metrics() })
}

/**
 * In a cluster worker: lets the primary's `AggregatorRegistry` collect these registries over IPC.
 * Call once per worker, after `registerBackpressureMetrics`. prom-client keeps one list of
 * registries per process, so pass every registry the primary should see.
 */
export function shareWithClusterPrimary(registries: AnyRegistry | readonly AnyRegistry[]): void {
  AggregatorRegistry.setRegistries((Array.isArray(registries) ? [...registries] : [registries]) as Registry[])
  // prom-client answers the primary's requests only once an AggregatorRegistry exists in the worker.
  new AggregatorRegistry()
}

/**
 * In the cluster primary: a render function that asks every worker for its metrics and sums them
 * (counters, histograms, queue depth, in flight, limits; `backpressure_active` and the p99 gauge take
 * the maximum). Serve it on a port of the primary's own: the workers' shared port reaches one worker.
 */
export function clusterPrometheusRender(
  aggregator: AggregatorRegistry<RegistryContentType> = new AggregatorRegistry(),
): () => Promise<MetricsExposition> {
  return async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() })
}
