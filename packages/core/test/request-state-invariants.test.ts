import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { HttpBackpressure, ManualClock, PASS, seededRandom } from '../src/index.js'

/** A response as the HTTP layer sees it: enough of ServerResponse, with its socket and request. */
class FakeResponse extends EventEmitter {
  destroyed = false
  writableEnded = false
  writableFinished = false
  headersSent = false
  socket: EventEmitter | null
  readonly req: {
    socket: EventEmitter & { destroyed: boolean }
    headers: Record<string, string>
    complete: boolean
  }

  constructor(socket: EventEmitter & { destroyed: boolean }, pipelined: boolean) {
    super()
    this.socket = pipelined ? null : socket
    this.req = { socket, headers: {}, complete: true }
  }

  end(): this {
    this.headersSent = true
    this.writableEnded = true
    return this
  }

  writeHead(): this {
    this.headersSent = true
    return this
  }

  /** The response went out in full. */
  finish(): void {
    this.end()
    this.writableFinished = true
    this.emit('close')
  }

  /** The client left before the response finished. */
  leave(): void {
    this.destroyed = true
    if (this.socket !== null) this.emit('close')
    this.req.socket.destroyed = true
    this.req.socket.emit('close')
  }
}

interface Request {
  res: FakeResponse
  state: 'deciding' | 'running' | 'done' | 'refused'
  gone: boolean
  leftAt: number
  routeEnded: boolean
}

/**
 * Random arrivals, finishes, departures (pipelined or not, before and after admission), route ends,
 * responses ended after the client left, and time passing past the abandonment bound: after every
 * step the controller's books match the requests, and no permit goes back twice or is kept.
 */
describe('request state: randomized invariants', () => {
  it.each([11, 12, 13, 14, 15])('releases every permit exactly once (seed %i)', async (seed) => {
    const rand = seededRandom(seed)
    const clock = new ManualClock(0)
    const http = new HttpBackpressure<unknown>({
      clock,
      random: seededRandom(seed + 1),
      maxConcurrency: 1 + Math.floor(rand() * 3),
      maxQueueDepth: Math.floor(rand() * 4),
      maxQueueWaitMs: 40,
      abandonAfterMs: 25,
      adaptiveRejection: false,
    })
    const controller = http.controller
    let over = 0
    controller.on('admit', () => {})
    const original = controller._release.bind(controller)
    const released = new Set<unknown>()
    controller._release = (permit) => {
      if (released.has(permit)) over++
      released.add(permit)
      original(permit)
    }
    const all: Request[] = []
    const pick = (filter: (r: Request) => boolean) => {
      const list = all.filter(filter)
      return list[Math.floor(rand() * list.length)]
    }

    for (let step = 0; step < 2500; step++) {
      const roll = rand()
      if (roll < 0.35) {
        const socket = Object.assign(new EventEmitter(), { destroyed: false })
        const res = new FakeResponse(socket, rand() < 0.3)
        const request: Request = { res, state: 'deciding', gone: false, leftAt: 0, routeEnded: false }
        all.push(request)
        const decided = http.decide({}, 'GET', '/x', res as never)
        const settle = (decision: typeof decided) => {
          request.state = decision === PASS ? 'running' : 'refused'
        }
        if (decided instanceof Promise) void decided.then(settle)
        else settle(decided)
      } else if (roll < 0.55) {
        const r = pick((r) => r.state === 'running' && !r.gone)
        if (r !== undefined) {
          r.res.finish()
          r.state = 'done'
        }
      } else if (roll < 0.7) {
        const r = pick((r) => (r.state === 'running' || r.state === 'deciding') && !r.gone)
        if (r !== undefined) {
          r.gone = true
          r.leftAt = clock.now()
          r.res.leave()
        }
      } else if (roll < 0.8) {
        const r = pick((r) => r.state === 'running' && !r.routeEnded)
        if (r !== undefined) {
          r.routeEnded = true
          // Half the routes end their response (Express), half report that the handler settled (Koa).
          if (rand() < 0.5) r.res.end()
          else http.routeEnded(r.res as never)
        }
      } else {
        clock.advance(Math.floor(rand() * 20))
      }
      for (let i = 0; i < 4; i++) await Promise.resolve()

      // Still holding: running, and neither finished nor (gone with the route ended).
      const holding = all.filter((r) => r.state === 'running' && !(r.gone && r.routeEnded)).length
      expect(controller.inFlight).toBeLessThanOrEqual(holding)
      // And never too early: a client leaving gives nothing back while its route runs, until the bound.
      const mustHold = all.filter(
        (r) => r.state === 'running' && (!r.gone || (!r.routeEnded && clock.now() - r.leftAt < 25)),
      ).length
      expect(controller.inFlight).toBeGreaterThanOrEqual(mustHold)
      expect(controller.inFlight).toBeLessThanOrEqual(controller.limit)
      expect(over).toBe(0)
    }
    // The rest ends: every route ends or its bound passes; nothing is kept.
    for (const r of all) if (r.state === 'running' && !r.gone) r.res.finish()
    clock.advance(1000)
    for (let i = 0; i < 4; i++) await Promise.resolve()
    expect(controller.inFlight).toBe(0)
    expect(controller.queueDepth).toBe(0)
    expect(over).toBe(0)
    const stats = controller.stats()
    expect(stats.completed).toBe(stats.admitted)
    await http.close()
  })
})
