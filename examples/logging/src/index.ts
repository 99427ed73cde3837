import diagnosticsChannel from 'node:diagnostics_channel'
import type { BackpressureEvents, RejectInfo } from '@backpressure/core'
import type { Logger } from 'pino'

export interface RejectionLoggingOptions {
  /** Share of rejections logged, 0–1: under overload thousands are shed per second. @default 0.01 */
  readonly sampleRate?: number
  /** Injectable so tests are deterministic. @default Math.random */
  readonly random?: () => number
}

/**
 * Logs a sample of rejections with pino, from the two places core offers them:
 *
 * - `subscribe()` listens on the `backpressure:reject` diagnostics channel (every controller in the
 *   process, no option to pass). Core builds the event only while a subscriber exists, so with nobody
 *   listening a rejection costs nothing extra; `unsubscribe()` returns to that.
 * - `onReject` is the HTTP layer's hook (an option of every adapter): it also knows the method and path.
 *
 * Each log line carries `sampleRate`, so counts read from logs can be scaled back up; exact counts
 * belong to metrics (`backpressure_rejections_total{reason}`), not logs.
 */
export function rejectionLogger(logger: Logger, options: RejectionLoggingOptions = {}) {
  const sampleRate = options.sampleRate ?? 0.01
  if (typeof sampleRate !== 'number' || !(sampleRate >= 0 && sampleRate <= 1)) {
    throw new TypeError(`Expected \`sampleRate\` to be a number from 0 to 1, got ${String(sampleRate)}`)
  }
  const random = options.random ?? Math.random
  const log = logger.child({ component: 'backpressure' })

  const onChannel = (message: unknown): void => {
    if (random() >= sampleRate) return
    const event = message as BackpressureEvents['reject']
    log.warn(
      {
        controller: event.name,
        reason: event.reason,
        retryAfter: event.retryAfterSeconds,
        queueDepth: event.queueDepth,
        inFlight: event.inFlight,
        sampleRate,
      },
      'request rejected',
    )
  }

  return {
    subscribe(): void {
      diagnosticsChannel.subscribe('backpressure:reject', onChannel)
    },
    unsubscribe(): void {
      diagnosticsChannel.unsubscribe('backpressure:reject', onChannel)
    },
    /** Pass as the adapters' `onReject` option. */
    onReject(info: RejectInfo): void {
      if (random() >= sampleRate) return
      log.warn(
        {
          reason: info.reason,
          status: info.status,
          retryAfter: info.retryAfterSeconds,
          method: info.method,
          path: info.path,
          priority: info.priority,
          sampleRate,
        },
        'request rejected',
      )
    },
  }
}
