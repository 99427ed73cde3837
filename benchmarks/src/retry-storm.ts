/**
 * Retry storm: 200 logical clients, one logical request a second each, against our own server at 10×
 * its capacity, one strategy at a time, measuring what each retry strategy does to the server — attempts
 * per logical request (DESIGN §7 target for ours: ≤ 1.1), retries that arrived before the `Retry-After`
 * they were given, how late after it the others came (spread, not a spike at the floor), and the largest
 * wave of retries in any 100 ms. Run by `pnpm bench` (tier `retry`).
 *
 * The server is `@backpressure/core`'s HTTP layer (what every adapter runs) in front of a route that
 * holds one of `CONCURRENCY` slots for `SERVICE_MS`: capacity 20 requests/s, offered 200/s. Its 503s
 * carry a jittered whole-seconds Retry-After. Every strategy makes at most 3 attempts per logical
 * request; only when they retry differs.
 */
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { createFetch } from '@backpressure/client'
import { HttpBackpressure, PASS } from '@backpressure/core'
import { quantile, round, seeded, sleep } from './stats.js'

const CLIENTS = 200
const CONCURRENCY = 1
const SERVICE_MS = 50
/** Requests per second the server can serve: 200 clients at 1 request/s is 10× that. */
const CAPACITY = (CONCURRENCY * 1000) / SERVICE_MS
const DEADLINE_MS = 15_000
const RETRY_AFTER = { min: 1, max: 3 }
const BIN_MS = 100

type Strategy = (clientIndex: number) => (url: string, init: RequestInit) => Promise<Response | undefined>

interface Arrival {
  at: number
  logical: string
  accepted: boolean
}

