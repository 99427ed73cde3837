import { describe, expect, it } from 'vitest'
import { SimDatabase, SimPool } from '../src/sim-db.js'

/** A pool whose queries finish only when the test says so, recording the order they start in. */
function manualPool(size: number) {
  const started: number[] = []
  const finish = new Map<number, () => void>()
  const pool = new SimPool({
    size,
    queryMs: 10,
    run: (tag) =>
      new Promise<void>((resolve) => {
        started.push(tag as number)
        finish.set(tag as number, resolve)
      }),
  })
  const flush = () => new Promise((resolve) => setImmediate(resolve))
  return { pool, started, finish: (id: number) => finish.get(id)!(), flush }
}

describe('simulated database pool', () => {
  it('runs at most `size` queries at once and starts waiters in arrival order', async () => {
    const { pool, started, finish, flush } = manualPool(2)
    const done = Array.from({ length: 6 }, (_, i) => pool.query(Number.POSITIVE_INFINITY, i))
    await flush()
    expect(started).toEqual([0, 1])
    expect(pool.busy).toBe(2)
    expect(pool.waiting).toBe(4)
    // Whichever query ends, the oldest waiter gets the connection.
    finish(1)
    await flush()
    expect(started).toEqual([0, 1, 2])
    finish(0)
    finish(2)
    await flush()
    expect(started).toEqual([0, 1, 2, 3, 4])
    finish(3)
    finish(4)
    await flush()
    finish(5)
    await Promise.all(done)
    expect(started).toEqual([0, 1, 2, 3, 4, 5])
    expect(pool.maxBusy).toBe(2)
    expect(pool.queries).toBe(6)
  })

  it('follows a capacity change: a smaller pool starts nothing until busy < size, a larger one starts waiters at once', async () => {
    const { pool, started, finish, flush } = manualPool(2)
    const done = Array.from({ length: 5 }, (_, i) => pool.query(Number.POSITIVE_INFINITY, i))
    await flush()
    pool.resize(1)
    finish(0)
    await flush()
    // One still running in a pool of one: nobody new starts.
    expect(started).toEqual([0, 1])
    finish(1)
    await flush()
    expect(started).toEqual([0, 1, 2])
    pool.resize(3)
    await flush()
    expect(started).toEqual([0, 1, 2, 3, 4])
    expect(pool.busy).toBe(3)
    for (const id of [2, 3, 4]) finish(id)
    await Promise.all(done)
    expect(pool.busy).toBe(0)
  })

  it('counts queries that start after their client’s deadline as work for departed clients', async () => {
    const { pool, finish, flush } = manualPool(1)
    const first = pool.query(Number.POSITIVE_INFINITY, 0)
    const late = pool.query(performance.now() - 1, 1)
    await flush()
    finish(0)
    await flush()
    finish(1)
    await Promise.all([first, late])
    expect(pool.queries).toBe(2)
    expect(pool.departed).toBe(1)
  })

  it('fails every waiter when closed', async () => {
    const { pool, finish, flush } = manualPool(1)
    const running = pool.query(Number.POSITIVE_INFINITY, 0)
    const waiting = [pool.query(Number.POSITIVE_INFINITY, 1), pool.query(Number.POSITIVE_INFINITY, 2)]
    await flush()
    pool.close()
    for (const w of waiting) await expect(w).rejects.toThrow('pool closed')
    finish(0)
    await running
  })
})

describe('simulated database thread', () => {
  it('answers every query, in the order sent, no sooner than queryMs after it was sent', async () => {
    const database = new SimDatabase(20)
    try {
      const order: number[] = []
      const started = performance.now()
      const elapsed = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          database.query().then(() => {
            order.push(i)
            return performance.now() - started
          }),
        ),
      )
      expect(order).toEqual([0, 1, 2, 3, 4])
      for (const ms of elapsed) expect(ms).toBeGreaterThanOrEqual(20)
    } finally {
      await database.close()
    }
  })
})
