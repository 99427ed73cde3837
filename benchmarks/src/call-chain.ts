/**
 * Call-chain tier (`pnpm bench --only chain`): what `@backpressure/client`'s defaults do for the
 * servers they call, on real servers over sockets.
 *
 * 1. Fleet: 50 in-process callers, each its own `createFetch({ timeoutMs: 1000 })` (defaults but the
 *    deadline), offering 10× C open-loop to one Express server with `backpressure()` and no options,
 *    over the simulated pool (P = 4, S = 10 ms, C = 400/s): server-side 503s per served request,
 *    goodput, the callers' successful-call p99 — with the per-origin concurrency limit off (before) and
 *    on (after, the default).
 * 2. Chain A → B → C: three real servers, every layer on defaults; C is the same Express server over
 *    the pool, B and A are Express servers whose route calls the next one with `createFetch()` and the
 *    request's `req.signal`; callers offer 5× C to A. Attempts reaching C per logical request, what A's
 *    callers get, and B route bodies started for callers whose deadline had already passed.
 * 3. 0.9× and 1×: the fleet of (1) below and at C: requests held or refused by the client-side limit
 *    (target 0). At 1× this machine's C is already past its capacity (its pool holds a connection a
 *    little over 10 ms per query), so 0.9× is where holding anything would be a false refusal.
 *
 * The callers, A and B run in this process (A and B are light: a route that awaits the next call); C
 * runs in a child process (server-child.ts) like every macro-tier server.
 */
import { once } from 'node:events'
import { Agent, createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { ClientLimitError, createFetch, defaultConcurrencyLimit, RetryError } from '@backpressure/client'
import { startServer } from './proc.js'
import { quantile, round, sleep } from './stats.js'

const POOL = 4
const QUERY_MS = 10
const CAPACITY = (POOL * 1000) / QUERY_MS
const DEADLINE_MS = 1000
const CALLERS = 50

type FetchFn = typeof globalThis.fetch

/** What a fetch saw on the wire: answers by status, with Retry-After and the retried-below mark. */
interface WireCounts {
  attempts: number
  ok: number
  status503: number
  status503RetryAfter: number
  status503RetriedBelow: number
  otherStatus: number
  errors: number
  /** Attempts that left after the logical request's deadline had passed. */
  late: number
}

function wireCounts(): WireCounts {
  return {
    attempts: 0,
    ok: 0,
    status503: 0,
    status503RetryAfter: 0,
    status503RetriedBelow: 0,
    otherStatus: 0,
    errors: 0,
    late: 0,
  }
}

/**
 * The callers' transport: a minimal fetch over `node:http` (keep-alive, no socket cap, so it limits
 * nothing). Node's own fetch (undici) costs so much CPU per request that 50 callers at 4000 requests a
 * second, on two cores shared with the server, starved themselves (over 5 s behind schedule, 24 answers
 * in 4 s): the rows would have measured the generator. Only the bytes on the wire matter to the server.
 */
const agent = new Agent({ keepAlive: true })
function httpFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((value, key) => {
      headers[key] = value
    })
    const req = request(
      String(input),
      { agent, method: init?.method ?? 'GET', headers, signal: init?.signal ?? undefined },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => {
          const out = new Headers()
          for (const [key, value] of Object.entries(res.headers)) {
            if (typeof value === 'string') out.set(key, value)
          }
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers: out }))
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/** Wraps a fetch to count what goes over the wire (the client's own wiring is untouched). */
function counting(counts: WireCounts, transport: FetchFn = globalThis.fetch): FetchFn {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    counts.attempts++
    const start = Number(new Headers(init?.headers).get('x-logical-start'))
    if (start > 0 && performance.timeOrigin + performance.now() - start > DEADLINE_MS) counts.late++
    try {
      const response = await transport(input, init)
      if (response.status >= 200 && response.status < 300) counts.ok++
      else if (response.status === 503) {
        counts.status503++
        if (response.headers.get('retry-after') !== null) counts.status503RetryAfter++
        if (response.headers.get('backpressure-retried-below') !== null) counts.status503RetriedBelow++
      } else counts.otherStatus++
      return response
    } catch (error) {
      counts.errors++
      throw error
    }
  }) as FetchFn
}

