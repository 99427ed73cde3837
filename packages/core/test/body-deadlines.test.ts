import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { BodyDeadlines } from '../src/body-deadlines.js'
import { BackpressureController, ManualClock, type Permit } from '../src/index.js'
import { RequestState } from '../src/request-state.js'

function admitted(controller: BackpressureController, complete: boolean) {
  const res = Object.assign(new EventEmitter(), {
    socket: {},
    headersSent: false,
    destroyed: false,
    req: { complete, socket: { destroyed: false } },
  })
  const state = new RequestState({ controller, abandonAfterMs: () => 1000 }, res as never, undefined)
  state.hold(controller.admit(0) as Permit, null)
  return state
}

describe('body deadlines', () => {
  it('keep no released request alive until its turn, and time out only requests still holding their slot', () => {
    const clock = new ManualClock(0)
    // Shedding for the event loop off: the test counts the body deadlines' timer alone.
    const controller = new BackpressureController({ clock, maxConcurrency: 10, eventLoopShedding: false })
    const timedOut: RequestState[] = []
    const deadlines = new BodyDeadlines(clock, 1000, (state) => {
      timedOut.push(state)
      state.release()
    })
    const finished = admitted(controller, false)
    const slow = admitted(controller, false)
    const arrived = admitted(controller, true)
    for (const state of [finished, slow, arrived]) deadlines.add(state)
    finished.release()
    // The released request's entry no longer points at it (nor at its response and body).
    expect(finished.bodyWatch).toBeUndefined()
    expect(slow.bodyWatch?.state).toBe(slow)
    clock.advance(1000)
    expect(timedOut).toEqual([slow])
    expect(controller.inFlight).toBe(1)
    expect(clock.pendingTimers).toBe(0)
  })
})
