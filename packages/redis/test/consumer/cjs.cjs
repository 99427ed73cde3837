// Requires the built package by its own name, as a CommonJS user would.
const { BackpressureController, TokenBucketLimiter } = require('@backpressure/core')
const {
  BASELINE_SCRIPT,
  RedisSharedBaseline,
  RedisTokenBucketStore,
  TAKE_SCRIPT,
} = require('@backpressure/redis')

import('./fake-client.mjs').then(async ({ fakeClient }) => {
  const client = fakeClient()
  const limiter = new TokenBucketLimiter({
    capacity: 5,
    refillPerSecond: 1,
    store: new RedisTokenBucketStore({ client }),
  })
  const result = await limiter.take('k')
  const fleet = fakeClient()
  const sharedBaseline = new RedisSharedBaseline({ client: fleet })
  const controller = new BackpressureController({ maxConcurrency: { sharedBaseline } })
  const baseline = await sharedBaseline.refresh()
  await controller.close()
  console.log(
    JSON.stringify({
      format: 'cjs',
      result,
      sent: client.sent,
      script: TAKE_SCRIPT === client.lua,
      baseline,
      baselineScript: fleet.scripts.backpressureSharedBaseline === BASELINE_SCRIPT,
    }),
  )
})