/** What the callers saw: one outcome per logical request. */
interface CallerOutcomes {
  logical: number
  okInTime: number
  okLate: number
  /** RetryError whose last answer was a 503 with a Retry-After. */
  gaveUp503RetryAfter: number
  gaveUpOther: number
  refusedLocally: number
  otherErrors: number
  latencies: number[]
}

/**
 * Open loop: `rate` logical requests a second for `durationMs`, dealt round-robin to the callers,
 * each stamped with its scheduled start (epoch ms) so servers downstream can tell a departed caller.
 */
async function offer(
  callers: FetchFn[],
  url: string,
  rate: number,
  durationMs: number,
): Promise<CallerOutcomes & { okDuringLoad: number; maxLagMs: number }> {
  const out: CallerOutcomes = {
    logical: 0,
    okInTime: 0,
    okLate: 0,
    gaveUp503RetryAfter: 0,
    gaveUpOther: 0,
    refusedLocally: 0,
    otherErrors: 0,
    latencies: [],
  }
  let okDuringLoad = 0
  let maxLagMs = 0
  const total = Math.round((rate * durationMs) / 1000)
  const start = performance.now()
  const end = start + durationMs
  const pending: Promise<void>[] = []
  for (let i = 0; i < total; ) {
    const now = performance.now()
    for (; i < total && start + (i * 1000) / rate <= now; i++) {
      const scheduled = start + (i * 1000) / rate
      maxLagMs = Math.max(maxLagMs, now - scheduled)
      out.logical++
      const caller = callers[i % callers.length]!
      pending.push(
        caller(url, { headers: { 'x-logical-start': String(performance.timeOrigin + scheduled) } }).then(
          async (response) => {
            await response.arrayBuffer()
            const done = performance.now()
            if (response.status < 200 || response.status >= 300) {
              out.otherErrors++
              return
            }
            if (done - scheduled <= DEADLINE_MS) {
              out.okInTime++
              out.latencies.push(done - scheduled)
              if (done <= end) okDuringLoad++
            } else out.okLate++
          },
          (error: unknown) => {
            if (ClientLimitError.is(error)) out.refusedLocally++
            else if (RetryError.is(error) && error.lastStatus === 503 && error.retryAfterMs !== undefined)
              out.gaveUp503RetryAfter++
            else if (RetryError.is(error)) out.gaveUpOther++
            else out.otherErrors++
          },
        ),
      )
    }
    await sleep(1)
  }
  await Promise.all(pending)
  return { ...out, okDuringLoad, maxLagMs }
}

function latencySummary(latencies: number[]) {
  return {
    p50Ms: round(quantile(latencies, 0.5), 1),
    p99Ms: round(quantile(latencies, 0.99), 1),
  }
}

/** The server C of every part: Express, `backpressure()` with no options, over the simulated pool. */
function startC() {
  return startServer({
    system: 'ours-express',
    poolSize: POOL,
    queryMs: QUERY_MS,
    cpuMs: 0,
    deadlineMs: DEADLINE_MS,
  })
}

export interface FleetResult {
  readonly clientLimit: boolean
  readonly multiple: number
  readonly offeredPerSecond: number
  readonly logical: number
  readonly served: number
  readonly serverRejections: number
  readonly rejectionsPerServed: number
  readonly goodputPct: number
  readonly okInTime: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly refusedLocally: number
  readonly gaveUp503: number
  readonly gaveUpOther: number
  readonly otherErrors: number
  readonly held: number
  readonly refused: number
  readonly finalLimit: number
  readonly maxSendLagMs: number
}

