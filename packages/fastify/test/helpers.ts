import type { BackpressureController, BackpressureStats } from '@backpressure/core'

/** Polls the controller's stats until `check` holds; fails after `timeoutMs` (a bound, never an assertion). */
export async function until(
  controller: BackpressureController,
  check: (stats: BackpressureStats) => boolean,
  timeoutMs = 5000,
): Promise<BackpressureStats> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const stats = controller.stats()
    if (check(stats)) return stats
    if (Date.now() > deadline) {
      throw new Error(
        `stats never matched: inFlight ${stats.inFlight}, queueDepth ${stats.queueDepth}, rejected ${stats.rejected}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A promise resolved from outside: lets a route hold its slot until the test frees it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}
