/**
 * Streams tier (`pnpm bench --only streams`): a 1 GiB generated stream of 64 KiB chunks pushed through
 * `controller.writable()` (the last stage of `stream.pipeline`) into a slow asynchronous sink, and the
 * same input through `controller.map()` over a generator. Each run is a child process of its own, on the
 * default (adaptive) controller; its resident set size is read from outside through /proc every 100 ms.
 * Memory must stay flat (what is held is bounded by the limit, not by the input), and throughput is
 * compared with what the sink can take (its pool size over the mean time a write held a connection).
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { memory } from './proc.js'
import { round } from './stats.js'
import type { StreamsChildConfig, StreamsChildMessage } from './streams-child.js'

const CHILD = fileURLToPath(new URL('./streams-child.ts', import.meta.url))
const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))
const MIB = 2 ** 20
const SAMPLE_MS = 100

export interface StreamsRun {
  readonly mode: StreamsChildConfig['mode']
  readonly run: number
  readonly totalBytes: number
  readonly chunkBytes: number
  readonly poolSize: number
  readonly queryMs: number
  readonly seconds: number
  readonly mibPerSecond: number
  readonly chunksPerSecond: number
  /** Chunks per second the sink could take at the hold it showed: poolSize / meanHoldMs. */
  readonly sinkCapacityPerSecond: number
  readonly pctOfSink: number
  readonly meanHoldMs: number
  /** RSS when the input began, a tenth of the way through, its highest sample, and its last sample before the end (MiB). */
  readonly rssStartMiB: number
  readonly rssAtTenthMiB: number
  readonly rssPeakMiB: number
  readonly rssEndMiB: number
  /** The kernel's own high-water mark of the resident set (VmHWM) over the whole process (MiB). */
  readonly rssHwmMiB: number
  readonly limitMin: number
  readonly limitMax: number
  readonly maxInFlight: number
  readonly maxPoolBusy: number
  readonly rejected: number
  /** Every sample: [ms since the input began, RSS MiB]. */
  readonly rssSeries: [number, number][]
}

export interface StreamsResults {
  readonly startedAt: string
  readonly command: string
  readonly revision: string
  readonly loadavgStart: number[]
  readonly loadavgEnd: number[]
  readonly runs: StreamsRun[]
}

