/**
 * The process of the streams tier: pushes a generated stream of `totalBytes` in `chunkBytes` buffers
 * through our controller into a slow asynchronous sink (the simulated database pool, each write holding
 * one of `poolSize` connections for `queryMs`), either as the last stage of `stream.pipeline` through
 * `controller.writable()` or through `controller.map()` over a generator. Its memory is read from
 * outside (streams.ts reads /proc); over IPC it only says when it is ready and what it saw.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { BackpressureController } from '@backpressure/core'
import { SimPool } from './sim-db.js'

export interface StreamsChildConfig {
  readonly mode: 'writable' | 'map'
  readonly totalBytes: number
  readonly chunkBytes: number
  readonly poolSize: number
  readonly queryMs: number
}

export type StreamsChildMessage =
  | { readonly type: 'ready' }
  | {
      readonly type: 'done'
      readonly bytes: number
      readonly chunks: number
      readonly ms: number
      /** The controller's limit: lowest and highest seen (sampled at every limit change and at the end). */
      readonly limitMin: number
      readonly limitMax: number
      /** The most writes running at once, and the most connections the pool had busy. */
      readonly maxInFlight: number
      readonly maxPoolBusy: number
      /** Mean ms a write held its connection: the sink's real capacity is poolSize / meanHoldMs. */
      readonly meanHoldMs: number
      readonly rejected: number
    }
  | { readonly type: 'error'; readonly message: string }

const config = JSON.parse(process.argv[2]!) as StreamsChildConfig

/** The generated input: fresh buffers, each filled, so every chunk is real memory until written. */
function* generate(): Generator<Buffer> {
  const count = Math.ceil(config.totalBytes / config.chunkBytes)
  for (let i = 0; i < count; i++) yield Buffer.alloc(config.chunkBytes, i & 0xff)
}

async function run(): Promise<StreamsChildMessage> {
  // The sink's own wait is a timer on this loop (a setTimeout of queryMs per write): cheap, and
  // what an asynchronous client library's reply looks like from here.
  const pool = new SimPool({
    size: config.poolSize,
    queryMs: config.queryMs,
    run: () => new Promise<void>((resolve) => setTimeout(resolve, config.queryMs)),
  })
  const controller = new BackpressureController()
  let limitMin = controller.limit
  let limitMax = controller.limit
  controller.on('limit', ({ limit }) => {
    limitMin = Math.min(limitMin, limit)
    limitMax = Math.max(limitMax, limit)
  })
  let bytes = 0
  let chunks = 0
  let running = 0
  let maxInFlight = 0
  const write = async (chunk: Buffer): Promise<void> => {
    running++
    if (running > maxInFlight) maxInFlight = running
    try {
      await pool.query()
      bytes += chunk.length
      chunks++
    } finally {
      running--
    }
  }
  const began = performance.now()
  if (config.mode === 'writable') {
    await pipeline(Readable.from(generate()), controller.writable(write))
  } else {
    for await (const _ of controller.map(generate(), write)) {
      // results are void: the loop only drives the iteration
    }
  }
  const ms = performance.now() - began
  const stats = controller.stats()
  await controller.close()
  return {
    type: 'done',
    bytes,
    chunks,
    ms,
    limitMin,
    limitMax,
    maxInFlight,
    maxPoolBusy: pool.maxBusy,
    meanHoldMs: pool.heldMs / Math.max(1, pool.queries),
    rejected: stats.rejected,
  }
}

process.once('message', () => {
  run().then(
    (message) => process.send!(message, () => process.exit(0)),
    (error: unknown) =>
      process.send!({ type: 'error', message: error instanceof Error ? error.message : String(error) }, () =>
        process.exit(1),
      ),
  )
})
process.send!({ type: 'ready' } satisfies StreamsChildMessage)
