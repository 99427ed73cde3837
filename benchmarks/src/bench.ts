/**
 * `pnpm bench`: every tier in one run — micro, macro (the overload matrix, the CPU-bound variant, the
 * capacity steps and clients that leave), rejection throughput, overhead, retry storm — then raw JSON
 * to benchmarks/results/ and docs/benchmarks.md regenerated.
 *
 *   pnpm bench            the full run (about 22 minutes on 2 cores)
 *   pnpm bench --quick    a two-minute look: fewer systems, loads and rounds, shorter phases
 *   pnpm bench --only macro,step --systems express,ours-express
 *   pnpm bench --only leave --merge
 *                         one tier, written into the existing results (and report) in place of that
 *                         tier's old figures, the other tiers kept as they were (`--only` implies
 *                         `--merge`; `--replace` writes the tiers run alone, dropping the rest)
 *   pnpm bench --only macro --systems ours-express,ours-express-attached --multiples 10 --runs 3 --merge
 *                         some rows of the overload matrix, each measured 3 times (interleaved), in
 *                         place of those rows only: the rest of the matrix is kept
 *   pnpm bench --only ceiling --merge
 *                         each framework behind a fixed gate (the best this machine allows), beside ours (ceiling.ts)
 *   pnpm bench --only cpu --systems ours-koa,ours-express --multiples 2,5 --runs 3 --capacity 780,1250
 *                         the CPU-bound tier with C as given (the CPU-bound route, the mixed route)
 *                         rather than calibrated: A/B batches then offer the same loads
 *   pnpm bench --only cpu-ceiling --merge
 *                         the same for the CPU-bound route: each framework behind fixed-rate gates, beside ours
 *   pnpm bench --only rejection --merge
 *                         rejections per second and CPU per rejection of a server held at its limit
 *   pnpm bench --only fleet-join --merge
 *                         two instances joining four in front of one database process (real HAProxy,
 *                         real Redis), each measuring its own baseline or sharing the fleet's
 *   pnpm bench --only streams --merge
 *                         1 GiB through controller.writable() and controller.map() into a slow sink,
 *                         3 runs: RSS start/peak/end and throughput
 *   BACKPRESSURE_BENCH_OPTIONS='{"maxConcurrency":{"tolerance":0.2}}' pnpm bench --quick
 *                         the "default options" rows with these options instead
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { type CallChainResult, runCallChain } from './call-chain.js'
import { type CeilingResults, describeCeilingRuns, runCeiling } from './ceiling.js'
import { type ConsumersResults, runConsumers } from './consumers.js'
import { type FleetResults, runFleet } from './fleet.js'
import { type FleetJoinResults, runFleetJoin } from './fleet-join.js'
import { type FleetSimResults, runFleetSim } from './fleet-sim.js'
import { ioScenario, type PhaseResult, runPhase, type Scenario, stepSummary } from './macro.js'
import { mergesIntoExisting, mergeTiers, TIERS } from './merge.js'
import { runMicro } from './micro.js'
import { runOverhead } from './overhead.js'
import { startServer } from './proc.js'
import { type RejectionResults, runRejection } from './rejection.js'
import { writeReport } from './report.js'
import { type RetryStormResult, runRetryStorm } from './retry-storm.js'
import { runShortRuns, type ShortRunsResults } from './short-runs.js'
import { median, round } from './stats.js'
import { runStreams, type StreamsResults } from './streams.js'
import { FIXED_SYSTEMS, fixedOptions, RATE_GATE_SHARES, SYSTEMS } from './systems.js'

export interface StepRun {
  readonly system: string
  readonly step: { atMs: number; size: number; recoverAtMs: number }
  readonly multiple: number
  readonly summary: ReturnType<typeof stepSummary>
  readonly phase: CompactPhase
}

export type CompactPhase = Omit<PhaseResult, 'rssSeries' | 'limitSeries' | 'load' | 'limitChanges'> & {
  load: Omit<PhaseResult['load'], 'perSecond'>
  rssEndBytes: number
  limitMedian: number | null
  /** The lowest and highest of the limit's 100 ms samples. */
  limitMin?: number | null
  limitMax?: number | null
  /**
   * Share of the 100 ms samples in which our controller held fewer permits than the pool has
   * connections: moments the pool had a connection idle while requests were being turned away.
   */
  inFlightBelowPoolPct?: number | null
  /** Per second of the load: the lowest and highest limit, and the fewest permits held, of its 100 ms samples. */
  limitBySecond?: [number, number, number][]
  /** When our event-loop shedder shed anything: every 100 ms, [ms, share of arrivals shed, lag ms]. */
  shedSeries?: [number, number, number][]
}

