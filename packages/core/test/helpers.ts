import { type MockInstance, vi } from 'vitest'
import {
  BackpressureController,
  type BackpressureOptions,
  ManualClock,
  Permit,
  type Rejection,
  seededRandom,
} from '../src/index.js'

/** A controller on a manual clock and a seeded random source: no real time, reproducible draws. */
export function makeController(options: BackpressureOptions = {}, seed = 1) {
  const clock = new ManualClock(1000)
  const controller = new BackpressureController({ clock, random: seededRandom(seed), ...options })
  return { clock, controller }
}

/** Admits and asserts an immediate permit. */
export function admitNow(controller: BackpressureController, priority = 0): Permit {
  const result = controller.admit(priority)
  if (!(result instanceof Permit)) throw new Error(`expected an immediate permit, got ${describe(result)}`)
  return result
}

/** Records the outcome of a queued admission as it settles. */
export function track(result: Permit | Rejection | Promise<Permit | Rejection>) {
  const box: { value: Permit | Rejection | undefined } = { value: undefined }
  if (result instanceof Promise) void result.then((v) => (box.value = v))
  else box.value = result
  return box
}

/** Lets settled promises' callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

function describe(value: unknown): string {
  return value instanceof Promise ? 'a promise (queued)' : JSON.stringify(value)
}

/**
 * Takes over process.emitWarning until `mockRestore()`, so a warning a test provokes on purpose is
 * asserted from the spy's calls instead of printed as `(node:…) Error: …` among the run's output.
 */
export function captureWarnings(): MockInstance<typeof process.emitWarning> {
  return vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
}