async function runOne(config: StreamsChildConfig, run: number): Promise<StreamsRun> {
  const child = fork(CHILD, [JSON.stringify(config)], {
    cwd: BENCH_DIR,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  })
  const pid = child.pid!
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`streams child exited with ${code} before it was ready`)))
      child.once('message', () => resolve())
    })
    const series: [number, number][] = []
    const began = performance.now()
    const sample = (): void => {
      const rss = memory(pid).rss
      if (Number.isFinite(rss)) series.push([Math.round(performance.now() - began), round(rss / MIB, 1)])
    }
    sample()
    const timer = setInterval(sample, SAMPLE_MS)
    const done = new Promise<StreamsChildMessage>((resolve, reject) => {
      child.removeAllListeners('exit')
      child.once('exit', (code) => reject(new Error(`streams child exited with ${code}`)))
      child.on('message', (message: StreamsChildMessage) => {
        if (message.type !== 'ready') {
          sample()
          resolve(message)
        }
      })
    })
    child.send({ type: 'go' })
    const message = await done.finally(() => clearInterval(timer))
    const hwm = memory(pid).peak
    if (message.type === 'error') throw new Error(`streams child: ${message.message}`)
    if (message.type !== 'done') throw new Error('streams child: unexpected message')
    if (message.bytes !== config.totalBytes) {
      throw new Error(`streams child wrote ${message.bytes} bytes of ${config.totalBytes}`)
    }
    const seconds = message.ms / 1000
    const sinkCapacityPerSecond = (config.poolSize * 1000) / message.meanHoldMs
    const chunksPerSecond = message.chunks / seconds
    const rss = series.map((s) => s[1])
    return {
      mode: config.mode,
      run,
      totalBytes: config.totalBytes,
      chunkBytes: config.chunkBytes,
      poolSize: config.poolSize,
      queryMs: config.queryMs,
      seconds: round(seconds, 2),
      mibPerSecond: round(message.bytes / MIB / seconds, 1),
      chunksPerSecond: round(chunksPerSecond),
      sinkCapacityPerSecond: round(sinkCapacityPerSecond),
      pctOfSink: round((chunksPerSecond / sinkCapacityPerSecond) * 100, 1),
      meanHoldMs: round(message.meanHoldMs, 2),
      rssStartMiB: rss[0]!,
      rssAtTenthMiB: series.find((s) => s[0] >= message.ms / 10)?.[1] ?? Number.NaN,
      rssPeakMiB: Math.max(...rss),
      rssEndMiB: rss.at(-1)!,
      rssHwmMiB: round(hwm / MIB, 1),
      limitMin: message.limitMin,
      limitMax: message.limitMax,
      maxInFlight: message.maxInFlight,
      maxPoolBusy: message.maxPoolBusy,
      rejected: message.rejected,
      rssSeries: series,
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/** Runs writable then map, `runs` times (interleaved), each in a fresh child. */
export async function runStreams(options: {
  quick: boolean
  runs: number
  log: (line: string) => void
}): Promise<StreamsRun[]> {
  const base = {
    totalBytes: options.quick ? 256 * MIB : 1024 * MIB,
    chunkBytes: 64 * 1024,
    poolSize: 8,
    queryMs: 4,
  }
  const runs: StreamsRun[] = []
  for (let run = 1; run <= options.runs; run++) {
    for (const mode of ['writable', 'map'] as const) {
      const result = await runOne({ ...base, mode }, run)
      runs.push(result)
      options.log(
        `  run ${run}, ${mode}: ${result.totalBytes / MIB} MiB in ${result.seconds} s (${result.mibPerSecond} MiB/s, ${result.chunksPerSecond} chunks/s, ${result.pctOfSink}% of the sink's ${result.sinkCapacityPerSecond}/s); RSS start ${result.rssStartMiB} MiB, at a tenth ${result.rssAtTenthMiB}, peak ${result.rssPeakMiB}, end ${result.rssEndMiB} (VmHWM ${result.rssHwmMiB}); limit ${result.limitMin}–${result.limitMax}, in flight ≤ ${result.maxInFlight}, pool busy ≤ ${result.maxPoolBusy}, rejected ${result.rejected}`,
      )
    }
  }
  return runs
}

/** The report's section (docs/benchmarks.md): what was run, then one row per run. */
export function streamsSection(streams: StreamsResults, heading: string): string[] {
  const first = streams.runs[0]
  if (first === undefined) return []
  const out: string[] = [`## ${heading}`, '']
  out.push(
    `A generated stream of ${first.totalBytes / MIB} MiB in ${first.chunkBytes / 1024} KiB buffers (each freshly allocated and filled) written into a slow asynchronous sink — a pool of ${first.poolSize} connections, each write holding one for a ${first.queryMs} ms timer — through \`controller.writable()\` as the last stage of \`stream.pipeline\`, and through \`controller.map()\` over a generator. The controller is the default one (adaptive limit); nobody told it the sink's capacity. Each run is a process of its own whose resident set size is read from /proc every ${SAMPLE_MS} ms. "Sink capacity" is the pool size over the mean time a write held its connection (the timer's lateness included). Measured ${streams.startedAt.slice(0, 16).replace('T', ' ')} UTC with \`${streams.command}\`, load average ${streams.loadavgStart.join(' ')} at the start and ${streams.loadavgEnd.join(' ')} at the end, code ${streams.revision}.`,
  )
  out.push('')
  out.push(
    '| run | through | seconds | MiB/s | % of sink capacity | RSS start / at a tenth / peak / end (MiB) | limit min–max | in flight ≤ | rejected |',
  )
  out.push('|---|---|---:|---:|---:|---|---|---:|---:|')
  for (const r of streams.runs) {
    out.push(
      `| ${r.run} | ${r.mode === 'writable' ? 'writable (pipeline)' : 'map'} | ${r.seconds} | ${r.mibPerSecond} | ${r.pctOfSink}% | ${r.rssStartMiB} / ${r.rssAtTenthMiB} / **${r.rssPeakMiB}** / ${r.rssEndMiB} | ${r.limitMin}–${r.limitMax} | ${r.maxInFlight} | ${r.rejected} |`,
    )
  }
  out.push('')
  return out
}