/** The clients-leave tier: ours under a fixed limit at 10×, clients timing out at their deadline, several runs. */
export interface ClientsLeaveResults {
  readonly scenario: Scenario
  readonly multiple: number
  /** Each run measures every system at each of these client deadlines. */
  readonly deadlinesMs: number[]
  readonly durationMs: number
  readonly runs: number
  readonly options: ReturnType<typeof fixedOptions>
  /** When and how this tier was measured: with --merge, not the rest of the file's run. */
  readonly startedAt: string
  readonly command: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly phases: (CompactPhase & { run: number })[]
}

/** A macro phase; `run` when its rows were measured several times (`--runs`). */
export type MacroPhase = CompactPhase & { run?: number }

/** Rows of the overload matrix measured in a later run of their own (`--systems`/`--multiples` with `--merge`). */
export interface MacroRerun {
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly systems: string[]
  readonly multiples: number[]
  readonly runs: number
}

export interface BenchResults {
  readonly version: 1
  readonly quick: boolean
  readonly startedAt: string
  readonly durationS: number
  readonly machine: {
    cpu: string
    cores: number
    node: string
    platform: string
    loadavgStart: number[]
    loadavgEnd: number[]
  }
  readonly command: string
  /** The code measured: see revision(). */
  readonly revision?: string
  readonly micro?: Awaited<ReturnType<typeof runMicro>>
  readonly macro?: {
    scenario: Scenario
    durationMs: number
    multiples: number[]
    phases: MacroPhase[]
    skipped: string[]
    /** Set when this run measured only some rows: what it measured, and how. */
    rerun?: MacroRerun
    /** Rows merged in from later runs of their own, oldest first. */
    reruns?: MacroRerun[]
  }
  readonly cpu?: {
    scenario: Scenario
    durationMs: number
    multiples: number[]
    phases: MacroPhase[]
    calibration: string
    runs?: number
    startedAt?: string
    loadavgStart?: number[]
    loadavgEnd?: number[]
    revision?: string
    command?: string
    /** The mixed route (CPU and a pool query), measured the same way. */
    mixed?: { scenario: Scenario; phases: MacroPhase[]; calibration: string }
  }
  /** The CPU-bound route behind fixed-rate gates, beside ours (cpu-ceiling.ts: what they showed). */
  readonly cpuCeiling?: {
    scenario: Scenario
    durationMs: number
    multiples: number[]
    phases: MacroPhase[]
    calibration: string
    runs: number
    startedAt: string
    loadavgStart: number[]
    loadavgEnd: number[]
    revision: string
    command: string
  }
  readonly steps?: StepRun[]
  /** When the steps were measured, if not in the run this file describes (a later `--only step --merge`). */
  readonly stepsMeasured?: { readonly at: string; readonly revision: string; readonly command: string }
  readonly clientsLeave?: ClientsLeaveResults
  readonly rejection?: RejectionResults
  readonly overhead?: Awaited<ReturnType<typeof runOverhead>>
  readonly retryStorm?: RetryStormResult
  readonly shortRuns?: ShortRunsResults
  /** The best this machine allows in the goodput targets' scenarios (ceiling.ts). */
  readonly ceiling?: CeilingResults
  readonly streams?: StreamsResults
  readonly fleetSim?: FleetSimResults
  readonly fleetJoin?: FleetJoinResults
  readonly fleet?: FleetResults
  readonly callChain?: CallChainResult & { startedAt: string; loadavgStart: number[]; loadavgEnd: number[] }
  readonly consumers?: ConsumersResults
}

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const flag = (name: string): string[] | undefined => {
  const i = args.indexOf(name)
  return i === -1 ? undefined : (args[i + 1] ?? '').split(',').filter(Boolean)
}
const only = new Set<string>(flag('--only') ?? TIERS)
const systemsFlag = flag('--systems')
const multiplesFlag = flag('--multiples')?.map(Number)
const runs = Number(flag('--runs')?.[0] ?? 1)
if (multiplesFlag?.some((x) => !(x > 0)) || !Number.isInteger(runs) || runs < 1) {
  throw new Error('--multiples takes positive numbers (10 or 5,10) and --runs a whole number from 1')
}
// `--capacity 780,1250`: C of the CPU-bound route (and of the mixed route) as given, not calibrated.
// Batches compared side by side then offer the same loads: calibrated afresh, the mixed route's C read
// 1,012-1,282 req/s in batches within an hour, and every load and goodput of a batch scales with it.
const capacityFlag = flag('--capacity')?.map(Number)
if (
  capacityFlag !== undefined &&
  (capacityFlag.length < 1 || capacityFlag.length > 2 || capacityFlag.some((x) => !(x > 0)))
) {
  throw new Error(
    '--capacity takes one or two positive numbers: C of the CPU-bound route[,C of the mixed route]',
  )
}
const merge = mergesIntoExisting(args)

