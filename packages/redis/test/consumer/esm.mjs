// Imports the built package by its own name, as an ESM user would.
import { TokenBucketLimiter } from '@backpressure/core'
import { RedisTokenBucketStore, TAKE_SCRIPT } from '@backpressure/redis'
import { fakeClient } from './fake-client.mjs'

const client = fakeClient()
const limiter = new TokenBucketLimiter({
  capacity: 5,
  refillPerSecond: 1,
  store: new RedisTokenBucketStore({ client }),
})
const result = await limiter.take('k')
console.log(JSON.stringify({ format: 'esm', result, sent: client.sent, script: TAKE_SCRIPT === client.lua }))
