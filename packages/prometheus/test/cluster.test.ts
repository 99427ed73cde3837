import cluster, { type Worker } from 'node:cluster'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { clusterPrometheusRender } from '../src/index.js'
import { hasPromtool, parseExposition, promtool, sampleValue } from './helpers.js'

const workerFile = fileURLToPath(new URL('./fixtures/cluster-worker.ts', import.meta.url))
const root = fileURLToPath(new URL('../../../', import.meta.url))
const workers: Worker[] = []
// tsx from this package's own dependencies (pnpm does not hoist it to the root).
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

afterAll(async () => {
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve()
          worker.once('exit', () => resolve())
          worker.kill()
        }),
    ),
  )
})

describe('node:cluster: the primary aggregates its workers with prom-client’s AggregatorRegistry', () => {
  it('sums counters, histograms and gauges of two workers; backpressure_active takes the maximum', async () => {
    // tsx runs the TypeScript worker; the root tsconfig's paths map @backpressure/* to the sources.
    cluster.setupPrimary({ exec: workerFile, execArgv: ['--import', tsx], cwd: root, silent: false })
    const ready = [1, 2].map((n) => {
      const worker = cluster.fork({ WORKER_NUMBER: String(n) })
      workers.push(worker)
      return new Promise<{ ready: number; rejections: number }>((resolve, reject) => {
        worker.once('message', resolve)
        worker.once('exit', (code) => reject(new Error(`worker ${n} exited with ${code}`)))
      })
    })
    const reports = await Promise.all(ready)
    expect(reports.map((r) => r.rejections).sort()).toEqual([1, 2])

    const { contentType, body } = await clusterPrometheusRender()()
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8')
    const families = parseExposition(body)
    const api = { controller: 'api' }
    // Two workers, each with 2 slots held: one series per controller, summed.
    expect(sampleValue(families, 'backpressure_concurrency_limit', api)).toBe(4)
    expect(sampleValue(families, 'backpressure_in_flight', api)).toBe(4)
    expect(sampleValue(families, 'backpressure_requests_total', api)).toBe(2 + 1 + 2 + 2)
    expect(
      sampleValue(families, 'backpressure_rejections_total', { ...api, reason: 'concurrency_limit' }),
    ).toBe(3)
    expect(sampleValue(families, 'backpressure_retry_after_seconds_count', api)).toBe(3)
    expect(sampleValue(families, 'backpressure_retry_after_seconds_bucket', { ...api, le: '+Inf' })).toBe(3)
    expect(sampleValue(families, 'backpressure_active', api)).toBe(1)
    expect(families.get('backpressure_in_flight')?.samples).toHaveLength(1)
    if (hasPromtool) {
      const check = await promtool(['check', 'metrics'], body)
      expect(`${check.stdout}${check.stderr}`.trim()).toBe('')
      expect(check.code).toBe(0)
    }
  }, 20_000)
})