const QUICK_SYSTEMS = [
  'express',
  'under-pressure-elu',
  'p-queue-guard',
  'reference-design',
  'ours-express',
  'ours-express-tuned',
]
const macroSystems = systemsFlag ?? (quick ? QUICK_SYSTEMS : SYSTEMS.map((s) => s.name))
const multiples = multiplesFlag ?? (quick ? [1, 5] : [0.5, 0.9, 1, 2, 5, 10])
// Long enough that a phase is mostly steady state: the adaptive limit's first baseline probe lands
// about a second in, and a 2.5 s phase weighed that transient at a third.
const phaseMs = quick ? 1500 : 4000
const CPU_SYSTEMS = [
  'express',
  'fastify',
  'koa',
  'under-pressure',
  'under-pressure-elu',
  'overload-protection',
  'toobusy-js',
  'reference-design',
  'ours-express',
  'ours-express-attached',
  'ours-fastify',
  'ours-koa',
  'ours-koa-attached',
]
const cpuMultiples = multiplesFlag ?? (quick ? [] : [0.9, 2, 5])

/**
 * The clients-leave tier's client deadlines: the macro tier's 1 s, where clients leave only once the
 * server falls behind (as in the issue "a permit nobody can steal"), and 100 ms, which the slow tail
 * of answers at 10× passes, so clients hang up while their query still runs in most runs and the
 * check does not pass merely by testing nothing (its "left mid-route" count shows which runs did).
 */
const LEAVE_DEADLINES_MS = [1000, 100]

/**
 * The code measured: the commit, and the packages' files that differed from it (the servers run the
 * packages' sources as they are on disk). Outside a git checkout, BACKPRESSURE_BENCH_REVISION says.
 */
function revision(): string {
  try {
    const git = (...a: string[]): string =>
      execFileSync('git', a, { cwd: new URL('..', import.meta.url), encoding: 'utf8', stdio: 'pipe' }).trim()
    const head = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--', '../packages')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.slice(3))
    return dirty.length === 0 ? head : `${head} with uncommitted changes to ${dirty.join(', ')}`
  } catch {
    return process.env.BACKPRESSURE_BENCH_REVISION ?? 'unknown'
  }
}

const began = performance.now()
const log = (line: string): void => {
  const s = ((performance.now() - began) / 1000).toFixed(0).padStart(4)
  console.log(`[${s}s] ${line}`)
}

function compact(phase: PhaseResult, poolSize: number): CompactPhase {
  const { rssSeries, limitSeries, load, limitChanges: _limitChanges, ...rest } = phase
  const { perSecond: _perSecond, ...loadRest } = load
  const limits = limitSeries.map((s) => s[1]).sort((a, b) => a - b)
  const below = limitSeries.filter((s) => s[2] < poolSize).length
  return {
    ...rest,
    load: {
      ...loadRest,
      achievedRate: round(loadRest.achievedRate, 1),
      maxSendLagMs: round(loadRest.maxSendLagMs, 1),
      p50Ms: round(loadRest.p50Ms, 1),
      p99Ms: round(loadRest.p99Ms, 1),
      maxMs: round(loadRest.maxMs, 1),
    },
    goodputPct: round(phase.goodputPct, 1),
    serverCpuMs: round(phase.serverCpuMs),
    serverCpuPct: round(phase.serverCpuPct, 1),
    generatorCpuPct: round(phase.generatorCpuPct, 1),
    othersCpuPct: round(phase.othersCpuPct, 1),
    rssEndBytes: rssSeries.at(-1) ?? Number.NaN,
    limitMedian: limits.length === 0 ? null : limits[Math.floor(limits.length / 2)]!,
    limitMin: limits.length === 0 ? null : limits[0]!,
    limitMax: limits.length === 0 ? null : limits.at(-1)!,
    inFlightBelowPoolPct:
      limitSeries.length === 0 || poolSize === 0 ? null : round((below / limitSeries.length) * 100, 1),
    limitBySecond: bySecond(limitSeries),
    ...(limitSeries.some((x) => x[5] > 0)
      ? { shedSeries: limitSeries.map((x): [number, number, number] => [x[0], x[5], x[6]]) }
      : {}),
  }
}

