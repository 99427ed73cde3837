import type { BackpressureController } from '@backpressure/core'
import Fastify, { type FastifyRequest } from 'fastify'
import { describe, expectTypeOf, it } from 'vitest'
import backpressure, { type FastifyBackpressureOptions, backpressure as named } from '../src/index.js'

describe('types', () => {
  it('types the decorator, the route config and the options', () => {
    expectTypeOf(named).toEqualTypeOf(backpressure)
    const app = Fastify()
    expectTypeOf(app.backpressure).toEqualTypeOf<BackpressureController>()
    expectTypeOf<FastifyBackpressureOptions['skip']>().toEqualTypeOf<
      ((req: FastifyRequest) => boolean) | undefined
    >()
    // Route config is checked: a priority number or false.
    app.get('/a', { config: { backpressure: { priority: 10 } } }, async () => 'a')
    app.get('/b', { config: { backpressure: false } }, async () => 'b')
    // @ts-expect-error priority must be a number
    app.get('/c', { config: { backpressure: { priority: 'high' } } }, async () => 'c')
  })
})
