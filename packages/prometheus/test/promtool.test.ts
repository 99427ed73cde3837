import { REJECTION_REASON_LIST } from '@backpressure/core'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { prometheusRender, registerBackpressureMetrics } from '../src/index.js'
import {
  causeEveryReason,
  hasPromtool,
  PROMTOOL_MISSING,
  parseExposition,
  promtool,
  reasonsOptions,
  sampleValue,
} from './helpers.js'
import { type AdapterName, burst, type RunningServer, startServer } from './servers.js'

if (!hasPromtool) console.warn(PROMTOOL_MISSING)

const running: RunningServer[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()))
})

async function scrape(url: string): Promise<{ contentType: string | null; body: string }> {
  const response = await fetch(`${url}/metrics`)
  expect(response.status).toBe(200)
  return { contentType: response.headers.get('content-type'), body: await response.text() }
}

async function expectPromtoolPasses(body: string): Promise<void> {
  const result = await promtool(['check', 'metrics'], body)
  // Lint findings are printed and make the exit code non-zero; there must be none.
  expect(`${result.stdout}${result.stderr}`.trim()).toBe('')
  expect(result.code).toBe(0)
}

const cases: { adapter: AdapterName; renderer: 'prom-client' | 'core' }[] = [
  { adapter: 'express', renderer: 'prom-client' },
  { adapter: 'fastify', renderer: 'prom-client' },
  { adapter: 'koa', renderer: 'prom-client' },
  { adapter: 'express', renderer: 'core' },
  { adapter: 'fastify', renderer: 'core' },
  { adapter: 'koa', renderer: 'core' },
]

describe.skipIf(!hasPromtool)(
  'promtool check metrics on /metrics under load, every rejection reason present',
  () => {
    it.each(cases)('$adapter with the $renderer renderer', async ({ adapter, renderer }) => {
      const { options, sample } = reasonsOptions(`${adapter}_${renderer}`)
      const registry = new Registry()
      // Two scrapes a moment apart, the second read against the counters: no cached rendering.
      const server = await startServer(adapter, {
        ...options,
        metrics: {
          cacheMs: 0,
          ...(renderer === 'prom-client' ? { render: prometheusRender(registry) } : {}),
        },
      })
      running.push(server)
      if (renderer === 'prom-client') registerBackpressureMetrics(server.controller, { registry })

      await causeEveryReason(server.controller, sample)
      // Load: more requests at once than slots and queue places, with scrapes and health checks
      // answered meanwhile.
      const load = burst(server.url, 40)
      await new Promise((resolve) => setTimeout(resolve, 5))
      const during = await scrape(server.url)
      const healthStarted = performance.now()
      const health = await fetch(`${server.url}/health`)
      const healthMs = performance.now() - healthStarted
      expect(health.status).toBe(200)
      expect(((await health.json()) as { status: string }).status).toBe('degraded')
      expect(healthMs).toBeLessThan(250)
      const tally = await load
      expect(tally.get(503) ?? 0).toBeGreaterThan(0)
      await expectPromtoolPasses(during.body)

      // shutting_down: close, then knock once more.
      await server.controller.close()
      const refused = await fetch(`${server.url}/work`)
      expect(refused.status).toBe(503)
      expect(((await refused.json()) as { reason: string }).reason).toBe('shutting_down')
      expect((await fetch(`${server.url}/ready`)).status).toBe(503)
      expect((await fetch(`${server.url}/health`)).status).toBe(200)

      const final = await scrape(server.url)
      expect(final.contentType).toBe(
        renderer === 'prom-client' ? registry.contentType : 'text/plain; version=0.0.4; charset=utf-8',
      )
      await expectPromtoolPasses(final.body)
      const families = parseExposition(final.body)
      const controller = `${adapter}_${renderer}`
      for (const reason of REJECTION_REASON_LIST) {
        expect(
          sampleValue(families, 'backpressure_rejections_total', { controller, reason }),
          reason,
        ).toBeGreaterThan(0)
      }
      expect(sampleValue(families, 'backpressure_requests_total', { controller })).toBe(
        server.controller.stats().requests,
      )
    })
  },
)
