import { PROMETHEUS_CONTENT_TYPE } from '@backpressure/core'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { prometheusRender, registerBackpressureMetrics } from '../src/index.js'
import { hasPromtool, PROMTOOL_MISSING, promtool } from './helpers.js'
import { type AdapterName, burst, type RunningServer, startServer } from './servers.js'

if (!hasPromtool) console.warn(PROMTOOL_MISSING)

/** The Accept headers Prometheus scrapes with: OpenMetrics preferred, the text format next, then anything. */
const SCRAPER_ACCEPTS = {
  'Prometheus 2':
    'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'Prometheus 3':
    'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
  'OpenMetrics only': 'application/openmetrics-text;version=1.0.0',
} as const

const running: RunningServer[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()))
})

const cases = (['express', 'fastify', 'koa'] as AdapterName[]).flatMap((adapter) =>
  (['core', 'prom-client'] as const).flatMap((renderer) =>
    (Object.keys(SCRAPER_ACCEPTS) as (keyof typeof SCRAPER_ACCEPTS)[]).map((scraper) => ({
      adapter,
      renderer,
      scraper,
    })),
  ),
)

describe.skipIf(!hasPromtool)("promtool check metrics on what Prometheus's own Accept header gets", () => {
  it.each(cases)('$adapter, $renderer renderer, $scraper', async ({ adapter, renderer, scraper }) => {
    const registry = new Registry()
    const server = await startServer(adapter, {
      name: `${adapter}_${renderer.replace('-', '_')}`,
      maxConcurrency: 1,
      maxQueueDepth: 1,
      ...(renderer === 'prom-client' ? { metrics: { render: prometheusRender(registry) } } : {}),
    })
    running.push(server)
    if (renderer === 'prom-client') registerBackpressureMetrics(server.controller, { registry })
    expect((await burst(server.url, 6)).get(503) ?? 0).toBeGreaterThan(0)

    const response = await fetch(`${server.url}/metrics`, { headers: { accept: SCRAPER_ACCEPTS[scraper] } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(
      renderer === 'core' ? PROMETHEUS_CONTENT_TYPE : registry.contentType,
    )
    const body = await response.text()
    expect(body).toMatch(/^backpressure_rejections_total\{[^}]*reason="queue_full"\} [1-9]/m)
    const result = await promtool(['check', 'metrics'], body)
    expect(`${result.stdout}${result.stderr}`.trim()).toBe('')
    expect(result.code).toBe(0)
  })
})
