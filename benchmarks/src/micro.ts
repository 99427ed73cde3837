/**
 * Micro tier: the admission engine alone, against p-queue and the seed's reference design, in one
 * process and one run. Every round runs every case once, in the same order; figures are medians over
 * rounds and every ratio is taken within a round, then its median reported, so drift between rounds
 * cancels.
 */
import { BackpressureController, type Permit, Rejection } from '@backpressure/core'
import PQueue from 'p-queue'
import { SeedBackpressureController } from './reference-design.js'
import { median } from './stats.js'

export interface MicroCase {
  readonly name: string
  readonly unit: 'ops/s' | 'ns/op'
  readonly samples: number[]
  readonly median: number
}

export interface MicroRatio {
  readonly name: string
  readonly samples: number[]
  readonly median: number
  readonly min: number
  readonly max: number
}

export interface MicroResult {
  readonly rounds: number
  readonly cases: MicroCase[]
  readonly ratios: MicroRatio[]
}

const noop = (): void => {}
const noopAsync = (): Promise<void> => Promise.resolve()
/** The seed's and p-queue's defaults are 100 in flight; ours is given the same fixed limit here so the engines, not the limits, are compared. */
const LIMIT = 100
/** Concurrent waiters cycling through a limit of 100: half of them always queued. */
const WAITERS = 200

function elapsedNs(start: bigint): number {
  return Number(process.hrtime.bigint() - start)
}

type Bench = { name: string; unit: 'ops/s' | 'ns/op'; run: (scale: number) => Promise<number> | number }

function opsPerSecond(ops: number, ns: number): number {
  return (ops * 1e9) / ns
}

async function cycle(workers: number, opsPerWorker: number, one: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < opsPerWorker; i++) await one()
    }),
  )
  return opsPerSecond(workers * opsPerWorker, elapsedNs(start))
}

const benches: Bench[] = [
  {
    name: 'ours: admit() + release(), sync fast path',
    unit: 'ops/s',
    run: (scale) => {
      const c = new BackpressureController({ maxConcurrency: LIMIT })
      const n = 200_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) (c.admit(0) as Permit).release()
      const ns = elapsedNs(start)
      void c.close()
      return opsPerSecond(n, ns)
    },
  },
  {
    name: 'ours: await acquire() + release()',
    unit: 'ops/s',
    run: async (scale) => {
      const c = new BackpressureController({ maxConcurrency: LIMIT })
      const n = 100_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) (await c.acquire()).release()
      const ns = elapsedNs(start)
      void c.close()
      return opsPerSecond(n, ns)
    },
  },
  {
    name: `p-queue: await add(fn), concurrency ${LIMIT}`,
    unit: 'ops/s',
    run: async (scale) => {
      const q = new PQueue({ concurrency: LIMIT })
      const n = 50_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await q.add(noopAsync)
      return opsPerSecond(n, elapsedNs(start))
    },
  },
  {
    name: 'reference design: await submit(fn), defaults',
    unit: 'ops/s',
    run: async (scale) => {
      const c = new SeedBackpressureController()
      const n = 10_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await c.submit(noopAsync)
      const ns = elapsedNs(start)
      c.stop()
      return opsPerSecond(n, ns)
    },
  },
  {
    name: `ours: ${WAITERS} waiters cycling through ${LIMIT} slots`,
    unit: 'ops/s',
    run: (scale) => {
      const c = new BackpressureController({ maxConcurrency: LIMIT, maxQueueDepth: 1000 })
      return cycle(WAITERS, 500 * scale, async () => {
        const permit = await c.acquire()
        await null
        permit.release()
      }).finally(() => c.close())
    },
  },
  {
    name: `p-queue: ${WAITERS} waiters cycling through ${LIMIT} slots`,
    unit: 'ops/s',
    run: (scale) => {
      const q = new PQueue({ concurrency: LIMIT })
      return cycle(WAITERS, 250 * scale, () =>
        q.add(async () => {
          await null
        }),
      )
    },
  },
  {
    name: `reference design: ${WAITERS} waiters cycling through ${LIMIT} slots`,
    unit: 'ops/s',
    run: (scale) => {
      const c = new SeedBackpressureController()
      return cycle(WAITERS, 25 * scale, () =>
        c.submit(async () => {
          await null
        }),
      ).finally(() => c.stop())
    },
  },
  {
    name: 'ours: rejection as a value (admit() → Rejection)',
    unit: 'ns/op',
    run: (scale) => {
      const c = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
      const held = c.admit(0) as Permit
      const n = 200_000 * scale
      let rejected = 0
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) if (c.admit(0) instanceof Rejection) rejected++
      const ns = elapsedNs(start)
      if (rejected !== n) throw new Error(`expected ${n} rejections, got ${rejected}`)
      held.release()
      void c.close()
      return ns / n
    },
  },
  {
    name: 'ours: rejection as BackpressureError (await acquire() throws)',
    unit: 'ns/op',
    run: async (scale) => {
      const c = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
      const held = c.admit(0) as Permit
      const n = 100_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) {
        try {
          await c.acquire()
        } catch {}
      }
      const ns = elapsedNs(start)
      held.release()
      void c.close()
      return ns / n
    },
  },
  {
    name: 'reference design: rejection (await submit() throws, queue full)',
    unit: 'ns/op',
    run: async (scale) => {
      const c = new SeedBackpressureController()
      // Fill the queue synchronously: the polling loop starts one per turn, so none leaves meanwhile.
      for (let i = 0; i < 1000; i++) c.submit(noopAsync).catch(noop)
      const n = 20_000 * scale
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) {
        try {
          await c.submit(noopAsync)
        } catch {}
      }
      const ns = elapsedNs(start)
      c.stop()
      return ns / n
    },
  },
]

