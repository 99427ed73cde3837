import { describe, expect, it } from 'vitest'
import { Permit, type Rejection, seededRandom } from '../src/index.js'
import { flush, makeController } from './helpers.js'

interface Tracked {
  priority: number
  abort: AbortController
  state: 'waiting' | 'running' | 'released' | 'rejected'
  permit?: Permit
  startedAfterAbort: boolean
  /** Its own deadline (clock ms), or Infinity. */
  deadline: number
  startedAfterDeadline: boolean
}

/**
 * Thousands of random acquire / release / abort / time steps against the controller, checking after
 * every step that the bounds hold, that aborted or expired waiters (the queue's bound or their own
 * deadline) never start, and that every permit goes back exactly once, released or abandoned. Odd
 * seeds also run CoDel.
 */
describe('randomized invariants', () => {
  it.each([1, 2, 3, 4, 5])('holds its invariants over random sequences (seed %i)', async (seed) => {
    const rand = seededRandom(seed * 7919)
    const maxConcurrency = 1 + Math.floor(rand() * 4)
    const maxQueueDepth = Math.floor(rand() * 6)
    const { controller, clock } = makeController(
      {
        maxConcurrency,
        maxQueueDepth,
        maxQueueWaitMs: 50,
        adaptiveRejection: false,
        codel: seed % 2 === 1 ? { targetMs: 5, intervalMs: 20 } : false,
      },
      seed,
    )
    const all: Tracked[] = []
    let releases = 0
    let abandons = 0

    for (let step = 0; step < 3000; step++) {
      const roll = rand()
      if (roll < 0.45) {
        const item: Tracked = {
          priority: Math.floor(rand() * 3),
          abort: new AbortController(),
          state: 'waiting',
          startedAfterAbort: false,
          deadline: rand() < 0.3 ? clock.now() + Math.floor(rand() * 80) : Number.POSITIVE_INFINITY,
          startedAfterDeadline: false,
        }
        all.push(item)
        const result = controller.admit(item.priority, item.abort.signal, item.deadline)
        const settle = (r: Permit | Rejection) => {
          if (r instanceof Permit) {
            if (item.abort.signal.aborted) item.startedAfterAbort = true
            if (r.startedAt >= item.deadline) item.startedAfterDeadline = true
            item.state = 'running'
            item.permit = r
          } else item.state = 'rejected'
        }
        if (result instanceof Promise) void result.then(settle)
        else settle(result)
      } else if (roll < 0.75) {
        const running = all.filter((t) => t.state === 'running')
        const victim = running[Math.floor(rand() * running.length)]
        if (victim !== undefined) {
          // Now and then the work is given up on instead (a client left, its route never ended).
          if (rand() < 0.2) {
            victim.permit!.abandon()
            abandons++
          } else releases++
          victim.permit!.release()
          victim.permit!.abandon()
          victim.state = 'released'
        }
      } else if (roll < 0.85) {
        const waiting = all.filter((t) => t.state === 'waiting')
        waiting[Math.floor(rand() * waiting.length)]?.abort.abort()
      } else {
        clock.advance(Math.floor(rand() * 30))
      }
      await flush()

      const running = all.filter((t) => t.state === 'running').length
      const waiting = all.filter((t) => t.state === 'waiting').length
      expect(controller.inFlight).toBe(running)
      expect(controller.inFlight).toBeLessThanOrEqual(maxConcurrency)
      expect(controller.queueDepth).toBe(waiting)
      expect(controller.queueDepth).toBeLessThanOrEqual(maxQueueDepth)
      // Work conservation: nobody waits while a slot is free.
      if (controller.queueDepth > 0) expect(controller.inFlight).toBe(maxConcurrency)
    }
    expect(all.some((t) => t.startedAfterAbort)).toBe(false)
    expect(all.some((t) => t.startedAfterDeadline)).toBe(false)
    expect(controller.stats().completed).toBe(releases + abandons)
    expect(controller.stats().abandoned).toBe(abandons)

    // Closing first rejects the waiters, so releasing the runners starts nobody new.
    const closed = controller.close()
    await flush()
    expect(all.some((t) => t.state === 'waiting')).toBe(false)
    for (const t of all) if (t.state === 'running') t.permit!.release()
    await closed
    expect(controller.inFlight).toBe(0)
    expect(controller.queueDepth).toBe(0)
    expect(clock.pendingTimers).toBe(0)
  })
})
