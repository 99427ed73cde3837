import { readAgentLine } from '@backpressure/conformance'
import { describe, expect, it } from 'vitest'
import { backpressure, listenAgentCheck } from '../src/index.js'

describe('@backpressure/koa agent check', () => {
  it('answers HAProxy with the free share of the middleware controller, then drain', async () => {
    const limiter = backpressure({ maxConcurrency: 10 })
    const agent = await listenAgentCheck(limiter.controller, { port: 0, host: '127.0.0.1' })
    try {
      expect(await readAgentLine(agent.port)).toBe('up 100%\n')
      await limiter.close()
      expect(await readAgentLine(agent.port)).toBe('drain\n')
    } finally {
      await agent.close()
    }
  })
})
