import {
  BackpressureController,
  HttpBackpressure,
  InvalidOptionError,
  ManualClock,
  PROMETHEUS_CONTENT_TYPE,
  REJECTION_REASON_LIST,
  renderPrometheus,
  seededRandom,
} from '@backpressure/core'
import { Counter, register as globalRegistry, type OpenMetricsContentType, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { METRIC_FAMILIES, prometheusRender, registerBackpressureMetrics } from '../src/index.js'
import { causeEveryReason, parseExposition, reasonsOptions, sampleValue } from './helpers.js'

const controllers: BackpressureController[] = []
function make(name: string, options: ConstructorParameters<typeof BackpressureController>[0] = {}) {
  const clock = new ManualClock(1000)
  const controller = new BackpressureController({ name, clock, random: seededRandom(3), ...options })
  controllers.push(controller)
  return { clock, controller }
}
afterEach(() => {
  // Not awaited: some tests leave permits held on purpose, and close() waits for those.
  for (const controller of controllers.splice(0)) void controller.close()
})

/** Holds `n` permits, queues `q` waiters and rejects one with queue_full. */
function load(controller: BackpressureController, n: number, q: number) {
  const permits = Array.from({ length: n }, () => controller.tryAcquire())
  const waits = Array.from({ length: q }, () => controller.admit(0))
  return { permits, waits }
}

describe('registerBackpressureMetrics', () => {
  it('exposes the values of stats() at scrape time, under the documented names', async () => {
    const { clock, controller } = make('api', { maxConcurrency: 2, maxQueueDepth: 3 })
    const { registry } = registerBackpressureMetrics(controller)
    const before = parseExposition(await registry.metrics())
    expect(sampleValue(before, 'backpressure_queue_depth', { controller: 'api' })).toBe(0)

    const { permits } = load(controller, 2, 3)
    controller.admit(0) // queue_full
    clock.advance(250)
    for (const permit of permits) if ('release' in permit) permit.release()
    const stats = controller.stats()
    const after = parseExposition(await registry.metrics())
    const at = { controller: 'api' }
    expect(sampleValue(after, 'backpressure_requests_total', at)).toBe(stats.requests)
    expect(sampleValue(after, 'backpressure_rejections_total', { ...at, reason: 'queue_full' })).toBe(1)
    expect(sampleValue(after, 'backpressure_rejections_total', { ...at, reason: 'latency' })).toBe(0)
    expect(sampleValue(after, 'backpressure_queue_depth', at)).toBe(stats.queueDepth)
    expect(sampleValue(after, 'backpressure_queue_max_depth', at)).toBe(3)
    expect(sampleValue(after, 'backpressure_in_flight', at)).toBe(stats.inFlight)
    expect(sampleValue(after, 'backpressure_concurrency_limit', at)).toBe(2)
    expect(sampleValue(after, 'backpressure_active', at)).toBe(1)
    expect(sampleValue(after, 'backpressure_active_seconds_total', at)).toBeCloseTo(0.25)
    expect(sampleValue(after, 'backpressure_latency_p99_seconds', at)).toBeCloseTo(stats.p99LatencyMs / 1000)
    const duration = stats.histograms.requestDurationSeconds
    expect(sampleValue(after, 'backpressure_request_duration_seconds_count', at)).toBe(duration.count)
    expect(sampleValue(after, 'backpressure_request_duration_seconds_sum', at)).toBeCloseTo(duration.sum)
    expect(sampleValue(after, 'backpressure_request_duration_seconds_bucket', { ...at, le: '0.25' })).toBe(
      duration.cumulativeCounts[duration.bounds.indexOf(0.25)],
    )
    expect(sampleValue(after, 'backpressure_request_duration_seconds_bucket', { ...at, le: '+Inf' })).toBe(2)
    expect(sampleValue(after, 'backpressure_queue_wait_seconds_count', at)).toBe(
      stats.histograms.queueWaitSeconds.count,
    )
    expect(sampleValue(after, 'backpressure_retry_after_seconds_count', at)).toBe(1)
    for (const reason of REJECTION_REASON_LIST) {
      expect(sampleValue(after, 'backpressure_rejections_total', { ...at, reason })).toBe(
        stats.rejections[reason],
      )
    }
  })

  it('exposes exactly the families, types and help of core’s dependency-free renderer, with the same samples', async () => {
    const { options, sample } = reasonsOptions('same')
    const controller = new BackpressureController(options)
    controllers.push(controller)
    await causeEveryReason(controller, sample)
    // Stats move with real time (active seconds, the latency window): compare one frozen snapshot.
    const frozen = controller.stats()
    const source = { stats: () => frozen }
    const { registry } = registerBackpressureMetrics(source)
    const ours = parseExposition(await registry.metrics())
    const core = parseExposition(renderPrometheus([frozen]))
    const shape = (families: typeof ours) =>
      [...families.values()]
        .map(({ name, type, help }) => ({ name, type, help }))
        .sort((a, b) => a.name.localeCompare(b.name))
    expect(shape(ours)).toEqual(shape(core))
    expect(shape(ours)).toEqual([...METRIC_FAMILIES].sort((a, b) => a.name.localeCompare(b.name)))
    const samples = (families: typeof ours) =>
      [...families.values()]
        .flatMap((f) => f.samples)
        .map(
          (s) =>
            `${s.name}{${Object.entries(s.labels)
              .sort()
              .map(([k, v]) => `${k}=${v}`)
              .join(',')}} ${s.value}`,
        )
        .sort()
    expect(samples(ours)).toEqual(samples(core))
    for (const name of [
      'backpressure_requests_total',
      'backpressure_rejections_total',
      'backpressure_queue_depth',
      'backpressure_in_flight',
      'backpressure_concurrency_limit',
      'backpressure_active',
      'backpressure_active_seconds_total',
      'backpressure_abandoned_permits_total',
      'backpressure_body_timeouts_total',
      'backpressure_request_duration_seconds',
      'backpressure_queue_wait_seconds',
      'backpressure_retry_after_seconds',
    ]) {
      expect(ours.has(name), name).toBe(true)
    }
  })

  it('tells several controllers apart by the controller label, in one family each', async () => {
    const a = make('orders', { maxConcurrency: 1 }).controller
    const b = make('search', { maxConcurrency: 5 }).controller
    const metrics = registerBackpressureMetrics([a], { registry: new Registry() })
    metrics.add(b)
    a.tryAcquire()
    a.tryAcquire() // concurrency_limit on orders only
    const text = await metrics.registry.metrics()
    expect(text.match(/^# TYPE backpressure_concurrency_limit /gm)).toHaveLength(1)
    const families = parseExposition(text)
    expect(sampleValue(families, 'backpressure_concurrency_limit', { controller: 'orders' })).toBe(1)
    expect(sampleValue(families, 'backpressure_concurrency_limit', { controller: 'search' })).toBe(5)
    const reason = { reason: 'concurrency_limit' }
    expect(sampleValue(families, 'backpressure_rejections_total', { controller: 'orders', ...reason })).toBe(
      1,
    )
    expect(sampleValue(families, 'backpressure_rejections_total', { controller: 'search', ...reason })).toBe(
      0,
    )

    metrics.remove(b)
    expect(await metrics.registry.metrics()).not.toContain('controller="search"')
  })

  it('adds to the families already in a registry on a second call, and refuses a clashing controller name', async () => {
    const registry = new Registry()
    registerBackpressureMetrics(make('one').controller, { registry })
    registerBackpressureMetrics(make('two').controller, { registry })
    const families = parseExposition(await registry.metrics())
    expect(families.get('backpressure_in_flight')?.samples.map((s) => s.labels.controller)).toEqual([
      'one',
      'two',
    ])
    expect(() => registerBackpressureMetrics(make('one').controller, { registry })).toThrow(
      /unique in this registry/,
    )
  })

  it('serves the user’s own metrics and ours from one registry, and never touches the global one', async () => {
    const globalBefore = await globalRegistry.metrics()
    const registry = new Registry()
    const mine = new Counter({ name: 'orders_created_total', help: 'Orders.', registers: [registry] })
    mine.inc(3)
    const metrics = registerBackpressureMetrics(make('api').controller, { registry })
    expect(metrics.registry).toBe(registry)
    const render = prometheusRender(registry)
    const { contentType, body } = await render()
    expect(contentType).toBe(registry.contentType)
    expect(contentType).toBe(PROMETHEUS_CONTENT_TYPE)
    expect(body).toContain('orders_created_total 3')
    expect(body).toContain('backpressure_queue_depth{controller="api"} 0')
    // Our own registry when none is given: still not the global one.
    const own = registerBackpressureMetrics(make('solo').controller)
    expect(own.registry).not.toBe(globalRegistry)
    expect(await globalRegistry.metrics()).toBe(globalBefore)
    expect(globalRegistry.getSingleMetric('backpressure_queue_depth')).toBeUndefined()

    metrics.unregister()
    const after = await registry.metrics()
    expect(after).toContain('orders_created_total 3')
    expect(after).not.toContain('backpressure_')
  })

  it('follows an OpenMetrics registry: its content type, counters in OpenMetrics form', async () => {
    const registry = new Registry<OpenMetricsContentType>()
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
    registerBackpressureMetrics(make('om').controller, { registry })
    const { contentType, body } = await prometheusRender(registry)()
    expect(contentType).toBe(Registry.OPENMETRICS_CONTENT_TYPE)
    expect(body).toContain('# TYPE backpressure_requests counter')
    expect(body).toContain('backpressure_requests_total{controller="om"} 0')
    expect(body).toContain('backpressure_request_duration_seconds_bucket{controller="om",le="+Inf"} 0')
    expect(body.endsWith('# EOF\n')).toBe(true)
  })

  it('takes a prefix and validates its options', async () => {
    const { registry } = registerBackpressureMetrics(make('p').controller, { prefix: 'myapp_' })
    expect(await registry.metrics()).toContain('myapp_backpressure_queue_depth{controller="p"} 0')
    expect(() => registerBackpressureMetrics(make('q').controller, { prefix: 'my-app' })).toThrow(
      /^Expected `prefix`/,
    )
    expect(() =>
      registerBackpressureMetrics(make('r').controller, { registry: {} as unknown as Registry }),
    ).toThrow(/^Expected `registry`/)
    expect(() => registerBackpressureMetrics({} as unknown as BackpressureController)).toThrow(
      /^Expected `controller`/,
    )
  })

  it.each([
    ['register', { register: new Registry() }, 'Unknown option `register`: did you mean `registry`?'],
    ['prefx', { prefx: 'app_' }, 'Unknown option `prefx`: did you mean `prefix`?'],
    ['labels', { labels: {} }, 'Unknown option `labels`: expected one of `registry`, `prefix`'],
  ])('refuses the unknown option %s, naming the option meant', (option, options, message) => {
    let error: unknown
    try {
      registerBackpressureMetrics(make('unknown').controller, options as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect((error as InvalidOptionError).option).toBe(option)
    expect((error as Error).message).toBe(message)
  })

  it('reads stats() once per controller per scrape', async () => {
    const { controller } = make('once')
    let calls = 0
    const source = {
      stats: () => {
        calls++
        return controller.stats()
      },
    }
    const { registry } = registerBackpressureMetrics(source)
    calls = 0
    await registry.metrics()
    expect(calls).toBe(1)
    await registry.metrics()
    expect(calls).toBe(2)
  })

  it('plugs into HttpBackpressure’s /metrics with prom-client’s content type', async () => {
    const registry = new Registry()
    const http = new HttpBackpressure({ name: 'http', metrics: { render: prometheusRender(registry) } })
    controllers.push(http.controller)
    registerBackpressureMetrics(http.controller, { registry })
    const response = await http.metrics(undefined, 'text/plain')
    expect(response.status).toBe(200)
    expect(response.headers['content-type']).toBe(registry.contentType)
    expect(response.body).toContain('backpressure_in_flight{controller="http"} 0')
    // The JSON form keeps its snake_case field names (docs/metrics.md).
    const json = JSON.parse((await http.metrics(undefined, 'application/json')).body)
    expect(json).toMatchObject({
      queue_depth: 0,
      concurrency: 0,
      p99_latency_ms: 0,
      rejection_rate: 0,
      backpressure_active: false,
    })
  })
})
