import { describe, expect, it } from 'vitest'
import { PriorityQueue, QueueEntry } from '../src/priority-queue.js'

class Entry extends QueueEntry {
  constructor(
    readonly id: string,
    priority: number,
    at = 0,
  ) {
    super(priority, at)
  }
}

function ids(queue: PriorityQueue<Entry>): string[] {
  const out: string[] = []
  for (let e = queue.shift(); e !== undefined; e = queue.shift()) out.push(e.id)
  return out
}

describe('PriorityQueue', () => {
  it('serves higher priority first and FIFO within a priority', () => {
    const queue = new PriorityQueue<Entry>()
    for (const [id, p] of [
      ['a', 0],
      ['b', 5],
      ['c', 0],
      ['d', 5],
      ['e', -1],
      ['f', 10],
    ] as const) {
      queue.push(new Entry(id, p))
    }
    expect(queue.size).toBe(6)
    expect(ids(queue)).toEqual(['f', 'b', 'd', 'a', 'c', 'e'])
    expect(queue.size).toBe(0)
  })

  it('displaces the newest entry of the lowest priority', () => {
    const queue = new PriorityQueue<Entry>()
    queue.push(new Entry('low1', 0))
    queue.push(new Entry('high', 5))
    queue.push(new Entry('low2', 0))
    expect(queue.lowestPriority).toBe(0)
    expect(queue.popNewestOfLowest()?.id).toBe('low2')
    expect(queue.popNewestOfLowest()?.id).toBe('low1')
    expect(queue.lowestPriority).toBe(5)
  })

  it('removes from the middle and keeps the arrival order for the oldest', () => {
    const queue = new PriorityQueue<Entry>()
    const a = new Entry('a', 1, 1)
    const b = new Entry('b', 2, 2)
    const c = new Entry('c', 1, 3)
    queue.push(a)
    queue.push(b)
    queue.push(c)
    expect(queue.oldest).toBe(a)
    expect(queue.remove(a)).toBe(true)
    expect(queue.remove(a)).toBe(false)
    expect(a.queued).toBe(false)
    expect(queue.oldest).toBe(b)
    expect(ids(queue)).toEqual(['b', 'c'])
  })

  it('drops empty levels so arbitrary priorities do not accumulate', () => {
    const queue = new PriorityQueue<Entry>()
    for (let i = 0; i < 1000; i++) {
      queue.push(new Entry(String(i), i))
      queue.shift()
    }
    expect(queue.size).toBe(0)
    expect(queue.lowestPriority).toBeUndefined()
    expect((queue as unknown as { levels: unknown[] }).levels.length).toBe(0)
  })

  it('drains every entry oldest first', () => {
    const queue = new PriorityQueue<Entry>()
    queue.push(new Entry('a', 0))
    queue.push(new Entry('b', 9))
    expect(queue.drain().map((e) => e.id)).toEqual(['a', 'b'])
    expect(queue.size).toBe(0)
    expect(queue.shift()).toBeUndefined()
  })
})
