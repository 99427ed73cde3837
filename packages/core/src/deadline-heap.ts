/**
 * Waiters ordered by their own deadline (a caller's declared budget), so each leaves the queue when its
 * deadline passes whatever its place in arrival order. The queue's shared wait bound expires waiters
 * in arrival order and needs no heap; only waiters with a deadline of their own are kept here, so the
 * default path pays nothing. A binary min-heap with each entry's index stored on it: push, pop and
 * removal from the middle are O(log n).
 */
export interface HeapEntry {
  readonly deadline: number
  /** @internal Position in the heap, -1 when not in it. */
  heapIndex: number
}

export class DeadlineHeap<E extends HeapEntry> {
  private readonly items: E[] = []

  get size(): number {
    return this.items.length
  }

  /** The entry whose deadline comes first. */
  get first(): E | undefined {
    return this.items[0]
  }

  push(entry: E): void {
    entry.heapIndex = this.items.length
    this.items.push(entry)
    this.up(entry.heapIndex)
  }

  /** Removes an entry from anywhere; false when it was not in the heap. */
  remove(entry: E): boolean {
    const index = entry.heapIndex
    if (index < 0 || this.items[index] !== entry) return false
    entry.heapIndex = -1
    const last = this.items.pop() as E
    if (index < this.items.length) {
      this.items[index] = last
      last.heapIndex = index
      this.down(index)
      this.up(last.heapIndex)
    }
    return true
  }

  clear(): void {
    for (const entry of this.items) entry.heapIndex = -1
    this.items.length = 0
  }

  private up(index: number): void {
    const items = this.items
    const entry = items[index] as E
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = items[parentIndex] as E
      if (parent.deadline <= entry.deadline) break
      items[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    items[index] = entry
    entry.heapIndex = index
  }

  private down(index: number): void {
    const items = this.items
    const length = items.length
    const entry = items[index] as E
    for (;;) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      const child =
        right < length && (items[right] as E).deadline < (items[left] as E).deadline ? right : left
      const smaller = items[child] as E
      if (smaller.deadline >= entry.deadline) break
      items[index] = smaller
      smaller.heapIndex = index
      index = child
    }
    items[index] = entry
    entry.heapIndex = index
  }
}
