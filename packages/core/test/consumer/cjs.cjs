// Requires the built package by its own name, as a CommonJS user would.
const { BackpressureController, BackpressureError, HttpBackpressure } = require('@backpressure/core')

const controller = new BackpressureController({ maxConcurrency: 1, maxQueueDepth: 0 })
controller.acquire().then(async (permit) => {
  const error = await controller.acquire().catch((e) => e)
  permit.release()
  console.log(
    JSON.stringify({
      format: 'cjs',
      rejected: BackpressureError.is(error) && error instanceof BackpressureError,
      status: error.status,
      http: typeof HttpBackpressure,
      inFlight: controller.inFlight,
    }),
  )
})
