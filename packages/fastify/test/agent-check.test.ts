import { readAgentLine } from '@backpressure/conformance'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { backpressure, listenAgentCheck } from '../src/index.js'

describe('@backpressure/fastify agent check', () => {
  it('answers HAProxy with the free share of the plugin controller, then drain', async () => {
    const app = Fastify()
    await app.register(backpressure, { maxConcurrency: 10 })
    await app.ready()
    const agent = await listenAgentCheck(app.backpressure, { port: 0, host: '127.0.0.1' })
    try {
      expect(await readAgentLine(agent.port)).toBe('up 100%\n')
      await app.close()
      expect(await readAgentLine(agent.port)).toBe('drain\n')
    } finally {
      await agent.close()
    }
  })
})
