import {
  type EventLoopUtilization,
  type IntervalHistogram,
  monitorEventLoopDelay,
  performance,
} from 'node:perf_hooks'
import type { Clock, TimerHandle } from './clock.js'
import type { RejectionReason } from './errors.js'

/** One reading of the process, taken once per sample interval. */
export interface ProcessSample {
  /** A high percentile (p99) of event-loop delay over the last interval, in ms. */
  readonly eventLoopDelayMs: number
  /** Event-loop utilization (0–1) over the last interval, not since start. */
  readonly eventLoopUtilization: number
  readonly heapUsedBytes: number
  readonly rssBytes: number
}

export interface ProcessLimits {
  readonly maxEventLoopDelayMs: number | undefined
  readonly maxEventLoopUtilization: number | undefined
  readonly maxHeapUsedBytes: number | undefined
  readonly maxRssBytes: number | undefined
}

/** Reads the process; injectable so tests can drive the signals without loading a real event loop. */
export type ProcessSampler = () => ProcessSample

/**
 * Samples the process on one unref'd timer and keeps the verdict in a field, so admission reads a
 * value instead of measuring anything per request (under-pressure does the same).
 */
export class ProcessSignals {
  /** Why the process is overloaded right now, or undefined. */
  overloadReason: RejectionReason | undefined = undefined
  last: ProcessSample = { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0, rssBytes: 0 }
  private timer: TimerHandle | undefined
  private readonly tick = (): void => {
    this.last = this.sampler()
    this.overloadReason = judge(this.last, this.limits)
    this.timer = this.clock.setTimeout(this.tick, this.intervalMs)
  }

  constructor(
    private readonly limits: ProcessLimits,
    private readonly intervalMs: number,
    private readonly clock: Clock,
    private readonly sampler: ProcessSampler,
  ) {}

  start(): void {
    if (this.timer === undefined) this.timer = this.clock.setTimeout(this.tick, this.intervalMs)
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.overloadReason = undefined
  }
}

function judge(sample: ProcessSample, limits: ProcessLimits): RejectionReason | undefined {
  if (limits.maxEventLoopDelayMs !== undefined && sample.eventLoopDelayMs > limits.maxEventLoopDelayMs) {
    return 'event_loop_delay'
  }
  if (
    limits.maxEventLoopUtilization !== undefined &&
    sample.eventLoopUtilization > limits.maxEventLoopUtilization
  ) {
    return 'event_loop_utilization'
  }
  if (limits.maxHeapUsedBytes !== undefined && sample.heapUsedBytes > limits.maxHeapUsedBytes) return 'heap'
  if (limits.maxRssBytes !== undefined && sample.rssBytes > limits.maxRssBytes) return 'rss'
  return undefined
}

/** The real sampler: perf_hooks' event-loop delay histogram and ELU, reset every interval. */
export function createNodeSampler(limits: ProcessLimits): { sampler: ProcessSampler; stop: () => void } {
  let delay: IntervalHistogram | undefined
  if (limits.maxEventLoopDelayMs !== undefined) {
    delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
  }
  let lastElu: EventLoopUtilization = performance.eventLoopUtilization()
  const sampler: ProcessSampler = () => {
    let eventLoopDelayMs = 0
    if (delay !== undefined) {
      // The histogram counts from the start of each sample, so a stall long ago does not linger.
      eventLoopDelayMs = Math.max(0, delay.percentile(99) / 1e6 - 10)
      delay.reset()
    }
    const elu = performance.eventLoopUtilization(lastElu)
    lastElu = performance.eventLoopUtilization()
    const needsMemory = limits.maxHeapUsedBytes !== undefined || limits.maxRssBytes !== undefined
    const memory = needsMemory ? process.memoryUsage() : undefined
    return {
      eventLoopDelayMs,
      eventLoopUtilization: elu.utilization,
      heapUsedBytes: memory?.heapUsed ?? 0,
      rssBytes: memory?.rss ?? 0,
    }
  }
  return { sampler, stop: () => delay?.disable() }
}
