import type { Writable } from 'node:stream'
import { describe, expectTypeOf, it } from 'vitest'
import type {
  BackpressureController,
  BackpressureError,
  BackpressureEvents,
  BackpressureOptions,
  BackpressureStats,
  HttpBackpressureOptions,
  MapOptions,
  Permit,
  REJECTION_REASONS,
  Rejection,
  RejectionReason,
  WritableOptions,
} from '../src/index.js'

// Compile-time checks of the public API: these fail `pnpm typecheck` (and vitest's typecheck) when a
// signature drifts.
describe('public types', () => {
  it('admission returns permits, rejections or a promise of either', () => {
    expectTypeOf<BackpressureController['admit']>().returns.toEqualTypeOf<
      Permit | Rejection | Promise<Permit | Rejection>
    >()
    expectTypeOf<BackpressureController['acquire']>().returns.toEqualTypeOf<Promise<Permit>>()
    expectTypeOf<BackpressureController['tryAcquire']>().returns.toEqualTypeOf<Permit | Rejection>()
    expectTypeOf<BackpressureController['submit']>().toBeFunction()
    expectTypeOf<ReturnType<BackpressureController['stats']>>().toEqualTypeOf<BackpressureStats>()
  })

  it('map yields what fn resolves to; writable is an object-mode stream.Writable', () => {
    const controller = {} as BackpressureController
    const mapped = () =>
      controller.map([1, 2], async (item: number, signal: AbortSignal) => `${item}${signal.aborted}`)
    expectTypeOf(mapped).returns.toEqualTypeOf<AsyncIterableIterator<string>>()
    const plain = () => controller.map(new Set(['a']), (item) => item.length, { ordered: true, priority: 1 })
    expectTypeOf(plain).returns.toEqualTypeOf<AsyncIterableIterator<number>>()
    expectTypeOf<ReturnType<BackpressureController['writable']>>().toEqualTypeOf<Writable>()
    expectTypeOf<{ ordered: 'yes' }>().not.toExtend<MapOptions>()
    expectTypeOf<{ highWaterMark: 4; priority: 2; signal: AbortSignal }>().toExtend<WritableOptions>()
  })

  it('reasons are a closed union shared by errors, rejections, stats and events', () => {
    expectTypeOf<RejectionReason>().toEqualTypeOf<keyof typeof REJECTION_REASONS>()
    expectTypeOf<Rejection['reason']>().toEqualTypeOf<RejectionReason>()
    expectTypeOf<BackpressureError['reason']>().toEqualTypeOf<RejectionReason>()
    expectTypeOf<BackpressureError['status']>().toEqualTypeOf<503 | 429>()
    expectTypeOf<BackpressureStats['rejections']>().toEqualTypeOf<Readonly<Record<RejectionReason, number>>>()
    expectTypeOf<BackpressureEvents['reject']['reason']>().toEqualTypeOf<RejectionReason>()
    expectTypeOf<'queue_full'>().toExtend<RejectionReason>()
    expectTypeOf<'not_a_reason'>().not.toExtend<RejectionReason>()
  })

  it('options accept the documented forms and nothing else', () => {
    expectTypeOf<{ maxConcurrency: 10 }>().toExtend<BackpressureOptions>()
    expectTypeOf<{ maxConcurrency: 'adaptive' }>().toExtend<BackpressureOptions>()
    expectTypeOf<{
      maxConcurrency: { algorithm: 'aimd'; latencyTargetMs: 50 }
    }>().toExtend<BackpressureOptions>()
    expectTypeOf<{ retryAfter: { min: 1; max: 3 } }>().toExtend<BackpressureOptions>()
    expectTypeOf<{ retryAfter: 'adaptive' }>().toExtend<BackpressureOptions>()
    expectTypeOf<{ retryAfter: 'later' }>().not.toExtend<BackpressureOptions>()
    expectTypeOf<{ maxQueueDepth: '10' }>().not.toExtend<BackpressureOptions>()
    expectTypeOf<{ priority: (req: { url: string }) => number }>().toExtend<
      HttpBackpressureOptions<{ url: string }>
    >()
    expectTypeOf<{ routes: [{ path: '/a'; priority: 1 }] }>().toExtend<HttpBackpressureOptions<unknown>>()
  })
})
