import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  type BackpressureController,
  type BackpressureOptions,
  type Permit,
  type ProcessSample,
  REJECTION_REASON_LIST,
  Rejection,
} from '@backpressure/core'

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  type: string
  help: string
  readonly samples: Sample[]
}

/** A small parser of the Prometheus text format (what the tests need: HELP, TYPE and samples). */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  let current: Family | undefined
  const family = (name: string) => {
    let found = families.get(name)
    if (found === undefined) {
      found = { name, type: 'untyped', help: '', samples: [] }
      families.set(name, found)
    }
    current = found
    return found
  }
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta !== null) {
      const f = family(meta[2] as string)
      if (meta[1] === 'HELP') f.help = meta[3] as string
      else f.type = meta[3] as string
      continue
    }
    if (line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`unparsable line: ${line}`)
    const labels: Record<string, string> = {}
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1] as string] = m[2] as string
    }
    const name = match[1] as string
    const owner =
      current !== undefined && (name === current.name || /_(bucket|sum|count)$/.test(name))
        ? current
        : family(name)
    owner.samples.push({ name, labels, value: Number(match[3]) })
  }
  return families
}

/** The value of one sample, found by name and labels. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
    }
  }
  return undefined
}

export const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0
export const hasPrometheus = spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0
export const PROMTOOL_MISSING =
  'promtool is not installed (Debian package `prometheus`; scripts/system-deps.sh installs it): skipping'

/** Runs promtool with `input` on stdin; resolves with its exit code and output. */
export function promtool(
  args: readonly string[],
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

export async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * Controller options under which a test can cause every rejection reason: small limits, a short
 * queue wait, a latency threshold that one slow request crosses (random 0 makes the shedding certain),
 * and process signals read from a sample the test sets.
 */
export function reasonsOptions(name: string) {
  const sample: { current: ProcessSample } = {
    current: { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0, rssBytes: 0 },
  }
  const options = {
    name,
    maxConcurrency: 2,
    maxQueueDepth: 2,
    maxQueueWaitMs: 40,
    latencyThresholdMs: 30,
    latencyWindowMs: 150,
    latencyMinSamples: 1,
    random: () => 0,
    retryAfter: { min: 2, max: 9 },
    maxEventLoopDelayMs: 200,
    maxEventLoopUtilization: 0.98,
    maxHeapUsedBytes: 1e12,
    maxRssBytes: 1e12,
    sampleIntervalMs: 5,
    processSampler: () => sample.current,
  } satisfies BackpressureOptions
  return { options, sample }
}

const quiet: ProcessSample = { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0, rssBytes: 0 }

/**
 * Causes every rejection reason except `shutting_down` on a controller made with `reasonsOptions`
 * (the caller closes it last for that one). Returns the permits it still holds, released.
 */
export async function causeEveryReason(
  controller: BackpressureController,
  sample: { current: ProcessSample },
): Promise<void> {
  const seen = new Set<string>()
  const off = controller.on('reject', (event) => seen.add(event.reason))
  const held: Permit[] = []
  const grab = () => {
    const result = controller.tryAcquire()
    if (!(result instanceof Rejection)) held.push(result)
  }
  await until(() => {
    grab()
    return controller.inFlight >= controller.limit
  }, 'every slot held')

  // aborted: a waiter whose client leaves.
  const abort = new AbortController()
  const waiting = controller.admit(0, abort.signal)
  abort.abort()
  await waiting
  // queue_full, displaced: fill the queue, one more of the same priority, then one of higher priority.
  const queued = [controller.admit(0), controller.admit(0)]
  const full = controller.admit(0)
  const displacing = controller.admit(1)
  // concurrency_limit: tryAcquire never waits.
  controller.tryAcquire()
  // queue_timeout: the waiters outlive maxQueueWaitMs.
  await Promise.all([...queued, full, displacing])
  // Decided outside the queue (rate limiter, circuit breaker, deadlines, CoDel).
  for (const reason of ['rate_limited', 'circuit_open', 'deadline_exceeded', 'queue_delay'] as const) {
    controller.rejectWith(reason)
  }
  // downstream_overloaded: a route's call to another service gave up (the HTTP layer's error path).
  controller.rejectDownstream()
  // Process signals, one at a time through the injected sampler.
  const signals: [string, Partial<typeof quiet>][] = [
    ['event_loop_delay', { eventLoopDelayMs: 1000 }],
    ['event_loop_utilization', { eventLoopUtilization: 1 }],
    ['heap', { heapUsedBytes: 2e12 }],
    ['rss', { rssBytes: 2e12 }],
  ]
  for (const [reason, values] of signals) {
    sample.current = { ...quiet, ...values }
    await until(() => {
      controller.tryAcquire()
      return seen.has(reason)
    }, reason)
  }
  sample.current = quiet
  await until(() => controller.stats().eventLoopDelayMs === 0, 'the signals to clear')
  // latency: the held permits have been running for longer than latencyThresholdMs.
  await new Promise((resolve) => setTimeout(resolve, 35))
  for (const permit of held) permit.release()
  await until(() => {
    const result = controller.tryAcquire()
    if (!(result instanceof Rejection)) result.release()
    return seen.has('latency')
  }, 'latency shedding')
  off()
  const missing = ALL_BUT_SHUTDOWN.filter((reason) => !seen.has(reason))
  if (missing.length > 0) throw new Error(`reasons not caused: ${missing.join(', ')}`)
}

const ALL_BUT_SHUTDOWN = REJECTION_REASON_LIST.filter((reason) => reason !== 'shutting_down')

export const DASHBOARD_FILE = fileURLToPath(new URL('../../../docs/grafana-dashboard.json', import.meta.url))

export interface Panel {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  datasource: { type: string; uid: string }
  targets: { refId: string; expr: string }[]
}

/** Every expression of the dashboard, for this test and the end-to-end test's queries. */
export function dashboardExpressions(): { title: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Panel[] }
  return dashboard.panels.flatMap((panel) => panel.targets.map(({ expr }) => ({ title: panel.title, expr })))
}
