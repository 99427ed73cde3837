/**
 * Rejection tier: how many requests a second a server at its limit can turn away, and the CPU each
 * costs it. Every system runs in its own child process. Ours runs with one slot and no queue
 * (`{ maxConcurrency: 1, maxQueueDepth: 0 }`), and one request, sent first on a socket of its own,
 * holds that slot for the whole tier (its route never ends), so every request of the load is
 * rejected the moment it is decided. The bare systems answer every request with the same 503. Load is
 * closed loop over keep-alive sockets, on a route nothing ever admits. Servers run the list in order,
 * then again, round after round (A B A B …), so drift on a shared machine lands on every system alike;
 * ratios are taken within a round, and medians reported.
 */
import net from 'node:net'
import { loadavg } from 'node:os'
import { runClosedLoop } from './load.js'
import { cpuNs, machineBusyMs, type ServerHandle, startServer } from './proc.js'
import { median, round } from './stats.js'
import { HELD_OPTIONS, REJECTION_SYSTEMS } from './systems.js'

export interface RejectionSample {
  readonly round: number
  readonly system: string
  /** 503s answered per second of the window. */
  readonly rejectionsPerS: number
  /** Server CPU time (every thread, from /proc) per 503, µs. */
  readonly cpuUsPerRejection: number
  /** Server and load generator CPU over the window, % of one core. */
  readonly serverCpuPct: number
  readonly generatorCpuPct: number
  /** Every other process on the machine (the machine is shared), % of one core. */
  readonly othersCpuPct: number
  readonly rejected: number
  /** Anything but a 503: a 2xx means the held slot was lost, and the sample is not a rejection figure. */
  readonly other: number
  readonly timeouts: number
  readonly socketErrors: number
  readonly windowMs: number
}

export interface RejectionRatio {
  readonly name: string
  readonly numerator: string
  readonly denominator: string
  /** Per round: rejections per second, numerator ÷ denominator (> 1: the numerator turns away more). */
  readonly throughput: number[]
  /** Per round: CPU per rejection, numerator ÷ denominator (< 1: the numerator spends less). */
  readonly cpu: number[]
}

export interface RejectionResults {
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly options: typeof HELD_OPTIONS
  readonly connections: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly rounds: number
  readonly systems: string[]
  readonly samples: RejectionSample[]
  /** Per system, the median over rounds. */
  readonly medians: Record<string, { rejectionsPerS: number; cpuUsPerRejection: number }>
  readonly ratios: RejectionRatio[]
  /**
   * Per system of ours: whether the hold request was still unanswered at the end and the controller's
   * in-flight count then (1: the slot stayed held for the whole tier).
   */
  readonly held: Record<string, { unanswered: boolean; inFlight: number | null }>
  readonly skipped: string[]
}

/** The ratios the issue asks for, per framework: attached against the middleware and against raw node:http. */
const RATIOS: readonly { name: string; numerator: string; denominator: string }[] = [
  {
    name: 'Express: attached / middleware',
    numerator: 'ours-express-attached-held',
    denominator: 'ours-express-held',
  },
  {
    name: 'Express: attached / raw node:http',
    numerator: 'ours-express-attached-held',
    denominator: 'raw-503',
  },
  {
    name: 'Express: middleware / bare Express 503',
    numerator: 'ours-express-held',
    denominator: 'express-503',
  },
  { name: 'Koa: attached / middleware', numerator: 'ours-koa-attached-held', denominator: 'ours-koa-held' },
  { name: 'Koa: attached / raw node:http', numerator: 'ours-koa-attached-held', denominator: 'raw-503' },
  { name: 'Koa: middleware / bare Koa 503', numerator: 'ours-koa-held', denominator: 'koa-503' },
  { name: 'Fastify: plugin / bare Fastify 503', numerator: 'ours-fastify-held', denominator: 'fastify-503' },
  { name: 'Fastify: plugin / raw node:http', numerator: 'ours-fastify-held', denominator: 'raw-503' },
  {
    name: 'Fastify plugin / Express attached',
    numerator: 'ours-fastify-held',
    denominator: 'ours-express-attached-held',
  },
]

/** The request that takes the one slot: sent on its own socket, never answered while the slot is held. */
class Hold {
  /** Any answer, error or end from the server: the slot was not held. */
  answered = false
  private readonly socket: net.Socket
  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port })
    this.socket.on('error', () => {
      this.answered = true
    })
    this.socket.on('data', () => {
      this.answered = true
    })
    this.socket.on('end', () => {
      this.answered = true
    })
    this.socket.write(`GET /work HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`)
  }
  close(): void {
    this.socket.destroy()
  }
}