async function storm(name: string, strategy: Strategy, durationMs: number) {
  const arrivals: Arrival[] = []
  const notBefore = new Map<string, number>()
  let early = 0
  // For each retry: arrival time minus the earliest moment its Retry-After allowed (negative = too early).
  const lateness: number[] = []
  const http = new HttpBackpressure({
    maxConcurrency: CONCURRENCY,
    maxQueueDepth: 0,
    retryAfter: RETRY_AFTER,
    random: seeded(1),
  })
  const server = createServer((req, res) => {
    const now = performance.now()
    const logical = String(req.headers['x-logical-id'])
    const floor = notBefore.get(logical)
    if (floor !== undefined) {
      lateness.push(now - floor)
      if (now < floor) early++
    }
    const decision = http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
    if (decision instanceof Promise) throw new Error('maxQueueDepth 0: admission never waits')
    arrivals.push({ at: now, logical, accepted: decision === PASS })
    if (decision === PASS) {
      setTimeout(() => res.writeHead(200).end('ok'), SERVICE_MS)
      return
    }
    const seconds = Number(decision.headers['retry-after'])
    res.writeHead(decision.status, decision.headers)
    res.end(decision.body, () => {
      notBefore.set(logical, performance.now() + seconds * 1000)
    })
  })
  server.keepAliveTimeout = 10_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`

  const start = performance.now()
  let logicalRequests = 0
  let succeeded = 0
  const pending: Promise<void>[] = []
  const phase = seeded(2)
  const clients: Promise<void>[] = []
  for (let client = 0; client < CLIENTS; client++) {
    const send = strategy(client)
    const offset = phase() * 1000
    clients.push(
      (async () => {
        // Open loop per client: one logical request a second whatever happened to the earlier ones, so
        // a strategy that waits longer does not get to send less.
        for (let n = 0; offset + n * 1000 < durationMs; n++) {
          await sleep(Math.max(0, offset + n * 1000 - (performance.now() - start)))
          logicalRequests++
          pending.push(
            send(url, {
              headers: { 'x-logical-id': `${client}-${n}` },
              signal: AbortSignal.timeout(DEADLINE_MS),
            })
              .then((response) => {
                if (response?.status === 200) succeeded++
              })
              .catch(() => {}),
          )
        }
      })(),
    )
  }
  await Promise.all(clients)
  await Promise.all(pending)
  server.closeAllConnections()
  server.close()
  await http.close()

  // Retries (every arrival after a logical request's first) per 100 ms bin: the largest bin is the
  // biggest wave of retries the server had to absorb at once.
  const seen = new Set<string>()
  const bins = new Map<number, number>()
  for (const arrival of arrivals) {
    if (!seen.has(arrival.logical)) {
      seen.add(arrival.logical)
      continue
    }
    const bin = Math.floor((arrival.at - start) / BIN_MS)
    bins.set(bin, (bins.get(bin) ?? 0) + 1)
  }
  const retries = arrivals.length - seen.size
  return {
    strategy: name,
    logicalRequests,
    attempts: arrivals.length,
    attemptsPerLogicalRequest: round(arrivals.length / logicalRequests, 3),
    succeeded,
    successRate: round(succeeded / logicalRequests, 3),
    retries,
    retriesBeforeRetryAfter: early,
    largestRetryWave: Math.max(0, ...bins.values()),
    retryLatenessMs: {
      min: round(Math.min(...lateness)),
      p50: round(quantile(lateness, 0.5)),
      p99: round(quantile(lateness, 0.99)),
    },
  }
}

/** Ours: one client (one budget) shared by the 200 logical clients of a service. */
const sharedClient = createFetch()
const ours: Strategy = () => (url, init) => sharedClient(url, init)

/** Ours again, one client per logical client: each with its own budget and its small allowance. */
const oursPerClient: Strategy = () => {
  const client = createFetch()
  return (url, init) => client(url, init)
}

/** Retries a 503 at once, up to 3 attempts: what a naive loop does. */
const immediate: Strategy = () => async (url, init) => {
  let response: Response | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    response = await fetch(url, init)
    if (response.status !== 503) return response
    await response.body?.cancel()
  }
  return response
}

/** The seed's client (shared/seed.txt §5): waits min(1000 · 2^attempt, Retry-After), no jitter. */
const referenceClient: Strategy = () => async (url, init) => {
  let response: Response | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    response = await fetch(url, init)
    if (response.status !== 503) return response
    await response.body?.cancel()
    const retryAfter = Number.parseInt(response.headers.get('retry-after') ?? '5', 10)
    if (attempt < 2) await sleep(Math.min(1000 * 2 ** attempt, retryAfter * 1000))
  }
  return response
}

export interface RetryStormResult {
  readonly clients: number
  readonly capacity: number
  readonly offeredPerSecond: number
  readonly durationMs: number
  readonly results: Awaited<ReturnType<typeof storm>>[]
  /** When and how it was measured (absent in results written before it was recorded). */
  readonly startedAt?: string
  readonly command?: string
  readonly revision?: string
  readonly loadavgStart?: number[]
  readonly loadavgEnd?: number[]
}

export async function runRetryStorm(options: {
  quick: boolean
  log: (line: string) => void
}): Promise<RetryStormResult> {
  const durationMs = options.quick ? 4000 : 10_000
  const results = []
  for (const [name, strategy] of [
    ['@backpressure/client (one client)', ours],
    ['@backpressure/client (a client each)', oursPerClient],
    ['immediate retry', immediate],
    ["reference design's client", referenceClient],
  ] as const) {
    const result = await storm(name, strategy, durationMs)
    options.log(
      `  ${name}: ${result.attemptsPerLogicalRequest} attempts per logical request, ${result.retriesBeforeRetryAfter} retries before Retry-After, largest wave ${result.largestRetryWave}`,
    )
    results.push(result)
  }
  return { clients: CLIENTS, capacity: CAPACITY, offeredPerSecond: CLIENTS, durationMs, results }
}

// Run alone: `tsx src/retry-storm.ts [--quick]` prints the table and writes results/retry-storm.json.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick')
  const result = await runRetryStorm({ quick, log: (line) => console.error(line) })
  const header =
    '| strategy | attempts / logical request | success | retries | before Retry-After | largest wave (retries / 100 ms) | lateness min / p50 / p99 (ms) |'
  console.log(`${header}\n|---|---|---|---|---|---|---|`)
  for (const r of result.results) {
    console.log(
      `| ${r.strategy} | ${r.attemptsPerLogicalRequest} | ${round(r.successRate * 100, 1)} % | ${r.retries} | ${r.retriesBeforeRetryAfter} | ${r.largestRetryWave} | ${r.retryLatenessMs.min} / ${r.retryLatenessMs.p50} / ${r.retryLatenessMs.p99} |`,
    )
  }
  const dir = fileURLToPath(new URL('../results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}retry-storm${quick ? '-quick' : ''}.json`, `${JSON.stringify(result, null, 2)}\n`)
}
