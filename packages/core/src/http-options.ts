import { CircuitBreaker } from './circuit-breaker.js'
import { BackpressureController, type BackpressureOptions, CONTROLLER_OPTION_KEYS } from './controller.js'
import { InvalidOptionError } from './errors.js'
import type { HttpBackpressureOptions } from './http.js'
import { numberOption } from './validate.js'

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
function controllerOptionSet(options: BackpressureOptions): keyof BackpressureOptions | undefined {
  return CONTROLLER_OPTION_KEYS.find((key) => (options as Record<string, unknown>)[key] !== undefined) as
    | keyof BackpressureOptions
    | undefined
}

/** The controller's own options, out of the HTTP layer's (a new object: the caller's is never touched). */
function controllerOptions(options: BackpressureOptions): BackpressureOptions {
  const own: Record<string, unknown> = {}
  for (const key of CONTROLLER_OPTION_KEYS) {
    const value = (options as Record<string, unknown>)[key]
    if (value !== undefined) own[key] = value
  }
  return own
}

/** Node fires a longer timer after 1 ms; no bound of ours may be longer. */
export const MAX_TIMER_MS = 2_147_483_647

/** The layer's controller: the shared one it was given (then no controller option may be set), or its own. */
export function controllerOf(options: HttpBackpressureOptions<never>): {
  controller: BackpressureController
  owned: boolean
} {
  if (options.controller === undefined) {
    return { controller: new BackpressureController(controllerOptions(options)), owned: true }
  }
  if (!(options.controller instanceof BackpressureController)) {
    throw new InvalidOptionError('controller', 'a BackpressureController', options.controller)
  }
  const clash = controllerOptionSet(options)
  if (clash !== undefined) {
    throw new InvalidOptionError(
      clash,
      'unset when `controller` is given (configure the shared controller instead)',
      options[clash],
    )
  }
  return { controller: options.controller, owned: false }
}

/** A path option: a path starting with '/', `false` for none, or the default. */
export function pathOption(name: string, value: unknown, fallback: string): string | undefined {
  if (value === false) return undefined
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new InvalidOptionError(name, "a path starting with '/', or false", value)
  }
  return value
}

/** The header our client sends its remaining time in: read unless told otherwise. */
export const DEFAULT_DEADLINE_HEADER = 'x-request-timeout-ms'

/** The deadline header's name, lower-cased as Node keeps header names, or undefined when off. */
export function deadlineHeaderOption(value: unknown): string | undefined {
  if (value === undefined) return DEFAULT_DEADLINE_HEADER
  if (value === false) return undefined
  if (typeof value !== 'string' || value === '') {
    throw new InvalidOptionError('deadlineHeader', 'a header name or false', value)
  }
  return value.toLowerCase()
}

/** A CircuitBreaker, or anything with its `retryAfterSeconds()` (a breaker of the user's). */
export function circuitBreakerOption(value: unknown): CircuitBreaker | undefined {
  if (
    value !== undefined &&
    !(value instanceof CircuitBreaker) &&
    (typeof value !== 'object' ||
      value === null ||
      typeof (value as CircuitBreaker).retryAfterSeconds !== 'function')
  ) {
    throw new InvalidOptionError('circuitBreaker', 'a CircuitBreaker', value)
  }
  return value as CircuitBreaker | undefined
}

/** A duration a timer will wait: above 0 and no longer than Node's timers allow. */
export function timerOption<D extends number | undefined>(
  name: string,
  value: unknown,
  fallback: D,
): number | D {
  if (value === undefined) return fallback
  return numberOption(name, value, 0, 0, MAX_TIMER_MS, true)
}
