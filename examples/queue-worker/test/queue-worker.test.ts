import { afterAll, beforeAll, expect, it } from 'vitest'
import { type RedisServer, redisAvailable, startRedis } from '../../../packages/redis/test/redis-server.js'
import { runQueueWorker } from '../src/index.js'

let redis: RedisServer

beforeAll(async () => {
  if (redisAvailable) redis = await startRedis()
})

afterAll(async () => {
  await redis?.stop()
})

it.skipIf(!redisAvailable)(
  'processes every job once, follows the capacity drop, and fails none',
  async () => {
    const lines: string[] = []
    const summary = await runQueueWorker({
      redisPort: redis.port,
      jobs: 600,
      log: (line) => lines.push(line),
    })
    expect(summary.completed).toBe(600)
    expect(summary.failed).toBe(0)
    expect(summary.limitAfter).toBeLessThan(summary.limitBefore)
    expect(lines.some((line) => line.startsWith('database: 4 connections → 1'))).toBe(true)
  },
  60_000,
)
