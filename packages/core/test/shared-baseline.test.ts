import { describe, expect, it } from 'vitest'
import { ManualClock, MemoryBaselineBoard } from '../src/index.js'

describe('MemoryBaselineBoard', () => {
  it("answers the median of its members' fresh baselines", () => {
    const clock = new ManualClock(0)
    const board = new MemoryBaselineBoard({ clock, ttlMs: 30_000 })
    const [a, b, c] = [board.member(), board.member(), board.member()]
    expect(a.current()).toBeUndefined()
    a.publish(10)
    expect(c.current()).toBe(10)
    b.publish(12)
    expect(c.current()).toBe(11)
    c.publish(30)
    expect(a.current()).toBe(12)
    // A member's newer baseline replaces its older one.
    c.publish(11)
    expect(a.current()).toBe(11)
  })

  it('forgets a baseline older than ttlMs: a member that left stops counting', () => {
    const clock = new ManualClock(0)
    const board = new MemoryBaselineBoard({ clock, ttlMs: 1000 })
    const [a, b] = [board.member(), board.member()]
    a.publish(10)
    clock.advance(600)
    b.publish(20)
    expect(a.current()).toBe(15)
    clock.advance(500)
    expect(a.current()).toBe(20)
    clock.advance(501)
    expect(a.current()).toBeUndefined()
  })

  it('ignores baselines that are not positive finite numbers', () => {
    const board = new MemoryBaselineBoard({ clock: new ManualClock(0) })
    const m = board.member()
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) m.publish(bad)
    expect(m.current()).toBeUndefined()
  })

  it('refuses invalid options, naming them', () => {
    expect(() => new MemoryBaselineBoard({ ttlMs: 0 })).toThrow(/`ttlMs`/)
    expect(() => new MemoryBaselineBoard({ clock: {} as never })).toThrow(/`clock`.*now\(\)/)
    expect(() => new MemoryBaselineBoard({ ttl: 5000 } as never)).toThrow(/`ttl`.*`ttlMs`/)
    expect(() => new MemoryBaselineBoard(null as never)).toThrow(/`options`/)
  })
})
