// Imports the built package by its own name (Node's self-reference through "exports"), as an ESM user would.
import { BackpressureController, BackpressureError, HttpBackpressure } from '@backpressure/core'

const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
// Left open on purpose, with its sampling timer running: an idle controller must not keep the process alive.
new BackpressureController({ maxEventLoopDelayMs: 100, sampleIntervalMs: 10 })
const permit = await controller.acquire()
const error = await controller.acquire().catch((e) => e)
permit.release()
console.log(
  JSON.stringify({
    format: 'esm',
    rejected: BackpressureError.is(error) && error instanceof BackpressureError,
    status: error.status,
    http: typeof HttpBackpressure,
    inFlight: controller.inFlight,
  }),
)