export async function fleet(
  multiple: number,
  clientLimit: boolean,
  durationMs: number,
): Promise<FleetResult> {
  const c = await startC()
  try {
    c.go()
    const wire = wireCounts()
    const fetch = counting(wire, httpFetch as FetchFn)
    const callers = Array.from({ length: CALLERS }, () =>
      createFetch({ fetch, timeoutMs: DEADLINE_MS, ...(clientLimit ? {} : { concurrencyLimit: false }) }),
    )
    const heldBefore = defaultConcurrencyLimit.held
    const refusedBefore = defaultConcurrencyLimit.refused
    const out = await offer(callers, `${c.origin}/work`, CAPACITY * multiple, durationMs)
    return {
      clientLimit,
      multiple,
      offeredPerSecond: CAPACITY * multiple,
      logical: out.logical,
      served: wire.ok,
      serverRejections: wire.status503,
      rejectionsPerServed: round(wire.status503 / Math.max(1, wire.ok), 2),
      goodputPct: round((out.okDuringLoad / (durationMs / 1000) / CAPACITY) * 100, 1),
      okInTime: out.okInTime,
      ...latencySummary(out.latencies),
      refusedLocally: out.refusedLocally,
      gaveUp503: out.gaveUp503RetryAfter,
      gaveUpOther: out.gaveUpOther,
      otherErrors: out.otherErrors,
      held: defaultConcurrencyLimit.held - heldBefore,
      refused: defaultConcurrencyLimit.refused - refusedBefore,
      finalLimit: defaultConcurrencyLimit.limit(c.origin),
      maxSendLagMs: round(out.maxLagMs, 1),
    }
  } finally {
    await c.kill()
  }
}

