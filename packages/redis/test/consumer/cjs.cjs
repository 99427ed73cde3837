// Requires the built package by its own name, as a CommonJS user would.
const { TokenBucketLimiter } = require('@backpressure/core')
const { RedisTokenBucketStore, TAKE_SCRIPT } = require('@backpressure/redis')

import('./fake-client.mjs').then(async ({ fakeClient }) => {
  const client = fakeClient()
  const limiter = new TokenBucketLimiter({
    capacity: 5,
    refillPerSecond: 1,
    store: new RedisTokenBucketStore({ client }),
  })
  const result = await limiter.take('k')
  console.log(
    JSON.stringify({ format: 'cjs', result, sent: client.sent, script: TAKE_SCRIPT === client.lua }),
  )
})
