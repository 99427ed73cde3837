import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prometheusRender, registerBackpressureMetrics } from '../src/index.js'
import { dashboardExpressions, hasPrometheus } from './helpers.js'
import { type RunningServer, startServer } from './servers.js'

/**
 * A real Prometheus (loopback only, a temporary data dir, 1 s scrapes) scrapes an Express server of
 * ours while the test overloads it; then Prometheus's HTTP API must report what the test caused.
 */
const LOAD_MS = 6000
// Every 20 ms, 4 requests: 200 requests/s against a capacity of 4 slots / 100 ms = 40 requests/s.
const RATE_PER_TICK = 4
const TICK_MS = 20

let prometheus: ChildProcess | undefined
let dataDir: string | undefined
let server: RunningServer | undefined
let promUrl = ''

if (!hasPrometheus) {
  console.warn(
    'prometheus is not installed (Debian package `prometheus`; scripts/system-deps.sh installs it): skipping',
  )
}

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

async function query(
  expr: string,
  time?: number,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const params = new URLSearchParams({ query: expr })
  if (time !== undefined) params.set('time', String(time))
  const response = await fetch(`${promUrl}/api/v1/query?${params}`)
  const body = (await response.json()) as { status: string; error?: string; data: { result: [] } }
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
  return body.data.result
}

async function scalar(expr: string, time?: number): Promise<number> {
  const result = await query(expr, time)
  if (result.length !== 1) throw new Error(`${expr}: expected one series, got ${JSON.stringify(result)}`)
  return Number(result[0]!.value[1])
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!hasPrometheus)('a real Prometheus scraping a server under overload', () => {
  beforeAll(async () => {
    const registry = new Registry()
    // Slow work (100 ms, 4 slots: capacity 40 requests/s) under 200 requests/s; the queue of 8 stays full.
    server = await startServer(
      'express',
      {
        name: 'e2e',
        maxConcurrency: 4,
        maxQueueDepth: 8,
        adaptiveRejection: false,
        metrics: { render: prometheusRender(registry) },
      },
      100,
    )
    registerBackpressureMetrics(server.controller, { registry })
    const target = new URL(server.url).host

    dataDir = await mkdtemp(join(tmpdir(), 'backpressure-prometheus-'))
    const config = join(dataDir, 'prometheus.yml')
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: backpressure',
        '    metrics_path: /metrics',
        `    static_configs: [{ targets: ['${target}'] }]`,
        '',
      ].join('\n'),
    )
    const port = await freePort()
    promUrl = `http://127.0.0.1:${port}`
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dataDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let log = ''
    prometheus.stderr?.on('data', (chunk) => (log += chunk))
    // Bounded: the whole test, Prometheus included, must end well inside 30 s.
    const deadline = Date.now() + 10_000
    for (;;) {
      try {
        const up = await query('up{job="backpressure"}')
        if (up.length === 1 && up[0]!.value[1] === '1') break
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`Prometheus did not scrape the target in 10 s:\n${log}`)
      await sleep(100)
    }
  }, 20_000)

  afterAll(async () => {
    if (prometheus !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once('exit', resolve))
      prometheus.kill('SIGTERM')
      const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
    await server?.close()
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
  })

  it('records the rejections and the queue depth the test caused', async () => {
    const controller = server!.controller
    let sent = 0
    let rejected = 0
    let served = 0
    const pending: Promise<void>[] = []
    const send = async () => {
      sent++
      const response = await fetch(`${server!.url}/work`)
      await response.text()
      if (response.status === 503) rejected++
      else if (response.status === 200) served++
    }
    const loadStart = Date.now() / 1000
    const ticker = setInterval(() => {
      for (let i = 0; i < RATE_PER_TICK; i++) pending.push(send())
    }, TICK_MS)
    await sleep(LOAD_MS)
    clearInterval(ticker)
    await Promise.all(pending)
    const loadEnd = Date.now() / 1000
    // Two more scrapes, so Prometheus has the final counters.
    await sleep(2200)
    const stats = controller.stats()
    const at = Date.now() / 1000

    const promRequests = await scalar('sum(backpressure_requests_total{controller="e2e"})', at)
    const promRejected = await scalar('sum(backpressure_rejections_total{controller="e2e"})', at)
    const promQueueFull = await scalar(
      'backpressure_rejections_total{controller="e2e",reason="queue_full"}',
      at,
    )
    const window = Math.ceil(at - loadStart) + 2
    const peakQueue = await scalar(
      `max_over_time(backpressure_queue_depth{controller="e2e"}[${window}s])`,
      at,
    )
    // The rate Prometheus computes over the middle of the load, against what the clients saw.
    const mid = (loadStart + loadEnd) / 2
    const promRatio = await scalar(
      'sum(rate(backpressure_rejections_total{controller="e2e"}[4s])) / sum(rate(backpressure_requests_total{controller="e2e"}[4s]))',
      mid,
    )
    const promRate = await scalar('sum(rate(backpressure_rejections_total{controller="e2e"}[4s]))', mid)
    const clientRatio = rejected / sent
    const clientRate = rejected / (loadEnd - loadStart)
    console.info(
      `e2e: sent ${sent}, served ${served}, rejected ${rejected} (${(clientRatio * 100).toFixed(1)}%); ` +
        `Prometheus: requests ${promRequests}, rejections ${promRejected} (queue_full ${promQueueFull}), ` +
        `peak queue depth ${peakQueue}, mid-load rejection ratio ${(promRatio * 100).toFixed(1)}%, ` +
        `rate ${promRate.toFixed(1)}/s vs clients' mean ${clientRate.toFixed(1)}/s`,
    )

    expect(sent).toBe(served + rejected)
    expect(rejected).toBeGreaterThan(sent / 4)
    // The last scrape came after the load: the counters are exact.
    expect(promRequests).toBe(sent)
    expect(promRequests).toBe(stats.requests)
    expect(promRejected).toBe(rejected)
    expect(promQueueFull).toBe(stats.rejections.queue_full)
    expect(peakQueue).toBe(8)
    // Within scrape granularity: a 4 s rate window at 1 s scrapes.
    expect(Math.abs(promRatio - clientRatio)).toBeLessThan(0.1)
    expect(promRate).toBeGreaterThan(clientRate * 0.5)
    expect(promRate).toBeLessThan(clientRate * 1.5)
  }, 25_000)

  it('answers every expression of the Grafana dashboard', async () => {
    for (const { title, expr } of dashboardExpressions()) {
      const concrete = expr
        .replaceAll('$__rate_interval', '5s')
        .replaceAll('$job', '.*')
        .replaceAll('$controller', '.*')
      const result = await query(concrete)
      expect(Array.isArray(result), title).toBe(true)
    }
    const reasons = await query('sum by (reason) (rate(backpressure_rejections_total[30s])) > 0')
    expect(reasons.map((r) => r.metric.reason)).toContain('queue_full')
  })
})