/** A middle server: Express with `backpressure()` (defaults) and its error handler; `/work` calls `next`. */
async function middleServer(next: string, wire: WireCounts, routeStartsLate: { count: number }) {
  const { default: express } = await import('express')
  const { backpressure } = await import('@backpressure/express')
  const app = express()
  const limiter = backpressure()
  const call = createFetch({ fetch: counting(wire) })
  app.use(limiter)
  app.get('/work', async (req, res) => {
    const logicalStart = req.get('x-logical-start') ?? '0'
    if (performance.timeOrigin + performance.now() - Number(logicalStart) > DEADLINE_MS)
      routeStartsLate.count++
    const response = await call(next, { signal: req.signal, headers: { 'x-logical-start': logicalStart } })
    res.status(response.status).send(await response.text())
  })
  app.use(limiter.errorHandler)
  const server: Server = createServer(app)
  server.keepAliveTimeout = 10_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/work`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await limiter.close()
    },
  }
}

export interface ChainResult {
  readonly multiple: number
  readonly offeredPerSecond: number
  readonly logical: number
  /** Attempts that reached C (sent by B's client and answered or failed on the wire). */
  readonly attemptsAtC: number
  readonly attemptsAtCPerLogical: number
  readonly attemptsAtB: number
  readonly attemptsAtA: number
  readonly servedByC: number
  readonly goodputPct: number
  readonly okInTime: number
  readonly p99Ms: number
  /** A's answers to its callers: 503s, with Retry-After, marked retried below. */
  readonly a503: number
  readonly a503RetryAfter: number
  readonly a503RetriedBelow: number
  /** Callers' outcomes: a RetryError after a 503 with Retry-After, refused locally, other. */
  readonly callersGaveUp503: number
  readonly callersRefusedLocally: number
  readonly callersOther: number
  /** B route bodies started after their caller's deadline had passed; attempts sent to C after it. */
  readonly bRoutesForDeparted: number
  readonly cAttemptsForDeparted: number
}

export async function chain(multiple: number, durationMs: number): Promise<ChainResult> {
  const c = await startC()
  const atC = wireCounts()
  const atB = wireCounts()
  const atA = wireCounts()
  const lateB = { count: 0 }
  const lateA = { count: 0 }
  const b = await middleServer(`${c.origin}/work`, atC, lateB)
  const a = await middleServer(b.url, atB, lateA)
  try {
    c.go()
    const fetch = counting(atA, httpFetch as FetchFn)
    const callers = Array.from({ length: CALLERS }, () => createFetch({ fetch, timeoutMs: DEADLINE_MS }))
    const out = await offer(callers, a.url, CAPACITY * multiple, durationMs)
    await sleep(200)
    return {
      multiple,
      offeredPerSecond: CAPACITY * multiple,
      logical: out.logical,
      attemptsAtC: atC.attempts,
      attemptsAtCPerLogical: round(atC.attempts / out.logical, 3),
      attemptsAtB: atB.attempts,
      attemptsAtA: atA.attempts,
      servedByC: atC.ok,
      goodputPct: round((out.okDuringLoad / (durationMs / 1000) / CAPACITY) * 100, 1),
      okInTime: out.okInTime,
      p99Ms: latencySummary(out.latencies).p99Ms,
      a503: atA.status503,
      a503RetryAfter: atA.status503RetryAfter,
      a503RetriedBelow: atA.status503RetriedBelow,
      callersGaveUp503: out.gaveUp503RetryAfter,
      callersRefusedLocally: out.refusedLocally,
      callersOther: out.gaveUpOther + out.otherErrors,
      bRoutesForDeparted: lateB.count,
      cAttemptsForDeparted: atC.late,
    }
  } finally {
    await a.close()
    await b.close()
    await c.kill()
  }
}

export interface CallChainResult {
  readonly capacity: number
  readonly callers: number
  readonly deadlineMs: number
  readonly durationMs: number
  readonly runs: number
  readonly fleet: (FleetResult & { run: number })[]
  readonly chain: (ChainResult & { run: number })[]
  /** The fleet at 0.9× and 1× of C, the client limit off and on. */
  readonly nearCapacity: (FleetResult & { run: number })[]
}

export async function runCallChain(options: {
  runs: number
  durationMs: number
  log: (line: string) => void
}): Promise<CallChainResult> {
  const { runs, durationMs, log } = options
  const fleetRows: (FleetResult & { run: number })[] = []
  const chainRows: (ChainResult & { run: number })[] = []
  const nearRows: (FleetResult & { run: number })[] = []
  for (let run = 1; run <= runs; run++) {
    for (const clientLimit of [false, true]) {
      const r = await fleet(10, clientLimit, durationMs)
      fleetRows.push({ ...r, run })
      log(
        `  fleet 10×, client limit ${clientLimit ? 'on' : 'off'}, run ${run}: ${r.rejectionsPerServed} server 503s per served (${r.serverRejections}/${r.served}), goodput ${r.goodputPct}% of C, p99 ${r.p99Ms} ms, refused locally ${r.refusedLocally}, limit ${r.finalLimit}, send lag ≤ ${r.maxSendLagMs} ms`,
      )
    }
    const ch = await chain(5, durationMs)
    chainRows.push({ ...ch, run })
    log(
      `  chain A→B→C at 5×, run ${run}: ${ch.attemptsAtCPerLogical} attempts at C per logical (${ch.attemptsAtC}/${ch.logical}), goodput ${ch.goodputPct}% of C, A 503s ${ch.a503} (Retry-After ${ch.a503RetryAfter}, retried-below ${ch.a503RetriedBelow}), B routes for departed ${ch.bRoutesForDeparted}, C attempts for departed ${ch.cAttemptsForDeparted}`,
    )
    // Below and at C beside today's client (no limit), in the same run: what holding costs and saves.
    for (const multiple of [0.9, 1]) {
      for (const clientLimit of [false, true]) {
        const near = await fleet(multiple, clientLimit, durationMs)
        nearRows.push({ ...near, run })
        log(
          `  fleet ${multiple}×, client limit ${clientLimit ? 'on' : 'off'}, run ${run}: held ${near.held}, refused ${near.refused}, goodput ${near.goodputPct}% of C, p50 ${near.p50Ms} ms, p99 ${near.p99Ms} ms, server 503s ${near.serverRejections}`,
        )
      }
    }
  }
  return {
    capacity: CAPACITY,
    callers: CALLERS,
    deadlineMs: DEADLINE_MS,
    durationMs,
    runs,
    fleet: fleetRows,
    chain: chainRows,
    nearCapacity: nearRows,
  }
}

// Run alone while developing: `tsx src/call-chain.ts [runs] [durationMs]`.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = Number(process.argv[2] ?? 1)
  const durationMs = Number(process.argv[3] ?? 4000)
  const result = await runCallChain({ runs, durationMs, log: (line) => console.error(line) })
  console.log(JSON.stringify(result, null, 1))
}
