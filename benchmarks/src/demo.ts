/**
 * `pnpm demo`: the overload story in about a minute. One Express server over a simulated database
 * (pool of 4 connections, 10 ms per query: capacity 400 req/s) is driven at 5× its capacity, first
 * without protection, then with `backpressure()` (default options, then tuned to the pool), and the
 * three runs end side by side. Reuses the macro harness: same server child, same load generator.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { ioScenario, type PhaseResult, runPhase } from './macro.js'
import { tunedOptions } from './systems.js'

const require = createRequire(import.meta.url)
try {
  const entry = require.resolve('@backpressure/express')
  if (!existsSync(entry)) throw new Error('missing')
} catch {
  console.error(
    'The workspace packages are not built yet: run `pnpm build` (or `bash scripts/bootstrap.sh`) first.',
  )
  process.exit(1)
}

const scenario = ioScenario(4, 10, 1000)
const multiple = Number(process.env.DEMO_LOAD ?? 5)
const durationMs = Number(process.env.DEMO_SECONDS ?? 12) * 1000
const rate = scenario.capacity * multiple
const tty = process.stdout.isTTY === true
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[22m` : s)
const dim = (s: string): string => (tty ? `\x1b[2m${s}\x1b[22m` : s)

const RUNS = [
  { system: 'express', title: 'Express, no protection', code: "app.get('/work', handler)" },
  {
    system: 'ours-express',
    title: 'Express + backpressure(), default options',
    code: 'app.use(backpressure())',
  },
  {
    system: 'ours-express-tuned',
    title: 'Express + backpressure(), tuned to the pool',
    code: `app.use(backpressure(${JSON.stringify(tunedOptions(scenario)).replace(/"/g, '').replace(/,/g, ', ').replace(/:/g, ': ')}))`,
  },
] as const

console.log(bold('Backpressure demo'))
console.log(
  `An Express route awaits a simulated database: a pool of ${scenario.poolSize} connections, ${scenario.queryMs} ms per query,\n` +
    `so the server can do at most ${scenario.capacity} requests/s. Clients send ${rate} requests/s (${multiple}× that) on a fixed\n` +
    `schedule and give up after ${scenario.deadlineMs / 1000} s. Each run: ${durationMs / 1000} s, on a fresh server process on 127.0.0.1.\n`,
)

const results: { title: string; phase: PhaseResult }[] = []
for (const [i, run] of RUNS.entries()) {
  console.log(bold(`▶ ${i + 1}/${RUNS.length}  ${run.title}`) + dim(`   ${run.code}`))
  const phase = await runPhase({
    system: run.system,
    scenario,
    multiple,
    durationMs,
    onProgress: (p) => {
      const t = `${Math.round(p.elapsedMs / 1000)}s`.padStart(4)
      console.log(
        `  ${t}  sent ${String(p.sent).padStart(6)}   answered in time ${String(p.okInTime).padStart(5)}   shed (503) ${String(p.shed).padStart(6)}   timed out ${String(p.timeouts).padStart(6)}   in flight ${String(p.inFlight).padStart(5)}   server RSS ${String(Math.round(p.rss / 2 ** 20)).padStart(4)} MB`,
      )
    },
  })
  results.push({ title: run.title, phase })
  const l = phase.load
  console.log(
    dim(
      `  done: ${l.okInTime} answered in time, ${l.status503WithRetryAfter} shed with 503 + Retry-After, ${l.timeouts} timed out, ${phase.departedQueries} queries ran for clients that had already given up\n`,
    ),
  )
}

const header = [
  '',
  'goodput (% of capacity)',
  'p99 of successful',
  '503 + Retry-After',
  'timed out',
  'peak RSS',
]
const rows = results.map(({ title, phase }) => {
  const l = phase.load
  const ra = Object.keys(l.retryAfter).map(Number)
  const spread = ra.length === 0 ? '' : ` (${Math.min(...ra)}–${Math.max(...ra)} s)`
  return [
    title,
    `${phase.goodputPct.toFixed(0)}%`,
    Number.isNaN(l.p99Ms) ? '–' : `${Math.round(l.p99Ms)} ms`,
    `${l.status503WithRetryAfter}${spread}`,
    `${l.timeouts}`,
    `${Math.round(phase.peakRssBytes / 2 ** 20)} MB`,
  ]
})
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (cells: string[]): string =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  │  ')
console.log(
  bold(
    `Side by side, at ${multiple}× capacity (${rate} req/s offered, ${scenario.capacity} req/s possible):`,
  ),
)
console.log(line(header))
console.log(widths.map((w) => '─'.repeat(w)).join('──┼──'))
for (const row of rows) console.log(line(row))
const [naive, ours] = results
if (naive !== undefined && ours !== undefined) {
  console.log(
    `\nWithout protection the pool's queue grows without bound: requests wait longer than clients will, so the\n` +
      `server works for clients that already left (${naive.phase.departedQueries} of ${naive.phase.queries} queries) and almost nobody gets an answer in time.\n` +
      `With backpressure the excess is turned away at once with 503 and a jittered Retry-After, and the capacity\n` +
      `goes to requests that can still be served in time. Full comparison with the peers: docs/benchmarks.md.`,
  )
}
