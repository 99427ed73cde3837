/**
 * Overhead tier: a hello-world route, each bare framework against the same with our middleware (and
 * Fastify with under-pressure). Two figures, both from runs interleaved A B A B so drift cancels:
 * closed-loop throughput (autocannon), and — the primary one (DESIGN §7) — the server's CPU time per
 * request at a fixed request rate below capacity, read from outside the server's process.
 */
import autocannon from 'autocannon'
import { runLoad } from './load.js'
import { cpuNs, type ServerHandle, startServer } from './proc.js'
import { median, round } from './stats.js'

export const OVERHEAD_PAIRS: readonly { readonly base: string; readonly variants: readonly string[] }[] = [
  { base: 'express', variants: ['ours-express'] },
  { base: 'fastify', variants: ['ours-fastify', 'under-pressure'] },
  { base: 'koa', variants: ['ours-koa'] },
]

export interface OverheadRatio {
  readonly base: string
  readonly variant: string
  /** Per round, variant ÷ base. */
  readonly throughputRatios: number[]
  readonly cpuRatios: number[]
  readonly throughput: { base: number; variant: number }
  readonly cpuUsPerRequest: { base: number; variant: number }
}

export interface OverheadResult {
  readonly rounds: number
  readonly fixedRate: number
  readonly autocannon: { connections: number; durationS: number }
  /** system → per-round samples. */
  readonly throughput: Record<string, number[]>
  readonly cpuUsPerRequest: Record<string, number[]>
  readonly ratios: OverheadRatio[]
  readonly skipped: string[]
}

export async function runOverhead(options: {
  rounds: number
  durationS: number
  fixedRate: number
  fixedMs: number
  systems?: readonly string[]
  log?: (line: string) => void
}): Promise<OverheadResult> {
  const log = options.log ?? (() => {})
  const wanted = new Set(options.systems ?? OVERHEAD_PAIRS.flatMap((p) => [p.base, ...p.variants]))
  const names = OVERHEAD_PAIRS.flatMap((p) => [p.base, ...p.variants]).filter((n) => wanted.has(n))
  const servers = new Map<string, ServerHandle>()
  const skipped: string[] = []
  const throughput: Record<string, number[]> = {}
  const cpu: Record<string, number[]> = {}
  const connections = 32
  try {
    for (const name of names) {
      try {
        servers.set(
          name,
          await startServer({ system: name, poolSize: 4, queryMs: 10, cpuMs: 0, deadlineMs: 1000 }),
        )
        throughput[name] = []
        cpu[name] = []
      } catch (error) {
        skipped.push(name)
        log(`overhead: ${name} skipped (${error instanceof Error ? error.message : String(error)})`)
      }
    }
    // Warm every server up before anything counts.
    for (const [, server] of servers) {
      await autocannon({ url: `${server.origin}/hello`, connections, duration: 1 })
    }
    for (let round = 0; round < options.rounds; round++) {
      // Alternate the order each round as well, so neither side always runs first.
      const order = round % 2 === 0 ? [...servers] : [...servers].reverse()
      for (const [name, server] of order) {
        const result = await autocannon({
          url: `${server.origin}/hello`,
          connections,
          duration: options.durationS,
        })
        throughput[name]!.push(result.requests.average)
      }
      for (const [name, server] of order) {
        const before = cpuNs(server.pid)
        const load = await runLoad({
          origin: server.origin,
          path: '/hello',
          rate: options.fixedRate,
          durationMs: options.fixedMs,
          connections: 64,
        })
        const after = cpuNs(server.pid)
        const answered = load.okInTime + load.okLate
        cpu[name]!.push((after - before) / 1000 / Math.max(1, answered))
      }
      log(`overhead: round ${round + 1}/${options.rounds} done`)
    }
  } finally {
    await Promise.all([...servers.values()].map((s) => s.kill()))
  }

  const ratios: OverheadRatio[] = []
  for (const pair of OVERHEAD_PAIRS) {
    for (const variant of pair.variants) {
      const a = throughput[pair.base]
      const b = throughput[variant]
      if (a === undefined || b === undefined) continue
      const ca = cpu[pair.base]!
      const cb = cpu[variant]!
      ratios.push({
        base: pair.base,
        variant,
        throughputRatios: b.map((v, i) => round(v / a[i]!, 4)),
        cpuRatios: cb.map((v, i) => round(v / ca[i]!, 4)),
        throughput: { base: round(median(a)), variant: round(median(b)) },
        cpuUsPerRequest: { base: round(median(ca), 1), variant: round(median(cb), 1) },
      })
    }
  }
  return {
    rounds: options.rounds,
    fixedRate: options.fixedRate,
    autocannon: { connections, durationS: options.durationS },
    throughput,
    cpuUsPerRequest: cpu,
    ratios,
    skipped,
  }
}