export async function runRejection(options: {
  rounds: number
  durationMs: number
  warmupMs: number
  connections: number
  systems?: readonly string[]
  command: string
  revision: string
  log?: (line: string) => void
}): Promise<RejectionResults> {
  const log = options.log ?? (() => {})
  const startedAt = new Date().toISOString()
  const loadavgStart = loadavg().map((v) => round(v, 2))
  const wanted = options.systems === undefined ? undefined : new Set(options.systems)
  const names = REJECTION_SYSTEMS.map((s) => s.name).filter((n) => wanted === undefined || wanted.has(n))
  const servers = new Map<string, { handle: ServerHandle; hold: Hold | undefined }>()
  const skipped: string[] = []
  const samples: RejectionSample[] = []
  const held: RejectionResults['held'] = {}
  const closedLoop = { path: '/work', connections: options.connections, deadlineMs: 1000 }
  try {
    // Started together (a child's start is mostly compiling TypeScript), kept in the list's order.
    const started = await Promise.allSettled(
      names.map((name) =>
        startServer(
          { system: name, poolSize: 0, queryMs: 0, cpuMs: 0, deadlineMs: 1000, hold: true },
          60_000,
        ),
      ),
    )
    started.forEach((outcome, i) => {
      const name = names[i]!
      if (outcome.status === 'fulfilled') {
        const ours = REJECTION_SYSTEMS.find((s) => s.name === name)!.kind === 'ours'
        servers.set(name, { handle: outcome.value, hold: ours ? new Hold(outcome.value.port) : undefined })
      } else {
        skipped.push(name)
        const error = outcome.reason as unknown
        log(`  ${name}: skipped (${error instanceof Error ? error.message : String(error)})`)
      }
    })
    // The hold requests reach their servers, then every server is warmed up before anything counts.
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (const [, { handle }] of servers) {
      await runClosedLoop({ ...closedLoop, origin: handle.origin, durationMs: options.warmupMs })
    }
    for (let r = 1; r <= options.rounds; r++) {
      for (const [name, { handle }] of servers) {
        let cpuAfter = 0
        let generatorAfter = 0
        let machineAfter = 0
        const generatorBefore = process.cpuUsage()
        const machineBefore = machineBusyMs()
        const cpuBefore = cpuNs(handle.pid)
        const load = await runClosedLoop({
          ...closedLoop,
          origin: handle.origin,
          durationMs: options.durationMs,
          onWindowEnd: () => {
            cpuAfter = cpuNs(handle.pid)
            machineAfter = machineBusyMs()
            const used = process.cpuUsage(generatorBefore)
            generatorAfter = (used.user + used.system) / 1000
          },
        })
        const rejected = load.status503WithRetryAfter + load.status503NoRetryAfter
        const serverMs = (cpuAfter - cpuBefore) / 1e6
        const sample: RejectionSample = {
          round: r,
          system: name,
          rejectionsPerS: round(rejected / (load.windowMs / 1000)),
          cpuUsPerRejection: round((serverMs * 1000) / Math.max(1, rejected), 2),
          serverCpuPct: round((serverMs / load.windowMs) * 100, 1),
          generatorCpuPct: round((generatorAfter / load.windowMs) * 100, 1),
          othersCpuPct: round(
            Math.max(0, ((machineAfter - machineBefore - serverMs - generatorAfter) / load.windowMs) * 100),
            1,
          ),
          rejected,
          other: load.status2xx + load.status429 + load.otherStatus,
          timeouts: load.timeouts,
          socketErrors: load.socketErrors,
          windowMs: round(load.windowMs),
        }
        samples.push(sample)
        log(
          `  round ${r}, ${name}: ${sample.rejectionsPerS} rejections/s, ${sample.cpuUsPerRejection} µs CPU each; server ${sample.serverCpuPct}% / generator ${sample.generatorCpuPct}% / others ${sample.othersCpuPct}% of a core${sample.other + sample.timeouts + sample.socketErrors > 0 ? `; other ${sample.other}, timeouts ${sample.timeouts}, socket errors ${sample.socketErrors}` : ''}`,
        )
      }
    }
    for (const [name, { handle, hold }] of servers) {
      if (hold === undefined) continue
      const report = await handle.report()
      held[name] = { unanswered: !hold.answered, inFlight: report.inFlight }
    }
  } finally {
    for (const [, { hold }] of servers) hold?.close()
    await Promise.all([...servers.values()].map((s) => s.handle.kill()))
  }

  const of = (system: string): RejectionSample[] =>
    samples.filter((s) => s.system === system).sort((a, b) => a.round - b.round)
  const medians: RejectionResults['medians'] = {}
  for (const name of servers.keys()) {
    const mine = of(name)
    medians[name] = {
      rejectionsPerS: round(median(mine.map((s) => s.rejectionsPerS))),
      cpuUsPerRejection: round(median(mine.map((s) => s.cpuUsPerRejection)), 2),
    }
  }
  const ratios: RejectionRatio[] = []
  for (const ratio of RATIOS) {
    const a = of(ratio.numerator)
    const b = of(ratio.denominator)
    if (a.length === 0 || b.length === 0) continue
    ratios.push({
      ...ratio,
      throughput: a.map((s, i) => round(s.rejectionsPerS / b[i]!.rejectionsPerS, 3)),
      cpu: a.map((s, i) => round(s.cpuUsPerRejection / b[i]!.cpuUsPerRejection, 3)),
    })
  }
  return {
    startedAt,
    command: options.command,
    revision: options.revision,
    loadavgStart,
    loadavgEnd: loadavg().map((v) => round(v, 2)),
    options: HELD_OPTIONS,
    connections: options.connections,
    durationMs: options.durationMs,
    warmupMs: options.warmupMs,
    rounds: options.rounds,
    systems: [...servers.keys()],
    samples,
    medians,
    ratios,
    held,
    skipped,
  }
}
