import { Writable } from 'node:stream'
import { BackpressureController, DIAGNOSTICS_CHANNELS, HttpBackpressure } from '@backpressure/core'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { rejectionLogger } from '../src/index.js'

function capture() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    },
  })
  return { logger: pino({ base: null }, stream), lines }
}

/** Every tenth draw is below 0.1: exactly one rejection in ten is logged. */
function everyTenth() {
  let n = 0
  return () => (n++ % 10 === 0 ? 0 : 0.5)
}

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

describe('rejections logged to pino at a sampled rate', () => {
  it('logs one in ten rejections from the diagnostics channel, and nothing is published once unsubscribed', async () => {
    const { logger, lines } = capture()
    const logging = rejectionLogger(logger, { sampleRate: 0.1, random: everyTenth() })
    expect(DIAGNOSTICS_CHANNELS.reject.hasSubscribers).toBe(false)
    logging.subscribe()
    cleanups.push(() => logging.unsubscribe())
    expect(DIAGNOSTICS_CHANNELS.reject.hasSubscribers).toBe(true)

    const controller = new BackpressureController({ name: 'orders', maxConcurrency: 1, maxQueueDepth: 0 })
    const permit = controller.tryAcquire()
    for (let i = 0; i < 100; i++) controller.tryAcquire()
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toHaveLength(10)
    expect(lines[0]).toMatchObject({
      level: 40,
      component: 'backpressure',
      controller: 'orders',
      reason: 'concurrency_limit',
      inFlight: 1,
      sampleRate: 0.1,
      msg: 'request rejected',
    })

    logging.unsubscribe()
    // With nobody listening, core does not even build the event.
    expect(DIAGNOSTICS_CHANNELS.reject.hasSubscribers).toBe(false)
    for (let i = 0; i < 100; i++) controller.tryAcquire()
    expect(lines).toHaveLength(10)
    if ('release' in permit) permit.release()
    await controller.close()
  })

  it('logs through the onReject hook of the HTTP layer, with method and path', async () => {
    const { logger, lines } = capture()
    const logging = rejectionLogger(logger, { sampleRate: 0.1, random: everyTenth() })
    const http = new HttpBackpressure({ maxConcurrency: 1, maxQueueDepth: 0, onReject: logging.onReject })
    const permit = http.controller.tryAcquire()
    const fakeResponse = () =>
      ({ on() {}, destroyed: false, req: { socket: { destroyed: false }, headers: {} } }) as never
    for (let i = 0; i < 20; i++) http.decide({}, 'POST', '/orders?x=1', fakeResponse())
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({
      reason: 'queue_full',
      status: 503,
      method: 'POST',
      path: '/orders',
      sampleRate: 0.1,
    })
    if ('release' in permit) permit.release()
    await http.close()
  })

  it('refuses a sample rate outside 0–1', () => {
    expect(() => rejectionLogger(capture().logger, { sampleRate: 2 })).toThrow(/sampleRate/)
  })
})
