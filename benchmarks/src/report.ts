/** Regenerates docs/benchmarks.md (and its SVG charts) from the raw results of one run. */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { BenchResults, CompactPhase, MacroPhase } from './bench.js'
import { CALL_CHAIN_HEADING, callChainSection, callChainTargets } from './call-chain-report.js'
import { ceilingSection, gatesBeside } from './ceiling.js'
import { loadChart, type Row, shedChart, stepChart } from './charts.js'
import { CONSUMERS_HEADING, consumersSection, consumersSummary } from './consumers.js'
import { cpuCeilingSection } from './cpu-ceiling.js'
import {
  FLEET_HEADING,
  FLEET_SIM_HEADING,
  fleetJoinSection,
  fleetSection,
  fleetSimSection,
  fleetSimTarget,
  fleetTarget,
} from './fleet-report.js'
import { shortRunsSection } from './short-runs.js'
import { cov } from './stats.js'
import { streamsSection } from './streams.js'
import { labelOf as label, SYSTEMS, systemByName } from './systems.js'

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url))
const RESULTS = fileURLToPath(new URL('../results/', import.meta.url))

const fmt = (value: number | null | undefined, digits = 0): string =>
  value === null || value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits)
const mb = (bytes: number): string => (Number.isNaN(bytes) ? '–' : `${Math.round(bytes / 2 ** 20)}`)
const kindOf = (name: string): string => {
  try {
    return systemByName(name).kind === 'ours' ? 'ours' : 'other'
  } catch {
    return 'other'
  }
}

function retryAfterSpread(p: CompactPhase): string {
  const values = Object.keys(p.load.retryAfter).map(Number)
  if (values.length === 0) return '–'
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  return lo === hi ? `${lo}` : `${lo}–${hi}`
}

/**
 * The limit's CoV over its one-second means in steady overload (second 3 to the step): the 100 ms
 * samples also catch each baseline probe's brief dip to half, which is a measurement, not oscillation.
 */
function limitCovPerSecond(run: NonNullable<BenchResults['steps']>[number]): number | null {
  const means = run.summary.perSecond
    .filter((s) => s.second >= 3 && (s.second + 1) * 1000 <= run.step.atMs && s.limit !== null)
    .map((s) => s.limit as number)
  return means.length > 1 ? cov(means) : null
}

/** A settling time for prose: seconds, or 'never' when the limit did not stay in its band. */
function settle(seconds: number | null): string {
  return seconds === null ? 'never' : `${seconds} s`
}

function phaseTable(phases: CompactPhase[], capacity: number, queryMs: number): string {
  const head =
    '| system | goodput % of C | p50 ms | p99 ms | 503 + Retry-After (spread s) | 503 no RA | 429 | 2xx late | timeouts | socket errors | unanswered | queries for departed clients | peak RSS MB | server CPU % of a core | query hold ms | ceiling % of C (S / hold) | sent/s |\n' +
    '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  const rows = phases.map((p) => {
    const l = p.load
    const run = (p as MacroPhase).run
    return `| ${label(p.system)}${run === undefined ? '' : ` (run ${run})`} | **${fmt(p.goodputPct, 1)}** | ${fmt(l.p50Ms)} | ${fmt(l.p99Ms)} | ${l.status503WithRetryAfter} (${retryAfterSpread(p)}) | ${l.status503NoRetryAfter} | ${l.status429} | ${l.okLate} | ${l.timeouts} | ${l.socketErrors} | ${l.unanswered} | ${p.departedQueries} of ${p.queries} | ${mb(p.peakRssBytes)} | ${fmt(p.serverCpuPct)} | ${p.meanHoldMs ? fmt(p.meanHoldMs, 2) : '–'} | ${p.meanHoldMs ? fmt((queryMs / p.meanHoldMs) * 100, 1) : '–'} | ${fmt(l.achievedRate)}${l.achievedRate < l.rate * 0.97 ? ` ⚠ of ${Math.round(l.rate)}` : ''} |`
  })
  void capacity
  return [head, ...rows].join('\n')
}

/**
 * What one core can serve at m × C when every request is either served (s µs of CPU) or rejected (r µs):
 * f·s + (m − f)·r ≤ s·C·1 s, so f = (1 − m·r/s) / (1 − r/s) of C. s from C, r from the rejection tier.
 */
function cpuBound(results: BenchResults): string {
  const cpu = results.cpu!
  const servedUs = 1e6 / cpu.scenario.capacity
  const medians = results.rejection?.medians
  const rows = [
    ['our Express middleware inside Express (behind another)', 'ours-express-held'],
    ['attached (Express)', 'ours-express-attached-held'],
    ['our Fastify plugin', 'ours-fastify-held'],
    ['our Koa middleware', 'ours-koa-held'],
  ]
    .map(([name, system]) => [name!, medians?.[system!]?.cpuUsPerRejection] as const)
    .filter((row): row is readonly [string, number] => row[1] !== undefined)
  const bound = (m: number, r: number): string =>
    fmt(Math.min(100, ((1 - (m * r) / servedUs) / (1 - r / servedUs)) * 100), 0)
  const fromTier =
    rows.length === 0
      ? 'The bound from the rejection tier (CPU per rejection) needs that tier; it was not run.'
      : `What one core can serve at most, from the measured costs: a served request costs ${fmt(servedUs, 0)} µs here (1 s / C), a rejection what the rejection tier measured; at m × C the share of C served is at most (1 − m·r/s) / (1 − r/s). ${rows.map(([name, r]) => `${name}: r = ${fmt(r, 1)} µs, so at most ${bound(2, r)}% of C at 2× and ${bound(5, r)}% at 5×`).join('; ')}.`
  return `${fromTier} ${inSituCosts(cpu.phases, cpu.scenario.capacity, cpu.durationMs)}`
}

/**
 * The costs as this tier's own phases show them (the rejection tier's closed loop over a few sockets
 * prices a rejection lower than thousands of connected clients do): each run's 2× and 5× phases give
 * two equations, server CPU = handled·s + rejected·r, solved for s and r; medians over the runs.
 */
function inSituCosts(phases: readonly CompactPhase[], capacity: number, durationMs: number): string {
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
  const rejected = (p: CompactPhase): number => Object.values(p.rejections ?? {}).reduce((a, b) => a + b, 0)
  const parts: string[] = []
  for (const system of [...new Set(phases.map((p) => p.system))]) {
    const costs: [number, number][] = []
    const budgets: number[] = []
    for (const two of phases.filter((p) => p.system === system && p.multiple === 2)) {
      const run = (p: CompactPhase): number => (p as MacroPhase).run ?? 1
      const five = phases.find((p) => p.system === system && p.multiple === 5 && run(p) === run(two))
      if (five === undefined) continue
      const [a, b, c, d] = [two.queries, rejected(two), five.queries, rejected(five)]
      const det = a * d - b * c
      if (b === 0 || d === 0 || det === 0) continue
      const s = ((two.serverCpuMs * d - five.serverCpuMs * b) / det) * 1000
      const r = ((a * five.serverCpuMs - c * two.serverCpuMs) / det) * 1000
      if (s > 0 && r > 0) costs.push([s, r])
      budgets.push(two.serverCpuMs / durationMs, five.serverCpuMs / durationMs)
    }
    if (costs.length === 0) continue
    const s = median(costs.map(([x]) => x))
    const r = median(costs.map(([, y]) => y))
    // The server's CPU a second under overload (a little over one core: V8 collects garbage on threads
    // of its own): served·s + rejected·r = that, served + rejected = m·C.
    const budget = median(budgets) * 1e6
    const bound = (m: number): string =>
      fmt(Math.max(0, Math.min(100, ((budget - m * capacity * r) / (s - r) / capacity) * 100)), 0)
    parts.push(
      `${label(system)}: s = ${fmt(s, 0)} µs, r = ${fmt(r, 0)} µs, so at most ${bound(2)}% of C at 2× and ${bound(5)}% at 5×`,
    )
  }
  return parts.length === 0
    ? ''
    : `Measured in this tier's own phases, with its thousands of connected clients (each run's 2× and 5× phases solved for the server CPU per handled request s and per rejection r; medians of the runs; the server's CPU a second under overload is served·s + rejected·r): ${parts.join('; ')}.`
}

function byMultiple(phases: CompactPhase[]): Map<number, CompactPhase[]> {
  const map = new Map<number, CompactPhase[]>()
  for (const p of phases) map.set(p.multiple, [...(map.get(p.multiple) ?? []), p])
  return map
}

/** The phase of a system at a load; of several runs, the one with the median goodput. */
function find(
  phases: CompactPhase[] | undefined,
  system: string,
  multiple: number,
): CompactPhase | undefined {
  const runs = (phases ?? [])
    .filter((p) => p.system === system && p.multiple === multiple)
    .sort((a, b) => a.goodputPct - b.goodputPct)
  return runs[Math.floor((runs.length - 1) / 2)]
}

