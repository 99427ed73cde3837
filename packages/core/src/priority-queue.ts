/**
 * The waiting room: higher priority first, FIFO within a priority.
 *
 * Every entry sits in two intrusive doubly-linked lists at once: its priority level's list (for
 * dequeue order and for displacing the newest of the lowest level) and one arrival list across all
 * levels (whose head is always the oldest waiter, so one timer can expire waits in order). Because
 * the links live on the entry itself, enqueue, dequeue, displacement and removal from the middle (an
 * aborted client) are all O(1) with no array shifting and no allocation beyond the entry. Levels are
 * kept in a small sorted array; real traffic has a handful of distinct priorities, and an empty level
 * is dropped so arbitrary priority values cannot grow it without bound.
 */
export class QueueEntry {
  /** @internal */ levelPrev: QueueEntry | undefined = undefined
  /** @internal */ levelNext: QueueEntry | undefined = undefined
  /** @internal */ arrivalPrev: QueueEntry | undefined = undefined
  /** @internal */ arrivalNext: QueueEntry | undefined = undefined
  /** @internal */ level: Level | undefined = undefined

  constructor(
    readonly priority: number,
    readonly enqueuedAt: number,
  ) {}

  get queued(): boolean {
    return this.level !== undefined
  }
}

class Level {
  head: QueueEntry | undefined = undefined
  tail: QueueEntry | undefined = undefined
  size = 0

  constructor(readonly priority: number) {}
}

export class PriorityQueue<E extends QueueEntry> {
  /** Ascending by priority: the last level is served first, the first is displaced first. */
  private readonly levels: Level[] = []
  private arrivalHead: E | undefined = undefined
  private arrivalTail: E | undefined = undefined
  private count = 0

  get size(): number {
    return this.count
  }

  /** The entry that has waited longest, whatever its priority. */
  get oldest(): E | undefined {
    return this.arrivalHead
  }

  /** The entry that arrived last, whatever its priority. */
  get newest(): E | undefined {
    return this.arrivalTail
  }

  /** Lowest priority with an entry waiting, or undefined when empty. */
  get lowestPriority(): number | undefined {
    return this.levels[0]?.priority
  }

  push(entry: E): void {
    const level = this.levelFor(entry.priority)
    entry.level = level
    entry.levelPrev = level.tail
    entry.levelNext = undefined
    if (level.tail === undefined) level.head = entry
    else level.tail.levelNext = entry
    level.tail = entry
    level.size++

    entry.arrivalPrev = this.arrivalTail
    entry.arrivalNext = undefined
    if (this.arrivalTail === undefined) this.arrivalHead = entry
    else this.arrivalTail.arrivalNext = entry
    this.arrivalTail = entry
    this.count++
  }

  /** Removes and returns the oldest entry of the highest priority. */
  shift(): E | undefined {
    const level = this.levels[this.levels.length - 1]
    if (level === undefined) return undefined
    const entry = level.head as E
    this.remove(entry)
    return entry
  }

  /** The oldest entry of the lowest priority: the first to shed for waiting too long. */
  get oldestOfLowest(): E | undefined {
    return this.levels[0]?.head as E | undefined
  }

  /** Removes and returns the newest entry of the lowest priority: the one to displace. */
  popNewestOfLowest(): E | undefined {
    const level = this.levels[0]
    if (level === undefined) return undefined
    const entry = level.tail as E
    this.remove(entry)
    return entry
  }

  /** Removes and returns the newest entry of the highest priority: adaptive LIFO serves this first. */
  popNewestOfHighest(): E | undefined {
    const level = this.levels[this.levels.length - 1]
    if (level === undefined) return undefined
    const entry = level.tail as E
    this.remove(entry)
    return entry
  }

  /** Removes an entry from anywhere in the queue; false when it was not queued. */
  remove(entry: E): boolean {
    const level = entry.level
    if (level === undefined) return false

    if (entry.levelPrev === undefined) level.head = entry.levelNext
    else entry.levelPrev.levelNext = entry.levelNext
    if (entry.levelNext === undefined) level.tail = entry.levelPrev
    else entry.levelNext.levelPrev = entry.levelPrev
    level.size--
    if (level.size === 0) this.dropLevel(level)

    if (entry.arrivalPrev === undefined) this.arrivalHead = entry.arrivalNext as E | undefined
    else entry.arrivalPrev.arrivalNext = entry.arrivalNext
    if (entry.arrivalNext === undefined) this.arrivalTail = entry.arrivalPrev as E | undefined
    else entry.arrivalNext.arrivalPrev = entry.arrivalPrev

    entry.level = undefined
    entry.levelPrev = entry.levelNext = entry.arrivalPrev = entry.arrivalNext = undefined
    this.count--
    return true
  }

  /** Removes and returns every entry, oldest first. */
  drain(): E[] {
    const all: E[] = []
    let entry = this.arrivalHead
    while (entry !== undefined) {
      const next = entry.arrivalNext as E | undefined
      all.push(entry)
      entry.level = undefined
      entry.levelPrev = entry.levelNext = entry.arrivalPrev = entry.arrivalNext = undefined
      entry = next
    }
    this.levels.length = 0
    this.arrivalHead = this.arrivalTail = undefined
    this.count = 0
    return all
  }

  private levelFor(priority: number): Level {
    const levels = this.levels
    // The common case is one level, or the level at the top: check the ends before searching.
    const top = levels[levels.length - 1]
    if (top !== undefined && top.priority === priority) return top
    let low = 0
    let high = levels.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if ((levels[mid] as Level).priority < priority) low = mid + 1
      else high = mid
    }
    const found = levels[low]
    if (found !== undefined && found.priority === priority) return found
    const level = new Level(priority)
    levels.splice(low, 0, level)
    return level
  }

  private dropLevel(level: Level): void {
    const index = this.levels.indexOf(level)
    if (index !== -1) this.levels.splice(index, 1)
  }
}