function bySecond(series: PhaseResult['limitSeries']): [number, number, number][] {
  const seconds: [number, number, number][] = []
  for (const [ms, limit, inFlight] of series) {
    const i = Math.floor(ms / 1000)
    const s = seconds[i]
    if (s === undefined) seconds[i] = [limit, limit, inFlight]
    else seconds[i] = [Math.min(s[0], limit), Math.max(s[1], limit), Math.min(s[2], inFlight)]
  }
  return Array.from(seconds, (s) => s ?? [Number.NaN, Number.NaN, Number.NaN])
}

function describe(p: CompactPhase): string {
  const l = p.load
  return (
    `${p.system} @${p.multiple}×: goodput ${p.goodputPct}% p99 ${l.p99Ms} ms, 503 ${l.status503WithRetryAfter + l.status503NoRetryAfter}, ` +
    `timeouts ${l.timeouts}, sent ${Math.round(l.achievedRate)}/s, RSS ${Math.round(p.peakRssBytes / 2 ** 20)} MB, ` +
    `query hold ${p.meanHoldMs.toFixed(1)} ms${p.limitMedian === null ? '' : `, limit ${p.limitMin}–${p.limitMax} (median ${p.limitMedian}), in flight below the pool in ${p.inFlightBelowPoolPct}% of samples`}, CPU % of a core: server ${p.serverCpuPct}, generator ${p.generatorCpuPct}, others ${p.othersCpuPct}`
  )
}

/**
 * Every system at every load, one fresh server per phase; a system that fails to start is skipped.
 * With several runs, every run goes through the whole list before the next starts (A B A B), and each
 * phase says its run.
 */
async function runMatrix(
  systems: readonly string[],
  loads: readonly number[],
  scenario: Scenario,
  runCount = 1,
): Promise<{ phases: MacroPhase[]; skipped: string[] }> {
  const phases: MacroPhase[] = []
  const skipped: string[] = []
  for (let run = 1; run <= runCount; run++) {
    for (const system of systems) {
      if (skipped.includes(system)) continue
      for (const multiple of loads) {
        try {
          const phase = compact(
            await runPhase({ system, scenario, multiple, durationMs: phaseMs }),
            scenario.poolSize,
          )
          phases.push(runCount > 1 ? { ...phase, run } : phase)
          log(`  ${runCount > 1 ? `run ${run}, ` : ''}${describe(phase)}`)
        } catch (error) {
          log(`  ${system}: skipped (${error instanceof Error ? error.message : String(error)})`)
          skipped.push(system)
          break
        }
      }
    }
  }
  return { phases, skipped }
}

const results: {
  -readonly [K in keyof BenchResults]: BenchResults[K]
} = {
  version: 1,
  quick,
  startedAt: new Date().toISOString(),
  durationS: 0,
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavgStart: loadavg().map((v) => round(v, 2)),
    loadavgEnd: [],
  },
  revision: revision(),
  command: `${process.env.BACKPRESSURE_BENCH_OPTIONS ? `BACKPRESSURE_BENCH_OPTIONS='${process.env.BACKPRESSURE_BENCH_OPTIONS}' ` : ''}pnpm bench${args.length > 0 ? ` ${args.join(' ')}` : ''}`,
}

if (only.has('micro')) {
  log('micro tier')
  results.micro = await runMicro({ rounds: quick ? 3 : 5, scale: quick ? 0.25 : 1, log })
  for (const r of results.micro.ratios) log(`  ${r.name}: ${r.median.toFixed(2)}×`)
}