/** The macro targets of attach(): no options, 10×, every run. */
const ATTACHED_TARGET = { multiple: 10, goodputPct: 97, timeouts: 0, p99Ms: 100 } as const
const ATTACHED_PAIRS = [
  { framework: 'Express', middleware: 'ours-express', attached: 'ours-express-attached' },
  { framework: 'Koa', middleware: 'ours-koa', attached: 'ours-koa-attached' },
] as const

function meetsAttachedTarget(p: CompactPhase): boolean {
  return (
    p.goodputPct >= ATTACHED_TARGET.goodputPct &&
    p.load.timeouts === ATTACHED_TARGET.timeouts &&
    p.load.p99Ms <= ATTACHED_TARGET.p99Ms
  )
}

/** The rejection tier's targets: attached Express against the middleware and against raw node:http. */
const REJECTION_TARGETS = [
  { ratio: 'Express: attached / middleware', at: 'at least', value: 2, text: '≥ 2× the middleware' },
  {
    ratio: 'Express: attached / raw node:http',
    at: 'at least',
    value: 1 / 1.3,
    text: 'within 1.3× of raw node:http',
  },
] as const

export async function writeReport(results: BenchResults): Promise<string[]> {
  const written: string[] = []
  const outDir = results.quick ? RESULTS : DOCS
  const prefix = results.quick ? 'quick-' : 'benchmarks-'
  const charts: string[] = []
  const chart = async (name: string, svg: Promise<string>): Promise<string> => {
    const file = `${prefix}${name}.svg`
    writeFileSync(`${outDir}${file}`, await svg)
    written.push(`${outDir}${file}`)
    charts.push(file)
    return file
  }

  const m = results.machine
  const lines: string[] = []
  lines.push('# Benchmarks')
  lines.push('')
  lines.push(
    '<!-- Generated by `pnpm bench` (benchmarks/src/report.ts) from benchmarks/results/latest.json. Do not edit by hand. -->',
  )
  lines.push('')
  lines.push(
    'What happens to a Node.js HTTP server when the work it accepts outgrows its database, with and without overload protection — every system measured in the same run, on the same machine, side by side.',
  )
  lines.push('')
  lines.push('## How this was run')
  lines.push('')
  lines.push(
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.platform}, Node ${m.node}. Load average at start ${m.loadavgStart.join(' / ')}, at end ${m.loadavgEnd.join(' / ')} (a shared, noisy machine: read ratios, not absolutes).`,
  )
  lines.push(
    `- Run started ${results.startedAt}, took ${Math.round(results.durationS)} s: \`${results.command}\`.${results.clientsLeave !== undefined && results.clientsLeave.startedAt.slice(0, 16) !== results.startedAt.slice(0, 16) ? ' The clients-leave section was measured in a later run of its own (it says when and how).' : ''}${results.rejection !== undefined && results.rejection.startedAt.slice(0, 16) !== results.startedAt.slice(0, 16) ? ' So was the rejection tier.' : ''}${(results.macro?.reruns ?? []).length > 0 ? ' Some rows of the overload matrix were measured again later (the section says which).' : ''}`,
  )
  lines.push(
    '- Reproduce: `bash scripts/bootstrap.sh && pnpm bench` (full, about 18 minutes), or `pnpm bench --quick` (a few minutes, written to benchmarks/results/ only). `pnpm bench --only macro --systems express,ours-express` runs a subset (`--multiples 10 --runs 3` narrows the loads and repeats each row), and `--merge` writes what it ran into the existing results in place of those figures (`pnpm bench --only rejection --merge`: the rejection tier alone); `--capacity 764,1188` takes C of the CPU-bound tier (the CPU-bound route, the mixed route) as given instead of calibrating it, so that batches compared side by side offer the same loads. Raw results: [benchmarks/results/latest.json](../benchmarks/results/latest.json).',
  )
  lines.push(
    "- Servers run in a child process each (a fresh one per system and load, so no phase inherits another's backlog); their CPU time (per-thread scheduler time from `/proc/<pid>/task/*/schedstat`) and peak RSS (`VmHWM`) are read from outside. The load generator (a minimal HTTP/1.1 client over `node:net`: keep-alive sockets, one outstanding request each, no pipelining; a request unanswered at its deadline has its socket destroyed) runs in the parent: open loop, requests on a fixed schedule, each with a 1 s client deadline counted from its scheduled time.",
  )
  lines.push('')

  const macro = results.macro
  if (macro !== undefined) {
    const s = macro.scenario
    lines.push('## The overload scenario')
    lines.push('')
    lines.push(
      `A route awaits one query on a simulated database: a pool of P = ${s.poolSize} connections, S = ${s.queryMs} ms of I/O per query, excess callers waiting in the pool's own unbounded FIFO (as pg-pool's do). The database itself runs on a thread of its own and answers each query S ms after it was sent, exactly; the answer then waits for the server's event loop to read it, so a server busy with its own work holds each connection longer ("query hold ms": S plus that lateness) and gets less than C out of the pool: at most S / hold of C ("ceiling"), whatever its admission control does. Capacity C = P·1000/S = **${s.capacity} req/s**. Offered load ${macro.multiples.map((x) => `${x}×`).join(', ')} C, ${macro.durationMs / 1000} s per phase after a short warm-up at 0.5× C. Goodput = 2xx answered within the 1 s deadline while the load ran, per second, as % of C (so 0.5× C can at most reach 50%; answers that drain from a queue after the last send are not credited, so no system can show more than its capacity).`,
    )
    lines.push('')
    lines.push('Systems:')
    lines.push('')
    for (const system of SYSTEMS) {
      if (!macro.phases.some((p) => p.system === system.name)) continue
      lines.push(`- **${system.label}** (\`${system.name}\`)`)
    }
    lines.push('')
    lines.push(
      '"Ours, Express" is `app.use(backpressure())` as the app\'s first middleware, which after its first request attaches itself to the server as `limiter.attach(server)` would. "Attached" is the same middleware plus `limiter.attach(server)` after `app.listen()`: admission runs in the node:http server\'s own request listener, before the framework; an admitted request goes on into the framework and the middleware lets it through. "Tuned to the pool" is `{ maxConcurrency: P, maxQueueDepth: 2·P }`. The p-queue guard is `new PQueue({ concurrency: P })` answering 503 with `Retry-After: 5` once `queue.size ≥ 100` (a quarter second of the pool\'s work). The reference design is a bounded queue polled with `setImmediate` and sorted per dequeue (100 in flight, 1000 queued), transcribed as-is in benchmarks/src/reference-design.ts: the simplest admission queue one would write by hand.',
    )
    if (macro.skipped.length > 0)
      lines.push(`\nSkipped (package missing or failed to start): ${macro.skipped.join(', ')}.`)
    for (const rerun of macro.reruns ?? []) {
      lines.push('')
      lines.push(
        `Measured again later, in a run of their own, in place of their rows of the full run: ${rerun.systems.map((x) => `\`${x}\``).join(', ')} at ${rerun.multiples.map((x) => `${x}×`).join(', ')} C${rerun.runs > 1 ? `, ${rerun.runs} runs each (interleaved: every system once per run; every run shown)` : ''}, ${rerun.startedAt} (load average ${rerun.loadavgStart.join(' / ')} at start, ${rerun.loadavgEnd.join(' / ')} at end), code at ${rerun.revision}: \`${rerun.command}\`.`,
      )
    }
    lines.push('')

    // One point per system and load: of several runs, the median one.
    const charted = macro.phases.filter((p) => find(macro.phases, p.system, p.multiple) === p)
    const rows: Row[] = charted.map((p) => ({
      name: p.system,
      system: label(p.system),
      kind: kindOf(p.system),
      load: p.multiple,
      goodput: p.goodputPct,
      p99: Number.isNaN(p.load.p99Ms) || p.load.p99Ms === null ? null : Math.max(1, p.load.p99Ms),
    }))
    // One chart per comparison a reader makes, each with no more series than the palette has colours.
    const groups = [
      {
        name: 'load-express',
        title: 'Express: unprotected, the peers, the reference design and ours',
        systems: [
          'express',
          'overload-protection',
          'toobusy-js',
          'p-queue-guard',
          'reference-design',
          'ours-express',
          'ours-express-tuned',
        ],
      },
      {
        name: 'load-fastify-koa',
        title: 'Fastify and Koa: unprotected, the peers and ours',
        systems: [
          'fastify',
          'under-pressure',
          'under-pressure-elu',
          'ours-fastify',
          'ours-fastify-tuned',
          'koa',
          'ours-koa',
          'ours-koa-tuned',
        ],
      },
      {
        name: 'load-ours',
        title: 'Ours: default options, tuned to the pool, attached',
        systems: [
          'ours-express',
          'ours-express-tuned',
          'ours-express-attached',
          'ours-fastify',
          'ours-fastify-tuned',
          'ours-koa',
          'ours-koa-tuned',
          'ours-koa-attached',
        ],
      },
    ]
    lines.push(
      `Goodput (top) and p99 of accepted requests (bottom, log scale) against offered load, C = ${s.capacity} req/s; ours solid, every other system dashed; of several runs, the median one.`,
    )
    lines.push('')
    for (const group of groups) {
      const mine = group.systems.flatMap((name) => rows.filter((r) => r.name === name))
      if (mine.length === 0) continue
      const file = await chart(group.name, loadChart({ title: group.title, rows: mine, series: 'system' }))
      lines.push(`![${group.title}](${file})`)
      lines.push('')
    }
    for (const [multiple, phases] of byMultiple(macro.phases)) {
      lines.push(`### ${loadHeading(multiple, s.capacity)}`)
      lines.push('')
      lines.push(phaseTable(phases, s.capacity, s.queryMs))
      lines.push('')
    }
  }

  const steps = results.steps
  if (steps !== undefined && steps.length > 0) {
    lines.push(`## ${HEADINGS.steps}`)
    lines.push('')
    lines.push(
      'The pool shrinks inside the server (on a timer started with the load) and recovers later, under 3× the original capacity. Goodput per second (2xx within the deadline, by the second they arrived) against the capacity in force that second; "limit" is our controller\'s concurrency limit averaged over that second.' +
        (results.stepsMeasured === undefined
          ? ''
          : ` Measured in a later run of its own, ${results.stepsMeasured.at}, code at ${results.stepsMeasured.revision}: \`${results.stepsMeasured.command}\`.`),
    )
    lines.push('')
    const capacityLabel = 'capacity in force'
    const stepRows: Row[] = []
    for (const run of steps) {
      for (const sec of run.summary.perSecond) {
        stepRows.push({
          system: label(run.system),
          kind: kindOf(run.system),
          size: run.step.size,
          second: sec.second,
          goodput: sec.okInTime,
        })
      }
    }
    const sizes = [...new Set(steps.map((r) => r.step.size))]
    for (const size of sizes) {
      const run = steps.find((r) => r.step.size === size)!
      for (const sec of run.summary.perSecond) {
        stepRows.push({
          system: capacityLabel,
          kind: 'ours',
          size,
          second: sec.second,
          goodput: sec.capacity,
        })
      }
    }
    const poolSize = macro?.scenario.poolSize ?? 4
    const stepsFile = await chart(
      'steps',
      stepChart({
        title: 'Goodput per second through a capacity step (3× load)',
        rows: stepRows,
        panels: sizes.map((size) => ({
          title: `pool ${poolSize} → ${size}`,
          filter: `datum.size === ${size}`,
        })),
        capacity: capacityLabel,
      }),
    )
    lines.push(`![Goodput through capacity steps](${stepsFile})`)
    lines.push('')
    for (const run of steps) {
      const ps = run.summary.perSecond
      lines.push(
        `**${label(run.system)}**, pool ${macro?.scenario.poolSize ?? 4} → ${run.step.size} at ${run.step.atMs / 1000} s, back at ${run.step.recoverAtMs / 1000} s: overall goodput ${fmt(run.phase.goodputPct, 1)}% of the original C; p99 ${fmt(run.summary.p99Ms.before)} ms before the step, ${fmt(run.summary.p99Ms.during)} ms during it, ${fmt(run.summary.p99Ms.after)} ms after the recovery; ${run.phase.departedQueries} of ${run.phase.queries} queries for departed clients.${run.summary.limitCovSteady === null ? '' : ` Limit CoV before the step: ${fmt(run.summary.limitCovSteady * 100, 1)}% over 100 ms samples, ${fmt((limitCovPerSecond(run) ?? Number.NaN) * 100, 1)}% over one-second means; the limit settled (stayed within ±25% of its new level) ${settle(run.summary.settleS.drop)} after the drop and ${settle(run.summary.settleS.recovery)} after the recovery.`}`,
      )
      lines.push('')
      lines.push(`| second | ${ps.map((p) => p.second).join(' | ')} |`)
      lines.push(`|---|${ps.map(() => '---:').join('|')}|`)
      lines.push(`| capacity | ${ps.map((p) => p.capacity).join(' | ')} |`)
      lines.push(`| 2xx in time | ${ps.map((p) => p.okInTime).join(' | ')} |`)
      lines.push(`| % of capacity | ${ps.map((p) => fmt(p.pctOfCapacity)).join(' | ')} |`)
      if (ps.some((p) => p.limit !== null))
        lines.push(`| limit | ${ps.map((p) => fmt(p.limit)).join(' | ')} |`)
      lines.push('')
    }
  }

  const leave = results.clientsLeave
  if (leave !== undefined && leave.phases.length > 0) lines.push(clientsLeaveSection(leave))
  if (results.shortRuns !== undefined) {
    lines.push(shortRunsSection(results.shortRuns, HEADINGS.shortRuns))
    const gates = gatesBeside(results, [2, 5], 99, anchor(HEADINGS.ceiling), true)
    if (gates !== undefined) lines.push(gates, '')
  }

  if (macro !== undefined) {
    const attached = attachedSection(macro, results.machine.cores)
    if (attached !== undefined) {
      lines.push(attached)
      const gates = gatesBeside(
        results,
        [ATTACHED_TARGET.multiple],
        ATTACHED_TARGET.goodputPct,
        anchor(HEADINGS.ceiling),
      )
      if (gates !== undefined) lines.push(gates, '')
    }
  }
  const ceiling = ceilingSection(results, HEADINGS.ceiling)
  if (ceiling !== undefined) lines.push(ceiling)
  if (results.rejection !== undefined && results.rejection.samples.length > 0) {
    lines.push(rejectionSection(results.rejection))
  }

  const cpu = results.cpu
  if (cpu !== undefined && cpu.phases.length > 0) {
    lines.push('## CPU-bound variant')
    lines.push('')
    lines.push(
      `No database: each request burns ${cpu.scenario.cpuMs} ms of CPU on the event loop, where event-loop signals are the right ones. C = ${cpu.scenario.capacity} req/s (${cpu.calibration}). ${cpu.durationMs / 1000} s per phase.${cpu.scenario.connectedClients === true ? " The clients are connected before the load begins (as many keep-alive sockets as the load can have requests within a deadline, as a busy server's clients or a proxy's pool are), so every request reaches the server: opened during the overload instead, most sockets would wait in the kernel's accept queue, which a saturated Node process drains slowly (measured: 635 accepted in 4 s at 2×, the queue full at 512), and their requests would time out unread, shed for free by the kernel." : ''}${cpu.startedAt === undefined ? '' : ` Measured ${cpu.startedAt}${cpu.loadavgStart === undefined ? '' : ` (load average ${cpu.loadavgStart.join(' / ')} at start, ${(cpu.loadavgEnd ?? []).join(' / ')} at end)`}${cpu.revision === undefined ? '' : `, code at ${cpu.revision}: \`${cpu.command}\``}.`}`,
    )
    lines.push('')
    lines.push(cpuBound(results))
    lines.push('')
    const shedRows: Row[] = []
    for (const p of cpu.phases) {
      if (p.shedSeries === undefined || ((p as MacroPhase).run ?? 1) !== 1 || p.multiple < 2) continue
      // A chart takes at most 8 series: the first four systems that shed, at 2× and 5×.
      const key = `${label(p.system)}, ${p.multiple}×`
      if (!shedRows.some((r) => r.series === key) && new Set(shedRows.map((r) => r.series)).size >= 8)
        continue
      for (const [ms, fraction, lag] of p.shedSeries) {
        shedRows.push({ series: `${label(p.system)}, ${p.multiple}×`, second: ms / 1000, fraction, lag })
      }
    }
    if (shedRows.length > 0) {
      const file = await chart(
        'shed-fraction',
        shedChart({ title: 'Event-loop shedding over a CPU-bound run (run 1)', rows: shedRows }),
      )
      lines.push(`![The event-loop shedder's fraction and the loop's lag over a run](${file})`)
      lines.push('')
    }
    for (const [multiple, phases] of byMultiple(cpu.phases)) {
      lines.push(`### ${loadHeading(multiple, cpu.scenario.capacity)}`)
      lines.push('')
      lines.push(phaseTable(phases, cpu.scenario.capacity, cpu.scenario.queryMs))
      lines.push('')
    }
    const mixed = cpu.mixed
    if (mixed !== undefined && mixed.phases.length > 0) {
      lines.push('### Mixed: CPU and a database')
      lines.push('')
      lines.push(
        `Each request burns ${mixed.scenario.cpuMs} ms of CPU, then runs one query on a pool of ${mixed.scenario.poolSize} × ${mixed.scenario.queryMs} ms: both the event loop and the pool are near their limits. C = ${mixed.scenario.capacity} req/s (${mixed.calibration}).`,
      )
      lines.push('')
      for (const [multiple, phases] of byMultiple(mixed.phases)) {
        lines.push(`#### ${loadHeading(multiple, mixed.scenario.capacity)}`)
        lines.push('')
        lines.push(phaseTable(phases, mixed.scenario.capacity, mixed.scenario.queryMs))
        lines.push('')
      }
    }
    const ceiling = cpuCeilingSection(results)
    if (ceiling !== undefined) lines.push(ceiling)
  }

  const overhead = results.overhead
  if (overhead !== undefined) {
    lines.push(`## ${HEADINGS.overhead}`)
    lines.push('')
    lines.push(
      `Hello-world route. Server CPU time per request at a fixed ${overhead.fixedRate} req/s (open loop, read from outside; the primary figure), and closed-loop throughput (autocannon, ${overhead.autocannon.connections} connections, ${overhead.autocannon.durationS} s). ${overhead.rounds} rounds, every server alternating with its baseline (A B A B, order reversed each round). Ratios are taken within a round; shown as median (min–max).`,
    )
    lines.push('')
    lines.push(
      '| system vs baseline | CPU µs/request (baseline → system) | CPU ratio | throughput req/s (baseline → system) | throughput ratio |',
    )
    lines.push('|---|---:|---:|---:|---:|')
    for (const r of overhead.ratios) {
      lines.push(
        `| ${label(r.variant)} vs ${label(r.base)} | ${r.cpuUsPerRequest.base} → ${r.cpuUsPerRequest.variant} | **${spread(r.cpuRatios)}** | ${r.throughput.base} → ${r.throughput.variant} | ${spread(r.throughputRatios)} |`,
      )
    }
    lines.push('')
  }

  const micro = results.micro
  if (micro !== undefined) {
    lines.push(`## ${HEADINGS.micro}`)
    lines.push('')
    lines.push(
      `One process, ${micro.rounds} rounds, every case once per round; medians. Ours and p-queue are given the reference design's default of 100 in flight; the reference design (a bounded queue polled with \`setImmediate\`, sorted per dequeue) runs with its defaults (100 in flight, 1000 queued). Ratios are taken within each round (> 1 means ours is better), median (min–max).`,
    )
    lines.push('')
    lines.push('| case | median |')
    lines.push('|---|---:|')
    for (const c of micro.cases)
      lines.push(`| ${c.name} | ${Math.round(c.median).toLocaleString('en-US')} ${c.unit} |`)
    lines.push('')
    lines.push('| ratio | median (min–max) |')
    lines.push('|---|---:|')
    for (const r of micro.ratios)
      lines.push(`| ${r.name} | ${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)}) |`)
    lines.push('')
  }

  const storm = results.retryStorm
  if (storm !== undefined) {
    lines.push(`## ${HEADINGS.retryStorm}`)
    lines.push('')
    lines.push(
      `${storm.clients} logical clients, each sending one logical request a second for ${storm.durationMs / 1000} s (${storm.offeredPerSecond} req/s), against our own server (core's HTTP layer, what every adapter runs) that can serve ${storm.capacity} req/s: 10× overload. Its 503s carry a jittered Retry-After of 1–3 s. Every strategy makes at most 3 attempts per logical request; only when it retries differs. "Before Retry-After" counts retries that reached the server earlier than the Retry-After they were given allowed; "largest wave" is the most retries arriving in any 100 ms.${storm.startedAt === undefined ? '' : ` Measured ${storm.startedAt} (load average ${(storm.loadavgStart ?? []).join(' / ')} at start, ${(storm.loadavgEnd ?? []).join(' / ')} at end), code at ${storm.revision}: \`${storm.command}\`.`}`,
    )
    lines.push('')
    lines.push(
      '| strategy | attempts per logical request | logical requests served | retries | before Retry-After | largest wave (retries / 100 ms) | lateness after Retry-After min / p50 / p99 (ms) |',
    )
    lines.push('|---|---:|---:|---:|---:|---:|---|')
    for (const r of storm.results) {
      lines.push(
        `| ${r.strategy} | **${fmt(r.attemptsPerLogicalRequest, 3)}** | ${fmt(r.successRate * 100, 1)}% | ${r.retries} | ${r.retriesBeforeRetryAfter} | ${r.largestRetryWave} | ${r.retryLatenessMs.min} / ${r.retryLatenessMs.p50} / ${r.retryLatenessMs.p99} |`,
      )
    }
    lines.push('')
  }

  if (results.streams !== undefined) lines.push(...streamsSection(results.streams, HEADINGS.streams))
  if (results.fleetSim !== undefined) lines.push(fleetSimSection(results.fleetSim))
  if (results.fleet !== undefined) lines.push(fleetSection(results.fleet))
  if (results.fleetJoin !== undefined) lines.push(fleetJoinSection(results.fleetJoin))
  if (results.callChain !== undefined) lines.push(callChainSection(results.callChain))
  if (results.consumers !== undefined) lines.push(consumersSection(results.consumers))

  lines.push(targetsSection(results))

  const md = `${lines.join('\n').trimEnd()}\n`
  const mdFile = results.quick ? `${RESULTS}quick.md` : `${DOCS}benchmarks.md`
  writeFileSync(mdFile, md)
  written.push(mdFile)
  return written
}

/** One row per run: the fixed limit, clients hanging up at their deadline, a route that ignores the abort. */
function clientsLeaveSection(leave: NonNullable<BenchResults['clientsLeave']>): string {
  const out: string[] = []
  const s = leave.scenario
  const o = leave.options
  out.push(`## ${HEADINGS.clientsLeave}`)
  out.push('')
  out.push(
    `Ours on each adapter with a fixed limit, \`{ maxConcurrency: ${o.maxConcurrency}, maxQueueDepth: ${o.maxQueueDepth} }\` (nothing adaptive to hide a leak), at ${leave.multiple}× C (${Math.round(leave.multiple * s.capacity)} req/s) over the same pool (P = ${s.poolSize}, S = ${s.queryMs} ms), ${leave.durationMs / 1000} s per phase. Clients hang up at their deadline (the generator destroys the socket), and the route ignores the request's abort signal, so a departed client's query runs to its end: the hard case. The permit must be held until that route ends, or every hang-up lets one more route body in, they pile up in the pool's queue, more clients time out, and goodput collapses. Two deadlines: ${leave.deadlinesMs.map((d) => `${d} ms`).join(' and ')} — at 1 s (the SLA of the rest of this page) clients leave only once the server falls behind; at 100 ms the slow tail of answers at 10× passes it, so clients leave mid-route in most runs ("left mid-route" says how many). ${leave.runs} runs, interleaved, every one shown. Measured ${leave.startedAt} (load average ${leave.loadavgStart.join(' / ')} at start, ${leave.loadavgEnd.join(' / ')} at end): \`${leave.command}\`.`,
  )
  out.push('')
  out.push(
    '"Left mid-route": route bodies whose client\'s socket had closed by the time they ended. "Queries for departed clients": queries that started after their client\'s deadline. "Route bodies at once": the most route handlers running the work at once, waiting for a connection included — above the limit only if a permit was released while its route still ran; the pool itself never runs more than P ("pool"). "Abandoned": permits released by the abandonment bound (`abandonAfterMs`) after the client left and the route did not end in time ("–": a core without the count). "In flight after": permits still held once every route body had ended (or 3 s after the load, if some had not).',
  )
  out.push('')
  out.push(
    '| system | deadline | run | goodput % of C | p99 ms | 503 | timeouts | left mid-route | queries for departed clients | route bodies at once | pool | abandoned | in flight after | server CPU % of a core | query hold ms |',
  )
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const phases = [...leave.phases].sort(
    (a, b) => a.system.localeCompare(b.system) || b.load.deadlineMs - a.load.deadlineMs || a.run - b.run,
  )
  for (const p of phases) {
    const l = p.load
    out.push(
      `| ${label(p.system)} | ${l.deadlineMs} ms | ${p.run} | **${fmt(p.goodputPct, 1)}** | ${fmt(l.p99Ms)} | ${l.status503WithRetryAfter + l.status503NoRetryAfter} | ${l.timeouts} | ${p.routesLeftMidway} | **${p.departedQueries}** of ${p.queries} | **${p.maxRoutes}** | ${p.maxPoolBusy} | ${p.abandoned ?? '–'} | ${p.inFlightAfter ?? '–'}${p.routesRunning > 0 ? ` (${p.routesRunning} route bodies still running)` : ''} | ${fmt(p.serverCpuPct)} | ${p.meanHoldMs ? fmt(p.meanHoldMs, 2) : '–'} |`,
    )
  }
  out.push('')
  return out.join('\n')
}