const RATIOS: [string, string, string][] = [
  ['ours acquire()/release() vs p-queue add()', benches[1]!.name, benches[2]!.name],
  ['ours acquire()/release() vs reference design submit()', benches[1]!.name, benches[3]!.name],
  ['ours sync admit()/release() vs p-queue add()', benches[0]!.name, benches[2]!.name],
  ['ours queued cycling vs p-queue', benches[4]!.name, benches[5]!.name],
  ['ours queued cycling vs reference design', benches[4]!.name, benches[6]!.name],
  // For costs the ratio is inverted, so that > 1 still means "ours is better".
  ['reference design rejection cost / ours (value)', benches[9]!.name, benches[7]!.name],
  ['reference design rejection cost / ours (error)', benches[9]!.name, benches[8]!.name],
  ['rejection (value) / served admit+release', benches[7]!.name, 'served'],
]

export async function runMicro(
  options: { rounds?: number; scale?: number; log?: (line: string) => void } = {},
): Promise<MicroResult> {
  const rounds = options.rounds ?? 7
  const scale = options.scale ?? 1
  const log = options.log ?? noop
  // One untimed round so every case is compiled by the optimizing tier before it counts.
  for (const bench of benches) await bench.run(Math.max(scale / 4, 0.05))
  const samples = new Map<string, number[]>(benches.map((b) => [b.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (const bench of benches) {
      global.gc?.()
      samples.get(bench.name)!.push(await bench.run(scale))
      // Let any leftover polling loop (the seed's) notice it was stopped.
      await new Promise((resolve) => setImmediate(resolve))
    }
    log(`micro: round ${round + 1}/${rounds} done`)
  }
  const cases = benches.map((b) => {
    const values = samples.get(b.name)!
    return { name: b.name, unit: b.unit, samples: values.map((v) => Math.round(v)), median: median(values) }
  })
  const servedNs = samples.get(benches[0]!.name)!.map((ops) => 1e9 / ops)
  const ratios = RATIOS.map(([name, a, b]) => {
    const av = samples.get(a)!
    const bv = b === 'served' ? servedNs : samples.get(b)!
    const per = av.map((value, i) => value / bv[i]!)
    return {
      name,
      samples: per.map((v) => Math.round(v * 1000) / 1000),
      median: median(per),
      min: Math.min(...per),
      max: Math.max(...per),
    }
  })
  return { rounds, cases, ratios }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick')
  const result = await runMicro({
    rounds: quick ? 3 : 7,
    scale: quick ? 0.25 : 1,
    log: (l) => console.log(l),
  })
  for (const c of result.cases)
    console.log(`${c.name}: ${Math.round(c.median).toLocaleString('en-US')} ${c.unit}`)
  for (const r of result.ratios)
    console.log(`${r.name}: ${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`)
}