if (only.has('macro')) {
  const scenario = ioScenario()
  log(
    `macro tier: P=${scenario.poolSize}, S=${scenario.queryMs} ms, C=${scenario.capacity}/s, ${macroSystems.length} systems × ${multiples.length} loads, ${phaseMs} ms each`,
  )
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const { phases, skipped } = await runMatrix(macroSystems, multiples, scenario, runs)
  const some = systemsFlag !== undefined || multiplesFlag !== undefined || runs > 1
  results.macro = {
    scenario,
    durationMs: phaseMs,
    multiples,
    phases,
    skipped,
    ...(some
      ? {
          rerun: {
            startedAt,
            command: results.command,
            revision: results.revision ?? 'unknown',
            loadavgStart,
            loadavgEnd: loadavg().map((v) => round(v, 2)),
            systems: [...macroSystems],
            multiples,
            runs,
          },
        }
      : {}),
  }
}

/**
 * C of a route with no queue in front: what unprotected Express serves of it closed-loop, measured now.
 * `connections` must keep the route's bottleneck busy: 8 for a CPU-bound route; for one that also
 * awaits a pool, enough to keep every connection of the pool busy too (8 sockets in front of a pool
 * of 16 measured half of what the server serves).
 */
async function calibrateClosedLoop(
  config: { poolSize: number; queryMs: number; cpuMs: number },
  connections = 8,
): Promise<{ capacity: number; samples: number[] }> {
  // The median of three fresh servers: one 2 s sample read 755, 681 and 774 req/s within 30 s on an
  // idle machine (a process's speed varies with how its code happened to compile), and every load and
  // goodput of the tier is a multiple of C.
  const samples: number[] = []
  for (let i = 0; i < CALIBRATION_SERVERS; i++) {
    const calibrate = await startServer({ system: 'express', ...config, deadlineMs: 1000 })
    try {
      await autocannon({ url: `${calibrate.origin}/work`, connections, duration: 1 })
      samples.push(
        Math.round(
          (await autocannon({ url: `${calibrate.origin}/work`, connections, duration: 2 })).requests.average,
        ),
      )
    } finally {
      await calibrate.kill()
    }
  }
  return { capacity: Math.round(median(samples)), samples }
}
const CALIBRATION_SERVERS = 3
const calibrationNote = (samples: readonly number[]): string =>
  samples.length === 0
    ? 'C given on the command line (--capacity), not measured in this run'
    : `C = closed-loop throughput of unprotected Express on this route, measured in this run: the median of ${samples.length} fresh servers (${samples.join(', ')} req/s)`

/** Where a C came from, for the log line (no samples: `--capacity` gave it). */
const capacitySource = (samples: readonly number[]): string =>
  samples.length === 0 ? 'given' : 'unprotected Express, closed loop'

/** C of a route as `--capacity` gives it (at `index`), or calibrated now. */
async function capacityOf(
  index: number,
  config: { poolSize: number; queryMs: number; cpuMs: number },
  connections?: number,
): Promise<{ capacity: number; samples: number[] }> {
  const given = capacityFlag?.[index]
  return given === undefined ? calibrateClosedLoop(config, connections) : { capacity: given, samples: [] }
}

/** The CPU-bound route (1 ms of CPU, no database), C calibrated now (or as `--capacity` gives it). */
async function cpuScenario(): Promise<{ scenario: Scenario; samples: number[] }> {
  const { capacity, samples } = await capacityOf(0, { poolSize: 0, queryMs: 0, cpuMs: 1 })
  // Clients already connected when the overload begins, as a busy server's are: opened during it,
  // most would wait in the kernel's accept queue and time out unread (see LoadOptions.preconnect).
  return {
    scenario: { poolSize: 0, queryMs: 0, cpuMs: 1, deadlineMs: 1000, capacity, connectedClients: true },
    samples,
  }
}