/** Middleware and attached side by side at 10×, every run, against the project's target for attach(). */
function attachedSection(macro: NonNullable<BenchResults['macro']>, cores: number): string | undefined {
  const x = ATTACHED_TARGET.multiple
  const systems: string[] = ATTACHED_PAIRS.flatMap((p) => [p.middleware, p.attached])
  const phases = (macro.phases as MacroPhase[])
    .filter((p) => p.multiple === x && systems.includes(p.system))
    .sort((a, b) => systems.indexOf(a.system) - systems.indexOf(b.system) || (a.run ?? 0) - (b.run ?? 0))
  if (!phases.some((p) => p.system.endsWith('-attached'))) return undefined
  const out: string[] = []
  out.push(`## ${HEADINGS.attached}`)
  out.push('')
  out.push(
    `The overload scenario at ${x}× C with no options, our middleware alone (Express's, as the app's first, attaches itself after its first request) against the same middleware attached to the server by hand (\`limiter.attach(server)\`). Target (attached): every run at ≥ ${ATTACHED_TARGET.goodputPct}% of C, ${ATTACHED_TARGET.timeouts} timeouts, p99 of accepted ≤ ${ATTACHED_TARGET.p99Ms} ms. With no options the limit is the adaptive one. "Query hold" is S plus how late the server's event loop read the database's answer, and S / hold ("ceiling") caps goodput whatever admission does. "Limit" is our controller's concurrency limit over the phase's 100 ms samples; "in flight < P" is the share of those samples in which it held fewer permits than the pool has connections (the pool partly idle while requests were turned away).`,
  )
  out.push('')
  out.push(
    '| system | run | goodput % of C | p50 ms | p99 ms | timeouts | 503 | sent/s | query hold ms | ceiling % of C | limit min–max (median) | limit min–max, each second | in flight < P | CPU % of a core: server / generator / other tenants | target met |',
  )
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|')
  for (const p of phases) {
    const l = p.load
    out.push(
      `| ${label(p.system)} | ${p.run ?? 1} | **${fmt(p.goodputPct, 1)}** | ${fmt(l.p50Ms)} | ${fmt(l.p99Ms)} | ${l.timeouts} | ${l.status503WithRetryAfter + l.status503NoRetryAfter} | ${fmt(l.achievedRate)}${l.achievedRate < l.rate * 0.97 ? ` ⚠ of ${Math.round(l.rate)}` : ''} | ${p.meanHoldMs ? fmt(p.meanHoldMs, 2) : '–'} | ${p.meanHoldMs ? fmt((macro.scenario.queryMs / p.meanHoldMs) * 100, 1) : '–'} | ${p.limitMin == null ? '–' : `${p.limitMin}–${p.limitMax} (${p.limitMedian})`} | ${p.limitBySecond === undefined ? '–' : p.limitBySecond.map(([lo, hi]) => `${lo}–${hi}`).join(', ')} | ${p.inFlightBelowPoolPct == null ? '–' : `${fmt(p.inFlightBelowPoolPct)}%`} | ${fmt(p.serverCpuPct)} / ${fmt(p.generatorCpuPct)} / ${fmt(p.othersCpuPct)} | ${meetsAttachedTarget(p) ? 'yes' : '**no**'} |`,
    )
  }
  out.push('')
  const misses = phases.filter((p) => p.system.endsWith('-attached') && !meetsAttachedTarget(p))
  if (misses.length > 0) {
    out.push('Where an attached run missed the target, what was measured with it:')
    out.push('')
    for (const p of misses)
      out.push(
        `- ${label(p.system)}, run ${p.run ?? 1}: ${shortfall(p, macro.scenario.queryMs, macro.scenario.poolSize, cores)}`,
      )
    out.push('')
    const spikes = misses.filter(onsetSpike)
    if (spikes.length > 0) {
      const onset = spikes.map((p) => p.limitBySecond?.[0]?.[1] ?? Number.NaN)
      out.push(
        `${spikes.length} of the ${misses.length} attached runs that missed began with a limit of ${Math.min(...onset)}–${Math.max(...onset)} against a pool of ${macro.scenario.poolSize}: the adaptive limit grows while the warm-up runs below capacity, and the first second of overload pays for it. Attaching takes the rejections' cost off the event loop (server CPU and query hold in the table); it does not change the limit.`,
      )
      out.push('')
    }
  }
  for (const pair of ATTACHED_PAIRS) {
    const runsOf = (system: string) => phases.filter((p) => p.system === system)
    const attached = runsOf(pair.attached)
    const middleware = runsOf(pair.middleware)
    if (attached.length === 0) continue
    const met = attached.filter(meetsAttachedTarget).length
    const range = (ps: CompactPhase[], f: (p: CompactPhase) => number, digits = 0): string =>
      ps.length === 0 ? '–' : `${fmt(Math.min(...ps.map(f)), digits)}–${fmt(Math.max(...ps.map(f)), digits)}`
    out.push(
      `- **${pair.framework}**: target met in ${met} of ${attached.length} runs attached. Goodput ${range(attached, (p) => p.goodputPct, 1)}% attached vs ${range(middleware, (p) => p.goodputPct, 1)}% middleware; p99 ${range(attached, (p) => p.load.p99Ms)} vs ${range(middleware, (p) => p.load.p99Ms)} ms; server CPU ${range(attached, (p) => p.serverCpuPct)}% vs ${range(middleware, (p) => p.serverCpuPct)}% of a core; query hold ${range(attached, (p) => p.meanHoldMs, 2)} vs ${range(middleware, (p) => p.meanHoldMs, 2)} ms.`,
    )
  }
  out.push('')
  return out.join('\n')
}

