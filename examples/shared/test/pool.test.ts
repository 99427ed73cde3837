import { expect, it } from 'vitest'
import { SimulatedPool } from '../src/index.js'

it('a caller whose signal aborts leaves the pool’s queue, and a running query frees its connection at once', async () => {
  const pool = new SimulatedPool({ connections: 1, queryMs: 10_000 })
  const running = new AbortController()
  const waiting = new AbortController()
  const first = pool.query(() => 'first', running.signal)
  const second = pool.query(() => 'second', waiting.signal)
  expect(pool.busy).toBe(1)
  expect(pool.waiting).toBe(1)

  waiting.abort()
  await expect(second).rejects.toThrow()
  expect(pool.waiting).toBe(0)

  running.abort()
  await expect(first).rejects.toThrow()
  expect(pool.busy).toBe(0)
  expect(pool.completed).toBe(0)

  // The connection is free for the next caller; a cancelled waiter is skipped, never handed one.
  const fast = new SimulatedPool({ connections: 1, queryMs: 1 })
  const gone = new AbortController()
  const a = fast.query(() => 'a')
  const b = fast.query(() => 'b', gone.signal)
  const c = fast.query(() => 'c')
  gone.abort()
  await expect(b).rejects.toThrow()
  expect(await a).toBe('a')
  expect(await c).toBe('c')
  expect(fast.completed).toBe(2)
  expect(fast.busy).toBe(0)
})

it('refuses at once a caller whose signal has already aborted', async () => {
  const pool = new SimulatedPool({ connections: 1, queryMs: 1 })
  await expect(pool.query(() => 'x', AbortSignal.abort())).rejects.toThrow()
  expect(pool.busy).toBe(0)
})

it('resizes while it runs: a shrink takes effect as queries finish, a growth starts waiting queries at once', async () => {
  const pool = new SimulatedPool({ connections: 4, queryMs: 5 })
  let running = 0
  let most = 0
  const work = () => {
    running++
    most = Math.max(most, running)
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => running--)
  }
  const first = Array.from({ length: 8 }, () => pool.query(() => undefined))
  expect(pool.busy).toBe(4)
  pool.resize(1)
  await Promise.all(first)
  expect(pool.busy).toBe(0)
  const second = Array.from({ length: 3 }, () => pool.query(work))
  expect(pool.busy).toBe(1)
  expect(pool.waiting).toBe(2)
  pool.resize(3)
  expect(pool.busy).toBe(3)
  expect(pool.waiting).toBe(0)
  await Promise.all(second)
  expect(pool.connections).toBe(3)
  expect(() => pool.resize(0)).toThrow(TypeError)
})