if (only.has('cpu') && cpuMultiples.length > 0) {
  const { scenario, samples } = await cpuScenario()
  const capacity = scenario.capacity
  const systems = systemsFlag ?? CPU_SYSTEMS
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  log(
    `CPU-bound variant: 1 ms of CPU per request, C=${capacity}/s (${capacitySource(samples)}), ${systems.length} systems × ${cpuMultiples.join(', ')}×, ${runs} run(s)`,
  )
  const { phases } = await runMatrix(systems, cpuMultiples, scenario, runs)
  // Both bounds at once: half the CPU, and a pool that alone could serve about what the CPU can.
  const { capacity: mixedCapacity, samples: mixedSamples } = await capacityOf(
    1,
    { poolSize: 16, queryMs: 10, cpuMs: 0.5 },
    48,
  )
  const mixedScenario: Scenario = {
    poolSize: 16,
    queryMs: 10,
    cpuMs: 0.5,
    deadlineMs: 1000,
    capacity: mixedCapacity,
    connectedClients: true,
  }
  const mixedSystems = systems.filter((s) =>
    [
      'express',
      'under-pressure-elu',
      'ours-express',
      'ours-express-attached',
      'ours-fastify',
      'ours-koa',
    ].includes(s),
  )
  log(
    `mixed route: 0.5 ms of CPU then a query (pool 16 × 10 ms), C=${mixedCapacity}/s (${capacitySource(mixedSamples)})`,
  )
  const mixed = await runMatrix(
    mixedSystems,
    cpuMultiples.filter((m) => m > 1),
    mixedScenario,
    runs,
  )
  results.cpu = {
    scenario,
    durationMs: phaseMs,
    multiples: cpuMultiples,
    phases,
    calibration: calibrationNote(samples),
    runs,
    startedAt,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    revision: results.revision ?? 'unknown',
    command: results.command ?? '',
    mixed: {
      scenario: mixedScenario,
      phases: mixed.phases,
      calibration: calibrationNote(mixedSamples),
    },
  }
}

if (only.has('cpu-ceiling') && !quick) {
  // Each framework behind fixed-rate gates (systems.ts, rateGateFramework) beside ours on it, three
  // runs interleaved: a gate's rate is known in advance, which ours has to find (cpu-ceiling.ts says
  // what that showed).
  const { scenario, samples } = await cpuScenario()
  const systems =
    systemsFlag ??
    (['express', 'fastify', 'koa'] as const).flatMap((framework) => [
      ...RATE_GATE_SHARES.map((share) => `${framework}-rate-gate-${share}`),
      `ours-${framework}`,
    ])
  const loads = multiplesFlag ?? [2, 5]
  const ceilingRuns = Math.max(3, runs)
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  log(
    `CPU-bound route behind fixed-rate gates, beside ours: C=${scenario.capacity}/s, ${systems.length} systems × ${loads.join(', ')}×, ${ceilingRuns} runs`,
  )
  const { phases } = await runMatrix(systems, loads, scenario, ceilingRuns)
  results.cpuCeiling = {
    scenario,
    durationMs: phaseMs,
    multiples: loads,
    phases,
    calibration: calibrationNote(samples),
    runs: ceilingRuns,
    startedAt,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    revision: results.revision ?? 'unknown',
    command: results.command ?? '',
  }
}

if (only.has('step')) {
  const scenario = ioScenario()
  const steps = quick
    ? [{ atMs: 3000, size: 1, recoverAtMs: 6000, systems: ['ours-express'] }]
    : [
        { atMs: 10_000, size: 2, recoverAtMs: 20_000, systems: ['ours-express', 'ours-fastify'] },
        {
          atMs: 10_000,
          size: 1,
          recoverAtMs: 20_000,
          // Beside ours: a fixed limit sized to the original pool, the naive server, an event-loop peer.
          systems: ['ours-express', 'ours-fastify', 'p-queue-guard', 'express', 'under-pressure'],
        },
      ]
  const durationMs = quick ? 9000 : 30_000
  const multiple = 3
  results.steps = []
  for (const { systems, ...step } of steps) {
    for (const system of systemsFlag ?? systems) {
      log(
        `capacity step: ${system}, pool ${scenario.poolSize} → ${step.size} at ${step.atMs / 1000} s, back at ${step.recoverAtMs / 1000} s, ${multiple}× load`,
      )
      try {
        const phase = await runPhase({ system, scenario, multiple, durationMs, step })
        const summary = stepSummary(phase, scenario, step)
        results.steps.push({ system, step, multiple, summary, phase: compact(phase, scenario.poolSize) })
        log(
          `  per second, % of capacity in force: ${summary.perSecond.map((s) => Math.round(s.pctOfCapacity)).join(' ')}`,
        )
        log(
          `  p99 before/during/after: ${summary.p99Ms.before}/${summary.p99Ms.during}/${summary.p99Ms.after} ms; limit settled after the drop: ${summary.settleS.drop} s, after the recovery: ${summary.settleS.recovery} s`,
        )
      } catch (error) {
        log(`  ${system}: skipped (${error instanceof Error ? error.message : String(error)})`)
      }
    }
  }
}