/**
 * Why a phase fell short, from its own figures: which part of the target it missed, and whether the
 * server's event loop (query hold above S), the load generator (behind its schedule) or the machine's
 * other tenants (their CPU over the phase) account for it.
 */
function shortfall(p: CompactPhase, queryMs: number, poolSize: number, cores: number): string {
  const l = p.load
  const missed = [
    p.goodputPct < ATTACHED_TARGET.goodputPct ? `goodput ${fmt(p.goodputPct, 1)}%` : '',
    l.timeouts > ATTACHED_TARGET.timeouts ? `${l.timeouts} timeouts` : '',
    l.p99Ms > ATTACHED_TARGET.p99Ms ? `p99 ${fmt(l.p99Ms)} ms` : '',
  ].filter(Boolean)
  const causes: string[] = []
  const idle =
    p.inFlightBelowPoolPct != null && p.inFlightBelowPoolPct > 0
      ? `fewer permits held than the pool has connections in ${fmt(p.inFlightBelowPoolPct)}% of the 100 ms samples (the pool partly idle while requests were turned away)`
      : ''
  const first = p.limitBySecond?.[0]
  if (first !== undefined && onsetSpike(p)) {
    causes.push(
      `the load began with the limit at ${first[1]}, learned during the warm-up below capacity, against a median of ${p.limitMedian} over the phase and a pool of ${poolSize}: what it let in queued in the pool; the limit then fell to ${first[0]} within the first second${idle === '' ? '' : `, ${idle}`}`,
    )
  } else {
    if (l.p99Ms > ATTACHED_TARGET.p99Ms && p.limitMedian != null) {
      causes.push(
        `the limit stood at ${p.limitMedian} (up to ${p.limitMax}) against a pool of ${poolSize}, so admitted requests waited in the pool's queue (p50 ${fmt(l.p50Ms)} ms for ${queryMs} ms of I/O)`,
      )
    }
    if (idle !== '') causes.push(idle)
  }
  const ceiling = p.meanHoldMs > 0 ? (queryMs / p.meanHoldMs) * 100 : 100
  if (ceiling < ATTACHED_TARGET.goodputPct) {
    causes.push(
      `each query held its connection ${fmt(p.meanHoldMs, 2)} ms for ${queryMs} ms of I/O (the event loop read answers late), so the pool could give at most ${fmt(ceiling, 1)}% of C`,
    )
  }
  if (l.achievedRate < l.rate * 0.97) {
    causes.push(
      `the load generator sent ${fmt(l.achievedRate)} of ${fmt(l.rate)} req/s (it was short of CPU itself)`,
    )
  }
  if (p.othersCpuPct !== undefined && p.othersCpuPct >= 10) {
    causes.push(`the machine's other tenants used ${fmt(p.othersCpuPct)}% of its ${cores * 100}%`)
  }
  return `missed on ${missed.join(', ')}: ${causes.join('; ') || 'nothing measured here accounts for it'}.`
}

