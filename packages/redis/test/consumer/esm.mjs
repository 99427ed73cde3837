// Imports the built package by its own name, as an ESM user would.
import { BackpressureController, TokenBucketLimiter } from '@backpressure/core'
import { BASELINE_SCRIPT, RedisSharedBaseline, RedisTokenBucketStore, TAKE_SCRIPT } from '@backpressure/redis'
import { fakeClient } from './fake-client.mjs'

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
    format: 'esm',
    result,
    sent: client.sent,
    script: TAKE_SCRIPT === client.lua,
    baseline,
    baselineScript: fleet.scripts.backpressureSharedBaseline === BASELINE_SCRIPT,
  }),
)