if (only.has('leave')) {
  const scenario = ioScenario()
  const systems = systemsFlag ?? (quick ? ['ours-express-fixed'] : FIXED_SYSTEMS.map((s) => s.name))
  const runs = 3
  const multiple = 10
  const options = fixedOptions(scenario)
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  log(
    `clients leave: ${systems.join(', ')} with { maxConcurrency: ${options.maxConcurrency}, maxQueueDepth: ${options.maxQueueDepth} } at ${multiple}× C, client deadlines ${LEAVE_DEADLINES_MS.join(' and ')} ms, ${runs} runs of ${phaseMs} ms`,
  )
  const phases: ClientsLeaveResults['phases'] = []
  for (let run = 1; run <= runs; run++) {
    for (const deadlineMs of LEAVE_DEADLINES_MS) {
      for (const system of systems) {
        try {
          const phase = compact(
            await runPhase({
              system,
              scenario: { ...scenario, deadlineMs },
              multiple,
              durationMs: phaseMs,
              drainMs: 3000,
            }),
            scenario.poolSize,
          )
          phases.push({ ...phase, run })
          log(
            `  run ${run}, ${deadlineMs} ms deadline: ${describe(phase)}; departed ${phase.departedQueries} of ${phase.queries}, routes for clients known gone ${phase.routesForGone}, left mid-route ${phase.routesLeftMidway}, route bodies at once ≤ ${phase.maxRoutes}, pool ≤ ${phase.maxPoolBusy}, abandoned ${phase.abandoned ?? '–'}, in flight after ${phase.inFlightAfter ?? '–'}`,
          )
        } catch (error) {
          log(`  ${system}: skipped (${error instanceof Error ? error.message : String(error)})`)
        }
      }
    }
  }
  results.clientsLeave = {
    scenario,
    multiple,
    deadlinesMs: LEAVE_DEADLINES_MS,
    durationMs: phaseMs,
    runs,
    options,
    startedAt,
    command: results.command,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    phases,
  }
}

if (only.has('rejection')) {
  // Many short rounds rather than a few long ones: on a shared machine a sample's luck with the
  // scheduler moves it by tens of percent, and a median over nine alternations sits still.
  const rounds = quick ? 1 : 9
  const durationMs = quick ? 1000 : 1500
  log(
    `rejection tier: servers held at { maxConcurrency: 1, maxQueueDepth: 0 }, closed loop on a route never admitted, ${rounds} rounds of ${durationMs} ms per system`,
  )
  results.rejection = await runRejection({
    rounds,
    durationMs,
    warmupMs: quick ? 500 : 1000,
    connections: 32,
    command: results.command,
    revision: results.revision ?? 'unknown',
    log,
    ...(systemsFlag === undefined ? {} : { systems: systemsFlag }),
  })
  for (const r of results.rejection.ratios) {
    log(`  ${r.name}: rejections/s ×${r.throughput.join(', ')}; CPU per rejection ×${r.cpu.join(', ')}`)
  }
}

if (only.has('overhead')) {
  log('overhead tier')
  results.overhead = await runOverhead({
    rounds: quick ? 1 : 3,
    durationS: 2,
    fixedRate: 1000,
    fixedMs: quick ? 1500 : 2000,
    log,
    ...(systemsFlag === undefined
      ? quick
        ? { systems: ['express', 'ours-express'] }
        : {}
      : { systems: systemsFlag }),
  })
  for (const r of results.overhead.ratios) {
    log(
      `  ${r.variant} vs ${r.base}: throughput ×${r.throughputRatios.join(', ')}; CPU/request ×${r.cpuRatios.join(', ')}`,
    )
  }
}