/** The phase began with a limit at least twice its median: one learned below capacity, during the warm-up. */
function onsetSpike(p: CompactPhase): boolean {
  const first = p.limitBySecond?.[0]
  return first !== undefined && p.limitMedian != null && first[1] > 2 * p.limitMedian
}

/** Rejections per second and CPU per rejection of servers held at their limit, every round shown. */
function rejectionSection(rejection: NonNullable<BenchResults['rejection']>): string {
  const out: string[] = []
  const o = rejection.options
  out.push(`## ${HEADINGS.rejection}`)
  out.push('')
  out.push(
    `How cheaply a server turns requests away decides how much of its core it keeps at 10× overload, where nine requests in ten are turned away. Ours runs with \`{ maxConcurrency: ${o.maxConcurrency}, maxQueueDepth: ${o.maxQueueDepth} }\`, and one request, sent first on a socket of its own, holds the one slot for the whole tier (its route never ends), so every request of the load is rejected as soon as it is decided; the bare systems answer every request with the same 503 bytes (the headers and body of ours), written the way our adapter for that framework writes its own: node:http's \`res.writeHead().end()\` in the server's only request listener, as the first Express or Koa middleware, or from a Fastify \`onRequest\` hook. Every server in its own child process, with no listener of the harness on it; closed-loop load on \`GET /work\` (never admitted) over ${rejection.connections} keep-alive sockets, each sending its next request when the previous answer arrives, ${rejection.durationMs / 1000} s per sample after a ${rejection.warmupMs / 1000} s warm-up. The ${rejection.systems.length} servers run in the order below, then again, ${rejection.rounds} rounds (A B A B …); ratios are taken within a round. Server CPU is read from \`/proc\` over the window. The generator shares the two cores, so its share is shown beside the server's: a server near 100% of a core is what bounds its rejections per second. CPU per rejection depends much less on either, though a busy machine raises it too (the other tenants' share is shown). Measured ${rejection.startedAt} (load average ${rejection.loadavgStart.join(' / ')} at start, ${rejection.loadavgEnd.join(' / ')} at end), code at ${rejection.revision}: \`${rejection.command}\`.`,
  )
  out.push('')
  const rounds = [...new Set(rejection.samples.map((s) => s.round))].sort((a, b) => a - b)
  out.push(
    `| system | rejections/s, median | per round | CPU µs per rejection, median | per round | CPU % of a core, median: server / generator / other tenants | not a 503 |`,
  )
  out.push('|---|---:|---|---:|---|---|---:|')
  for (const system of rejection.systems) {
    const mine = rejection.samples.filter((s) => s.system === system).sort((a, b) => a.round - b.round)
    const m = rejection.medians[system]
    const mid = (f: (s: (typeof mine)[number]) => number): string => {
      const sorted = mine.map(f).sort((a, b) => a - b)
      return fmt(sorted[Math.floor((sorted.length - 1) / 2)])
    }
    const bad = mine.reduce((n, s) => n + s.other + s.timeouts + s.socketErrors, 0)
    const hold = rejection.held[system]
    out.push(
      `| ${label(system)}${hold !== undefined && !(hold.unanswered && hold.inFlight === 1) ? ' ⚠ slot not held' : ''} | **${fmt(m?.rejectionsPerS)}** | ${mine.map((s) => fmt(s.rejectionsPerS)).join(', ')} | **${fmt(m?.cpuUsPerRejection, 1)}** | ${mine.map((s) => fmt(s.cpuUsPerRejection, 1)).join(', ')} | ${mid((s) => s.serverCpuPct)} / ${mid((s) => s.generatorCpuPct)} / ${mid((s) => s.othersCpuPct ?? Number.NaN)} | ${bad} |`,
    )
  }
  out.push('')
  out.push(
    `Ratios within each round (rounds ${rounds.join(', ')}), median (min–max): rejections per second (> 1: more turned away a second) and CPU per rejection (< 1: cheaper).`,
  )
  out.push('')
  out.push('| ratio | rejections/s | per round | CPU per rejection | per round | target |')
  out.push('|---|---:|---|---:|---|---|')
  for (const r of rejection.ratios) {
    const target = REJECTION_TARGETS.find((t) => t.ratio === r.name)
    const med = (values: number[]): number =>
      [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!
    const cell =
      target === undefined
        ? ''
        : `${target.text}: ${med(r.throughput) >= target.value ? 'met' : '**not met**'} in rejections/s, ${1 / med(r.cpu) >= target.value ? 'met' : '**not met**'} in CPU`
    out.push(
      `| ${r.name} | **${spread(r.throughput)}** | ${r.throughput.map((v) => v.toFixed(2)).join(', ')} | **${spread(r.cpu)}** | ${r.cpu.map((v) => v.toFixed(2)).join(', ')} | ${cell} |`,
    )
  }
  out.push('')
  const cpuOf = (system: string): string => fmt(rejection.medians[system]?.cpuUsPerRejection, 1)
  const frameworks = [
    {
      name: 'Express',
      bare: 'express-503',
      middleware: 'ours-express-held',
      attached: 'ours-express-attached-held',
    },
    { name: 'Koa', bare: 'koa-503', middleware: 'ours-koa-held', attached: 'ours-koa-attached-held' },
  ].filter(
    (f) => rejection.medians[f.middleware] !== undefined && rejection.medians[f.attached] !== undefined,
  )
  if (frameworks.length > 0 && rejection.medians['raw-503'] !== undefined) {
    out.push(
      `Median CPU per rejection: node:http alone ${cpuOf('raw-503')} µs; ${frameworks.map((f) => `${f.name}'s own first-middleware 503 ${cpuOf(f.bare)} µs, our ${f.name} middleware ${cpuOf(f.middleware)} µs, attached ${cpuOf(f.attached)} µs`).join('; ')}. In the middleware, a rejection costs what the framework's request path costs before any middleware runs; attached, it costs what node:http's does. (Our Express middleware as the app's first attaches itself after its first request: the tier's Express middleware row has a pass-through middleware in front of it, to measure the path inside Express.)`,
    )
    out.push('')
  }
  // Whether Fastify needs an attach(): what its plugin spends per rejection beyond node:http alone is
  // the most moving admission in front of Fastify could save.
  const ratio = (name: string): number | undefined => {
    const r = rejection.ratios.find((x) => x.name === name)
    return r === undefined ? undefined : [...r.cpu].sort((a, b) => a - b)[Math.floor((r.cpu.length - 1) / 2)]
  }
  const pluginVsRaw = ratio('Fastify: plugin / raw node:http')
  const pluginVsBare = ratio('Fastify: plugin / bare Fastify 503')
  const pluginVsAttached = ratio('Fastify plugin / Express attached')
  if (pluginVsRaw !== undefined && pluginVsBare !== undefined) {
    out.push(
      `Fastify has no attach(). Its plugin turns a request away for ${fmt(pluginVsBare, 2)}× the CPU of Fastify's own 503 from an \`onRequest\` hook and ${fmt(pluginVsRaw, 2)}× that of node:http alone${pluginVsAttached === undefined ? '' : ` (${fmt(pluginVsAttached, 2)}× attached Express)`} (medians of the per-round ratios): moving admission in front of Fastify could save at most ${fmt(Math.max(0, (1 - 1 / pluginVsRaw) * 100))}% of the plugin's CPU per rejection.`,
    )
    out.push('')
  }
  return out.join('\n')
}

function spread(values: number[]): string {
  if (values.length === 0) return '–'
  const sorted = [...values].sort((a, b) => a - b)
  const med = sorted[Math.floor((sorted.length - 1) / 2)]!
  return `${med.toFixed(3)} (${sorted[0]!.toFixed(3)}–${sorted.at(-1)!.toFixed(3)})`
}

/** GitHub's anchor for a heading: lower case, punctuation and symbols dropped, spaces to hyphens. */
export function anchor(heading: string): string {
  return `#${heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')}`
}

/** The section headings the targets table links to, as the report writes them. */
const loadHeading = (multiple: number, capacity: number): string =>
  `${multiple}× C (${Math.round(multiple * capacity)} req/s offered)`
const HEADINGS = {
  steps: 'Capacity steps',
  clientsLeave: 'Clients that leave under a fixed limit',
  attached: 'Attached: admission before the framework, at 10×',
  rejection: 'Rejection throughput: a server held at its limit',
  overhead: 'Overhead below capacity',
  micro: 'Micro: the admission engine alone',
  retryStorm: 'Retry storm: what clients do to an overloaded server',
  shortRuns: 'A first minute: no options, many short runs',
  ceiling: "The harness's ceiling: the best admission this machine allows",
  streams: 'Streams: a generated stream through writable and map into a slow sink',
  callChain: CALL_CHAIN_HEADING,
} as const
/** Where the causes of our shortfall on real servers were measured and are explained. */
const SHORTFALL_CAUSES = 'adaptive-limit.md#where-it-falls-short-and-why'
const LIMIT_CAUSES = 'adaptive-limit.md#on-real-servers'

/** A target's verdict: met, missed (with a link to where the miss is measured and explained), or not run. */
type Status = { met: boolean; why: string } | undefined

function statusCell(status: Status): string {
  if (status === undefined) return '–'
  return status.met ? 'met' : `**missed**: [why](${status.why})`
}

/** Met when every measured value passes; undefined when nothing was measured. */
function verdict(passes: boolean[], why: string): Status {
  return passes.length === 0 ? undefined : { met: passes.every(Boolean), why }
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!

/** Where we stand on every target of the project, beside the best peer of this run and the bar we could not install. */
function targetsSection(results: BenchResults): string {
  const out: string[] = []
  out.push("## Against the project's targets")
  out.push('')
  out.push(
    "The adaptive-limit peer (a port of Netflix's concurrency-limits) cannot be installed here; its figures are quoted from its published results as the **bar, not from this run**: 98–100% of C at overload with p99 51–59 ms, no Retry-After, 12–14 s to settle after a capacity step. Each missed target links to the section that measured it and, where it was measured, its cause.",
  )
  out.push('')
  out.push(
    '| figure | target | status | ours (default options) | ours (tuned) | best other system in this run | bar (not from this run) |',
  )
  out.push('|---|---|---|---|---|---|---|')
  const row = (
    figure: string,
    target: string,
    status: Status,
    ours: string,
    tuned: string,
    other: string,
    bar: string,
  ): void => {
    out.push(`| ${figure} | ${target} | ${statusCell(status)} | ${ours} | ${tuned} | ${other} | ${bar} |`)
  }
  const phases = results.macro?.phases
  const capacity = results.macro?.scenario.capacity ?? 0
  const gp = (system: string, x: number): string => fmt(find(phases, system, x)?.goodputPct, 1)
  const oursDefault = ['ours-express', 'ours-fastify', 'ours-koa']
  const oursTuned = ['ours-express-tuned', 'ours-fastify-tuned', 'ours-koa-tuned']
  const ours = [...oursDefault, ...oursTuned]
  const others = SYSTEMS.filter((s) => s.kind !== 'ours').map((s) => s.name)
  const measured = (systems: string[], x: number): CompactPhase[] =>
    systems.map((s) => find(phases, s, x)).filter((p): p is CompactPhase => p !== undefined)
  const at = (systems: string[], x: number): string =>
    systems
      .filter((s) => find(phases, s, x) !== undefined)
      .map((s) => `${s.replace('ours-', '').replace('-tuned', '')} ${gp(s, x)}%`)
      .join(', ') || '–'
  const bestOther = (x: number, key: (p: CompactPhase) => number, higher: boolean, unit: string): string => {
    const candidates = measured(others, x).filter((p) => !Number.isNaN(key(p)))
    if (candidates.length === 0) return '–'
    candidates.sort((a, b) => (higher ? key(b) - key(a) : key(a) - key(b)))
    const best = candidates[0]!
    return `${fmt(key(best), 1)}${unit}, ${label(best.system)}`
  }
  for (const x of [2, 5, 10]) {
    row(
      `goodput at ${x}× C`,
      '≥ 99% of C',
      verdict(
        measured(ours, x).map((p) => p.goodputPct >= 99),
        SHORTFALL_CAUSES,
      ),
      at(oursDefault, x),
      at(oursTuned, x),
      bestOther(x, (p) => p.goodputPct, true, '%'),
      '98–100%',
    )
  }
  const unloaded = find(phases, 'ours-express', 0.5)?.load.p99Ms
  const unloadedTuned = find(phases, 'ours-express-tuned', 0.5)?.load.p99Ms
  const p99At = (systems: string[]): string =>
    [2, 5, 10]
      .map((x) => {
        const values = systems
          .map((s) => find(phases, s, x)?.load.p99Ms)
          .filter((v): v is number => typeof v === 'number' && !Number.isNaN(v))
        return values.length === 0 ? '' : `${x}×: ${values.map((v) => fmt(v)).join('/')}`
      })
      .filter(Boolean)
      .join('; ') || '–'
  // Each system against its own unloaded p99 (at 0.5× C): 3× for the defaults, 2× tuned.
  const p99Passes = (systems: string[], factor: number): boolean[] =>
    systems.flatMap((s) => {
      const base = find(phases, s, 0.5)?.load.p99Ms
      if (base === undefined || Number.isNaN(base)) return []
      return measured([s], 2)
        .concat(measured([s], 5), measured([s], 10))
        .map((p) => p.load.p99Ms <= factor * base)
    })
  row(
    'p99 of accepted under overload (ms; Express/Fastify/Koa)',
    '≤ 3× unloaded p99 (default), ≤ 2× (tuned)',
    verdict([...p99Passes(oursDefault, 3), ...p99Passes(oursTuned, 2)], SHORTFALL_CAUSES),
    `unloaded ${fmt(unloaded)}; ${p99At(oursDefault)}`,
    `unloaded ${fmt(unloadedTuned)}; ${p99At(oursTuned)}`,
    `${bestOther(5, (p) => p.load.p99Ms, false, ' ms')} at 5× (any goodput)`,
    '51–59 ms',
  )
  const stepRuns = results.steps ?? []
  const afterStep = (r: (typeof stepRuns)[number], atMs: number): number | undefined =>
    r.summary.perSecond.find((s) => s.second === Math.round(atMs / 1000) + 1)?.pctOfCapacity
  const stepFor = (system: string): string =>
    stepRuns
      .filter((r) => r.system === system)
      .map((r) => {
        const settled =
          r.summary.limitCovSteady === null
            ? ''
            : `, limit settled in ${settle(r.summary.settleS.drop)} / ${settle(r.summary.settleS.recovery)}`
        return `pool → ${r.step.size}: ${fmt(afterStep(r, r.step.atMs))}% 1 s after the drop, ${fmt(afterStep(r, r.step.recoverAtMs))}% 1 s after recovery${settled}`
      })
      .join('; ') || '–'
  row(
    'capacity step (goodput vs capacity in force)',
    '≥ 90% within 1 s of each step',
    verdict(
      stepRuns
        .filter((r) => ours.includes(r.system))
        .flatMap((r) => [afterStep(r, r.step.atMs), afterStep(r, r.step.recoverAtMs)])
        .map((v) => v !== undefined && v >= 90),
      anchor(HEADINGS.steps),
    ),
    stepFor('ours-express'),
    stepFor('ours-express-tuned'),
    `p-queue guard: ${stepFor('p-queue-guard')}`,
    '12–14 s to settle',
  )
  const departed = (system: string, x: number): string => {
    const p = find(phases, system, x)
    return p === undefined ? '–' : `${p.departedQueries} of ${p.queries}`
  }
  // "≈ 0": at most 1% of the queries run at 10× were for clients that had already left.
  row(
    'queries run for departed clients at 10×',
    '≈ 0 (≤ 1% of queries)',
    verdict(
      measured(ours, 10).map((p) => p.departedQueries <= 0.01 * p.queries),
      anchor(loadHeading(10, capacity)),
    ),
    oursDefault.map((s) => departed(s, 10)).join(', '),
    oursTuned.map((s) => departed(s, 10)).join(', '),
    `unprotected Express ${departed('express', 10)}; p-queue guard ${departed('p-queue-guard', 10)}`,
    '–',
  )
  const leave = results.clientsLeave
  if (leave !== undefined && leave.phases.length > 0) {
    const cells = [...new Set(leave.phases.map((p) => p.system))].map((system) => {
      const mine = leave.phases.filter((p) => p.system === system)
      const perDeadline = leave.deadlinesMs
        .map((d) => {
          const runs = mine.filter((p) => p.load.deadlineMs === d)
          if (runs.length === 0) return ''
          const goodput = runs.map((p) => p.goodputPct)
          return `${d} ms: departed ${runs.map((p) => p.departedQueries).join('/')}, goodput ${fmt(Math.min(...goodput), 1)}–${fmt(Math.max(...goodput), 1)}%`
        })
        .filter(Boolean)
        .join('; ')
      const bodies = Math.max(...mine.map((p) => p.maxRoutes))
      return `${system.replace('ours-', '').replace('-fixed', '')}: ${perDeadline}; route bodies ≤ ${bodies}`
    })
    // A collapse: goodput under half of C, or more route bodies at once than the limit lets in.
    row(
      `clients that leave under a fixed limit (10×; fixed \`{ maxConcurrency: ${leave.options.maxConcurrency}, maxQueueDepth: ${leave.options.maxQueueDepth} }\`, per run)`,
      '0 queries for departed clients, no collapse (goodput ≥ 50% of C, route bodies ≤ the limit), in every run',
      verdict(
        leave.phases.map(
          (p) => p.departedQueries === 0 && p.goodputPct >= 50 && p.maxRoutes <= leave.options.maxConcurrency,
        ),
        anchor(HEADINGS.clientsLeave),
      ),
      '–',
      cells.join(' — '),
      '–',
      '–',
    )
  }
  const attachedRuns = (pair: (typeof ATTACHED_PAIRS)[number]): CompactPhase[] =>
    (phases ?? []).filter((p) => p.system === pair.attached && p.multiple === ATTACHED_TARGET.multiple)
  const attachedCell = (pair: (typeof ATTACHED_PAIRS)[number]): string => {
    const runs = attachedRuns(pair)
    if (runs.length === 0) return ''
    return `${pair.framework} attached: ${runs.filter(meetsAttachedTarget).length} of ${runs.length} runs (goodput ${runs.map((p) => fmt(p.goodputPct, 1)).join('/')}%, p99 ${runs.map((p) => fmt(p.load.p99Ms)).join('/')} ms, timeouts ${runs.map((p) => p.load.timeouts).join('/')})`
  }
  const attachedCells = ATTACHED_PAIRS.map(attachedCell).filter(Boolean)
  if (attachedCells.length > 0) {
    row(
      'attached, no options, at 10× (every run)',
      `≥ ${ATTACHED_TARGET.goodputPct}% of C, ${ATTACHED_TARGET.timeouts} timeouts, p99 ≤ ${ATTACHED_TARGET.p99Ms} ms`,
      verdict(ATTACHED_PAIRS.flatMap(attachedRuns).map(meetsAttachedTarget), anchor(HEADINGS.attached)),
      attachedCells.join('; '),
      '',
      '–',
      '–',
    )
  }
  const rejectionRatios = results.rejection?.ratios ?? []
  const rejectionMet: boolean[] = []
  const rejectionCell = REJECTION_TARGETS.map((t) => {
    const r = rejectionRatios.find((x) => x.name === t.ratio)
    if (r === undefined) return ''
    const met = median(r.throughput) >= t.value && 1 / median(r.cpu) >= t.value
    rejectionMet.push(met)
    return `${t.ratio}: ×${fmt(median(r.throughput), 2)} rejections/s, ×${fmt(median(r.cpu), 2)} CPU per rejection (${met ? 'met' : 'not met'})`
  })
    .filter(Boolean)
    .join('; ')
  if (rejectionCell !== '') {
    row(
      'rejection throughput at the limit, attached Express (medians of per-round ratios)',
      '≥ 2× the middleware, within 1.3× of raw node:http',
      verdict(rejectionMet, anchor(HEADINGS.rejection)),
      rejectionCell,
      '',
      '–',
      '–',
    )
  }
  const rssGrowth = (system: string): number | undefined => {
    const a = find(phases, system, 1)?.peakRssBytes
    const b = find(phases, system, 10)?.peakRssBytes
    return a === undefined || b === undefined ? undefined : b - a
  }
  const rss = (system: string): string => {
    const a = find(phases, system, 1)?.peakRssBytes
    const b = find(phases, system, 10)?.peakRssBytes
    return a === undefined || b === undefined ? '–' : `${mb(a)} → ${mb(b)} MB`
  }
  // "Flat" on a shared machine: judged against the unprotected server's growth in the same run.
  const unprotectedGrowth = rssGrowth('express')
  row(
    'peak RSS, 1× → 10×',
    "flat (+ O(queue bound)): grows less than ¼ of unprotected Express's growth",
    verdict(
      unprotectedGrowth === undefined
        ? []
        : ours
            .map(rssGrowth)
            .filter((g): g is number => g !== undefined)
            .map((g) => g < unprotectedGrowth / 4),
      anchor(loadHeading(10, capacity)),
    ),
    oursDefault.map(rss).join(', '),
    oursTuned.map(rss).join(', '),
    `unprotected Express ${rss('express')}, Fastify ${rss('fastify')}`,
    '–',
  )
  const micro = results.micro
  const overheadExpress = results.overhead?.ratios.find((r) => r.variant === 'ours-express')
  const rejectNs = micro?.cases.find((c) => c.name.startsWith('ours: rejection as a value'))?.median
  const servedUs = overheadExpress?.cpuUsPerRequest.variant
  const rejectShare =
    rejectNs !== undefined && servedUs !== undefined ? (rejectNs / (servedUs * 1000)) * 100 : undefined
  row(
    'rejection cost',
    "a 503 decision ≤ 1% of a served request's CPU",
    verdict(rejectShare === undefined ? [] : [rejectShare <= 1], anchor(HEADINGS.micro)),
    `${rejectNs === undefined ? '–' : `${fmt(rejectNs)} ns per rejected admission`}${rejectShare !== undefined ? ` = ${fmt(rejectShare, 2)}% of a served Express request (${servedUs} µs CPU)` : ''}`,
    '',
    `reference design: ${fmt(micro?.cases.find((c) => c.name.startsWith('reference design: rejection'))?.median)} ns`,
    '–',
  )
  const overheadOf = (variant: string) => results.overhead?.ratios.find((o) => o.variant === variant)
  const overheadCell = (variant: string): string => {
    const r = overheadOf(variant)
    return r === undefined ? '–' : `${variant.replace('ours-', '')} ${spread(r.cpuRatios)}`
  }
  const overheadOurs = ['ours-express', 'ours-fastify', 'ours-koa']
  row(
    'overhead below capacity: CPU per request vs bare framework (median)',
    '≤ 1.02× (aim 1.01×)',
    verdict(
      overheadOurs
        .map(overheadOf)
        .filter((r) => r !== undefined && r.cpuRatios.length > 0)
        .map((r) => median(r!.cpuRatios) <= 1.02),
      anchor(HEADINGS.overhead),
    ),
    overheadOurs.map(overheadCell).join('; '),
    '',
    `under-pressure vs Fastify: ${overheadCell('under-pressure')}`,
    '–',
  )
  const covRuns = stepRuns.filter((r) => r.summary.limitCovSteady !== null)
  const covCell = covRuns
    .map(
      (r) =>
        `${r.system.replace('ours-', '')} (pool → ${r.step.size} run) ${fmt((r.summary.limitCovSteady ?? 0) * 100, 1)}% / ${fmt((limitCovPerSecond(r) ?? Number.NaN) * 100, 1)}%`,
    )
    .join('; ')
  // Judged on the one-second means: the 100 ms samples also catch each baseline probe's dip to half.
  row(
    'limit CoV in steady overload (100 ms samples, probe dips included / one-second means; judged on the means)',
    '≤ 10%',
    verdict(
      covRuns.map((r) => limitCovPerSecond(r)).map((c) => c !== null && c <= 0.1),
      LIMIT_CAUSES,
    ),
    covCell || '–',
    '',
    '–',
    '–',
  )
  const falseRejections = (system: string): string =>
    [0.5, 0.9]
      .map((x) => find(phases, system, x))
      .map((p) =>
        p === undefined ? '–' : `${p.load.status503WithRetryAfter + p.load.status503NoRetryAfter}`,
      )
      .join('/')
  row(
    'false rejections at ≤ 0.9× C (at 0.5×/0.9×)',
    '0',
    verdict(
      [...measured(ours, 0.5), ...measured(ours, 0.9)].map(
        (p) => p.load.status503WithRetryAfter + p.load.status503NoRetryAfter === 0,
      ),
      anchor(loadHeading(0.9, capacity)),
    ),
    oursDefault.map(falseRejections).join(', '),
    oursTuned.map(falseRejections).join(', '),
    '–',
    '–',
  )
  const strategies = results.retryStorm?.results ?? []
  const strategy = (prefix: string) => strategies.find((x) => x.strategy.startsWith(prefix))
  const amplification = (prefix: string): string => {
    const r = strategy(prefix)
    return r === undefined ? '–' : fmt(r.attemptsPerLogicalRequest, 3)
  }
  const ourClients = ['@backpressure/client (one', '@backpressure/client (a client']
  row(
    'retry amplification (our client vs our server at 10×)',
    '≤ 1.1',
    verdict(
      ourClients
        .map(strategy)
        .filter((r) => r !== undefined)
        .map((r) => r!.attemptsPerLogicalRequest <= 1.1),
      anchor(HEADINGS.retryStorm),
    ),
    strategies.length === 0
      ? 'not run'
      : `one shared client ${amplification(ourClients[0]!)}; a client each ${amplification(ourClients[1]!)}`,
    '',
    strategies.length === 0
      ? '–'
      : `immediate retry ${amplification('immediate')}; the reference design's client ${amplification('reference design')}`,
    '–',
  )
  const fairness = fleetSimTarget(results.fleetSim)
  row(
    "fleet simulation, default limit: Jain's fairness index of each steady run",
    '≥ 0.9 in every run',
    verdict(fairness.passes, anchor(FLEET_SIM_HEADING)),
    fairness.ours,
    '',
    '–',
    '–',
  )
  const fleet = fleetTarget(results.fleet)
  row(
    'fleet of 3 behind HAProxy, one slower (agent feedback)',
    '≥ 95% of the summed capacity',
    fleet.met === undefined ? undefined : { met: fleet.met, why: anchor(FLEET_HEADING) },
    fleet.ours,
    fleet.tuned,
    '–',
    '–',
  )
  for (const t of callChainTargets(results.callChain)) {
    row(t.figure, t.target, verdict(t.passes, anchor(HEADINGS.callChain)), t.ours, '', '–', '–')
  }
  const consumers = results.consumers
  row(
    'consumers: ≥ 95% of the pool, 0 lost across a SIGKILL and restart',
    '≥ 95%; 0 lost',
    consumers === undefined
      ? undefined
      : verdict(
          [
            ...consumers.throughput
              .filter((t) => t.limit === 'adaptive' && t.broker !== 'none')
              .map((t) => t.ratio >= 0.95 && t.overLimit === 0),
            ...consumers.kill.map((k) => k.lost === 0),
          ],
          anchor(CONSUMERS_HEADING),
        ),
    consumers === undefined ? 'not run' : consumersSummary(consumers),
    '',
    '–',
    '–',
  )
  out.push('')
  return out.join('\n')
}
