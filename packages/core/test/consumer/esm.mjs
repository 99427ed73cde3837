// Imports the built package by its own name (Node's self-reference through "exports"), as an ESM user would.
import { BackpressureController, BackpressureError, HttpBackpressure } from '@backpressure/core'

const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
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