if (only.has('short')) {
  // A user's first minute: 8 s phases on fresh servers, ten of them at 2× and 5×, three below capacity.
  const defaults = quick
    ? [{ multiple: 2, runs: 2 }]
    : (multiplesFlag ?? [0.9, 1, 2, 5]).map((multiple) => ({ multiple, runs: multiple > 1 ? 10 : 3 }))
  // `--runs N` (N > 1) sets every load's count.
  const loads = runs > 1 ? defaults.map((l) => ({ ...l, runs })) : defaults
  log(`short runs: no options, ${loads.map((l) => `${l.runs} × ${l.multiple}×`).join(', ')}, 8 s each`)
  results.shortRuns = await runShortRuns({
    loads,
    durationMs: 8000,
    command: results.command,
    revision: results.revision ?? 'unknown',
    log,
    ...(systemsFlag === undefined ? {} : { systems: systemsFlag }),
  })
}

if (only.has('ceiling') && !quick) {
  log(describeCeilingRuns())
  results.ceiling = await runCeiling({
    command: results.command,
    revision: results.revision ?? 'unknown',
    log,
  })
}

if (only.has('retry')) {
  log('retry storm: 200 clients against our server at 10× its capacity, per retry strategy')
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const storm = await runRetryStorm({ quick, log })
  results.retryStorm = {
    ...storm,
    startedAt,
    command: results.command,
    revision: results.revision ?? 'unknown',
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
  }
}

if (only.has('streams')) {
  const streamRuns = quick ? 1 : 3
  log(
    `streams tier: ${quick ? 256 : 1024} MiB of 64 KiB chunks through writable and map into a pool of 8 × 4 ms, ${streamRuns} run(s) each, RSS read every 100 ms`,
  )
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const streamResults = await runStreams({ quick, runs: streamRuns, log })
  results.streams = {
    startedAt,
    command: results.command,
    revision: results.revision ?? 'unknown',
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    runs: streamResults,
  }
}

if (only.has('fleet-sim')) {
  log('fleet simulation: N instances with their own limits in front of one shared pool (manual clock)')
  results.fleetSim = await runFleetSim({ quick, revision: results.revision ?? 'unknown', log })
}

if (only.has('fleet')) {
  log('fleet tier: three instances (one with half the pool) behind a real HAProxy, per HAProxy set-up')
  results.fleet = await runFleet({
    runs: quick ? 1 : 3,
    durationMs: quick ? 5000 : 8000,
    command: results.command,
    log,
  })
}

if (only.has('fleet-join')) {
  log(
    'fleet-join tier: two instances join four in front of one database process, behind a real HAProxy, with and without a shared baseline',
  )
  results.fleetJoin = await runFleetJoin({
    runs: flag('--runs') === undefined ? (quick ? 1 : 3) : runs,
    durationS: quick ? 18 : 24,
    joinAtS: quick ? 9 : 12,
    ...(multiplesFlag === undefined ? {} : { multiples: multiplesFlag }),
    command: results.command,
    log,
  })
}

if (only.has('chain')) {
  // Three runs unless --runs says otherwise: the targets are read per run, and all runs are reported.
  const chainRuns = flag('--runs') === undefined ? (quick ? 1 : 3) : runs
  log(`call-chain tier: our client's defaults in front of our servers, ${chainRuns} runs`)
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const chainResult = await runCallChain({ runs: chainRuns, durationMs: quick ? 2000 : 5000, log })
  results.callChain = {
    ...chainResult,
    startedAt,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
  }
}

if (only.has('consumers')) {
  log(
    'consumers: a BullMQ worker and an AMQP consumer over the 4 × 10 ms pool on real brokers; SIGKILL and restart',
  )
  results.consumers = await runConsumers({ quick, runs, log })
}

results.durationS = round((performance.now() - began) / 1000)
results.machine.loadavgEnd = loadavg().map((v) => round(v, 2))
const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))
mkdirSync(resultsDir, { recursive: true })
const file = `${resultsDir}${quick ? 'quick' : 'latest'}.json`
const written: BenchResults =
  merge && existsSync(file)
    ? mergeTiers(JSON.parse(readFileSync(file, 'utf8')) as BenchResults, results as BenchResults, only)
    : (results as BenchResults)
writeFileSync(file, `${JSON.stringify(written, null, 1)}\n`)
log(`raw results: ${file}${written === results ? '' : ` (${[...only].join(', ')} merged in)`}`)
const reported = await writeReport(written)
log(`report: ${reported.join(', ')}`)
log(`done in ${results.durationS} s`)
