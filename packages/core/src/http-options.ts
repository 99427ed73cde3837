import { type BackpressureOptions, CONTROLLER_OPTION_KEYS } from './controller.js'
import type { HttpBackpressureOptions } from './http.js'

/**
 * Which keys the HTTP layer's options may hold: the controller's, and its own. The layer refuses any
 * other key and hands the controller it makes only the controller's, since the controller refuses the
 * rest. Adapters that read options of their own (Fastify's `admitAfterBody`) add them to this list.
 */

/** Every key of HttpBackpressureOptions (the compiler keeps the two in step). */
export const HTTP_OPTION_KEYS: readonly string[] = [
  ...CONTROLLER_OPTION_KEYS,
  ...Object.keys({
    controller: true,
    priority: true,
    routes: true,
    skip: true,
    healthPath: true,
    readinessPath: true,
    metrics: true,
    onReject: true,
    deadlineHeader: true,
    rateLimit: true,
    circuitBreaker: true,
    abandonAfterMs: true,
    bodyTimeoutMs: true,
  } satisfies Record<Exclude<keyof HttpBackpressureOptions<unknown>, keyof BackpressureOptions>, true>),
]

/** The first of the controller's options that is set: none may be, when the layer is given a shared controller. */
export function controllerOptionSet(options: BackpressureOptions): keyof BackpressureOptions | undefined {
  return CONTROLLER_OPTION_KEYS.find((key) => (options as Record<string, unknown>)[key] !== undefined) as
    | keyof BackpressureOptions
    | undefined
}

/** The controller's own options, out of the HTTP layer's (a new object: the caller's is never touched). */
export function controllerOptions(options: BackpressureOptions): BackpressureOptions {
  const own: Record<string, unknown> = {}
  for (const key of CONTROLLER_OPTION_KEYS) {
    const value = (options as Record<string, unknown>)[key]
    if (value !== undefined) own[key] = value
  }
  return own
}
