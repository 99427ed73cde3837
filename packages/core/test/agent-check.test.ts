import { describe, expect, it } from 'vitest'
import { AgentCheck, InvalidOptionError, listenAgentCheck } from '../src/index.js'
import { admitNow, makeController } from './helpers.js'

describe('AgentCheck (HAProxy agent-check responder)', () => {
  it('reports the free share of the limit, never below 1%, 1% while requests wait, drain once closed', async () => {
    const { controller } = makeController({ maxConcurrency: 4, maxQueueDepth: 2 })
    const agent = new AgentCheck(controller, { port: 0 })
    expect(agent.reply()).toBe('up 100%\n')
    const permits = [admitNow(controller), admitNow(controller), admitNow(controller)]
    expect(agent.reply()).toBe('up 25%\n')
    permits.push(admitNow(controller))
    expect(agent.reply()).toBe('up 1%\n')
    const queued = controller.admit()
    expect(queued).toBeInstanceOf(Promise)
    permits.pop()?.release()
    // The freed slot went to the waiter: still full.
    expect(agent.reply()).toBe('up 1%\n')
    void controller.close()
    expect(agent.reply()).toBe('drain\n')
    for (const permit of permits) permit.release()
    await queued
  })

  it('reports full for a second after shedding for overload, whatever slots are free that instant', () => {
    const { controller, clock } = makeController({ maxConcurrency: 2, maxQueueDepth: 0 })
    const agent = new AgentCheck(controller, { port: 0 })
    const permits = [admitNow(controller), admitNow(controller)]
    expect(controller.admit()).not.toBeInstanceOf(Promise)
    for (const permit of permits) permit.release()
    // Both slots are free now, but a request was just turned away: the balancer must not herd here.
    expect(controller.inFlight).toBe(0)
    expect(agent.reply()).toBe('up 1%\n')
    clock.advance(1001)
    expect(agent.reply()).toBe('up 100%\n')
  })

  it.each([
    [{}, 'agentCheck.port', 'an integer from 0 to 65535'],
    [{ port: -1 }, 'agentCheck.port', 'an integer from 0 to 65535'],
    [{ port: 70000 }, 'agentCheck.port', 'an integer from 0 to 65535'],
    [{ port: 1.5 }, 'agentCheck.port', 'an integer from 0 to 65535'],
    [{ port: 0, host: '' }, 'agentCheck.host', 'a non-empty string'],
    [{ port: 0, prot: 1 }, 'agentCheck.prot', ''],
  ])('refuses %j at construction, naming %s', (options, name, expected) => {
    const { controller } = makeController()
    let error: unknown
    try {
      void listenAgentCheck(controller, options as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect((error as Error).message).toContain(name)
    expect((error as Error).message).toContain(expected)
  })

  it('refuses a non-object', () => {
    const { controller } = makeController()
    expect(() => new AgentCheck(controller, 9000 as never)).toThrow(InvalidOptionError)
  })
})
