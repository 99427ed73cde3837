import diagnosticsChannel from 'node:diagnostics_channel'
import type { RejectionReason } from './errors.js'

/** Payloads of the controller's events; built only when someone listens or subscribes. */
export interface BackpressureEvents {
  /** A request started work (at once or after waiting). */
  admit: { readonly name: string; readonly priority: number; readonly queuedMs: number }
  /** A request joined the queue. */
  queue: { readonly name: string; readonly priority: number; readonly queueDepth: number }
  /** A request was turned away (or dropped from the queue). */
  reject: {
    readonly name: string
    readonly reason: RejectionReason
    readonly priority: number
    readonly retryAfterSeconds: number
    readonly queueDepth: number
    readonly inFlight: number
  }
  /** A permit was released after the abandonment bound: its client left and its route never ended. */
  abandon: { readonly name: string; readonly heldMs: number }
  /** The concurrency limit changed. */
  limit: { readonly name: string; readonly previous: number; readonly limit: number }
}

export type BackpressureEventName = keyof BackpressureEvents
export type BackpressureListener<E extends BackpressureEventName> = (event: BackpressureEvents[E]) => void

/**
 * `diagnostics_channel` names, one per event: `backpressure:admit`, `backpressure:queue`,
 * `backpressure:reject`, `backpressure:limit`, `backpressure:abandon`. Messages are published only while a subscriber exists.
 */
export const DIAGNOSTICS_CHANNELS = {
  admit: diagnosticsChannel.channel('backpressure:admit'),
  queue: diagnosticsChannel.channel('backpressure:queue'),
  reject: diagnosticsChannel.channel('backpressure:reject'),
  limit: diagnosticsChannel.channel('backpressure:limit'),
  abandon: diagnosticsChannel.channel('backpressure:abandon'),
} as const

/**
 * A minimal typed emitter. `wants(event)` lets the hot path skip building a payload when neither a
 * listener nor a diagnostics subscriber would see it.
 */
export class EventHub {
  private readonly listeners: { [E in BackpressureEventName]: BackpressureListener<E>[] } = {
    admit: [],
    queue: [],
    reject: [],
    limit: [],
    abandon: [],
  }

  wants(event: BackpressureEventName): boolean {
    return this.listeners[event].length > 0 || DIAGNOSTICS_CHANNELS[event].hasSubscribers
  }

  on<E extends BackpressureEventName>(event: E, listener: BackpressureListener<E>): () => void {
    const list = this.listeners[event] as BackpressureListener<E>[]
    list.push(listener)
    return () => {
      const index = list.indexOf(listener)
      if (index !== -1) list.splice(index, 1)
    }
  }

  emit<E extends BackpressureEventName>(event: E, payload: BackpressureEvents[E]): void {
    const list = this.listeners[event] as BackpressureListener<E>[]
    for (let i = 0; i < list.length; i++) {
      // A throwing listener must not break admission or leak a permit; it is reported, not rethrown.
      try {
        ;(list[i] as BackpressureListener<E>)(payload)
      } catch (error) {
        process.emitWarning(
          error instanceof Error ? error : new Error(String(error)),
          'BackpressureListenerWarning',
        )
      }
    }
    const channel = DIAGNOSTICS_CHANNELS[event]
    if (channel.hasSubscribers) channel.publish(payload)
  }
}
