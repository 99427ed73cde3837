import {
  createGate,
  type Gate,
  globalSection,
  HAPROXY_SKIP_MESSAGE,
  type Haproxy,
  haproxyAvailable,
  readAgentLine,
  type StartedServer,
  serve,
  startHaproxy,
  until,
} from '@backpressure/conformance'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { type AgentCheck, backpressure, listenAgentCheck } from '../src/index.js'

// The HAProxy settings docs/fleet.md recommends, against a real HAProxy and real instances: agent
// weights, drain on close, retry-on 503 with redispatch for idempotent requests, readiness and liveness.

if (!haproxyAvailable) console.warn(HAPROXY_SKIP_MESSAGE)

interface Instance {
  readonly name: string
  readonly server: StartedServer
  readonly port: number
  readonly agent: AgentCheck
  readonly limiter: ReturnType<typeof backpressure>
  /** Requests to /work that reached this instance (admitted or not), by method. */
  readonly arrived: { GET: number; POST: number }
  /** While set, /work waits on it: the instance's slots stay taken. */
  hold: Gate | undefined
}

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function instance(name: string, maxConcurrency: number): Promise<Instance> {
  const app = express()
  const limiter = backpressure({ maxConcurrency, maxQueueDepth: 0 })
  const self: Instance = {
    name,
    limiter,
    arrived: { GET: 0, POST: 0 },
    hold: undefined,
  } as unknown as Instance
  app.use((req, _res, next) => {
    if (req.path === '/work' && (req.method === 'GET' || req.method === 'POST')) self.arrived[req.method]++
    next()
  })
  app.use(limiter)
  const work = async (_req: express.Request, res: express.Response) => {
    if (self.hold !== undefined) await self.hold.promise
    res.send(name)
  }
  app.get('/work', work)
  app.post('/work', work)
  const server = await serve(app, limiter.controller, () => limiter.close())
  const agent = await listenAgentCheck(limiter.controller, { port: 0, host: '127.0.0.1' })
  Object.assign(self, { server, agent, port: Number(new URL(server.url).port) })
  cleanup.push(async () => {
    self.hold?.open()
    await server.close()
    await agent.close()
  })
  return self
}

/** Takes every slot of `target` with requests sent straight to it, held until `release()`. */
async function fill(target: Instance, slots: number): Promise<() => Promise<void>> {
  target.hold = createGate()
  const pending = Array.from({ length: slots }, () =>
    fetch(`${target.server.url}/work`).then((r) => r.text()),
  )
  await until(() => target.limiter.controller.inFlight === slots, `${target.name} full`)
  return async () => {
    target.hold?.open()
    target.hold = undefined
    await Promise.all(pending)
  }
}

function serverLine(i: Instance, extra: string): string {
  return `  server ${i.name} 127.0.0.1:${i.port} ${extra}`
}

async function haproxy(backend: string): Promise<Haproxy> {
  const proxy = await startHaproxy(
    (port, socket) => `${globalSection(socket)}
frontend fe
  bind 127.0.0.1:${port}
  default_backend app

${backend}`,
  )
  cleanup.push(() => proxy.stop())
  return proxy
}

async function waitFor(
  proxy: Haproxy,
  condition: (rows: Awaited<ReturnType<Haproxy['servers']>>) => boolean,
  what: string,
  backend = 'app',
): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const rows = await proxy.servers(backend)
    if (condition(rows)) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(rows)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const byName = (rows: Awaited<ReturnType<Haproxy['servers']>>, name: string) =>
  rows.find((row) => row.name === name)

async function send(url: string, count: number, method = 'GET'): Promise<Record<string, number>> {
  const answers: Record<string, number> = {}
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${url}/work`, { method })
    const body = await res.text()
    const key = res.status === 200 ? body : String(res.status)
    answers[key] = (answers[key] ?? 0) + 1
  }
  return answers
}

describe.skipIf(!haproxyAvailable)('behind a real HAProxy', () => {
  it('the agent reports the free share of the limit, and drain once closing', async () => {
    const a = await instance('a', 4)
    expect(await readAgentLine(a.agent.port)).toBe('up 100%\n')
    const release = await fill(a, 3)
    expect(await readAgentLine(a.agent.port)).toBe('up 25%\n')
    await release()
    const closing = a.limiter.close()
    expect(await readAgentLine(a.agent.port)).toBe('drain\n')
    await closing
  })

  it('agent weights move traffic away from a full instance, and drain takes one out on close', async () => {
    const instances = await Promise.all(['a', 'b', 'c'].map((name) => instance(name, 4)))
    const [a, b, c] = instances as [Instance, Instance, Instance]
    const proxy = await haproxy(`backend app
  balance roundrobin
${instances.map((i) => serverLine(i, `weight 100 agent-check agent-port ${i.agent.port} agent-inter 100ms`)).join('\n')}
`)
    await waitFor(proxy, (rows) => rows.every((row) => row.weight === 100), 'agents up')
    const release = await fill(a, 4)
    await waitFor(proxy, (rows) => byName(rows, 'a')?.weight === 1, 'a at 1%')
    const before = a.arrived.GET
    const full = await send(proxy.url, 60)
    // Weight 1 of 201: a full instance gets almost nothing (round-robin would have sent it 20).
    expect(a.arrived.GET - before).toBeLessThanOrEqual(3)
    expect((full.b ?? 0) + (full.c ?? 0)).toBeGreaterThanOrEqual(57)
    await release()
    await waitFor(proxy, (rows) => byName(rows, 'a')?.weight === 100, 'a back at 100%')

    // Closing b's controller: its agent answers drain, HAProxy sends it nothing new.
    await b.limiter.close()
    await waitFor(proxy, (rows) => byName(rows, 'b')?.status.startsWith('DRAIN') === true, 'b draining')
    const beforeB = b.arrived.GET
    const drained = await send(proxy.url, 30)
    expect(b.arrived.GET).toBe(beforeB)
    expect((drained.a ?? 0) + (drained.c ?? 0)).toBe(30)
    expect(c.arrived.GET).toBeGreaterThan(0)
  })

  it('retry-on 503 with redispatch tries a shed GET once on another instance, never a POST', async () => {
    const [a, b] = (await Promise.all(['a', 'b'].map((name) => instance(name, 1)))) as [Instance, Instance]
    const proxy = await haproxy(`backend app
  balance roundrobin
  retry-on 503
  retries 1
  option redispatch 1
  http-request disable-l7-retry if !METH_GET
${[a, b].map((i) => serverLine(i, 'weight 100')).join('\n')}
`)
    const release = await fill(a, 1)
    const gets = await send(proxy.url, 20)
    // Every GET that a shed went on to b, once: all 20 answered by b, about half first tried on a.
    expect(gets).toEqual({ b: 20 })
    expect(a.arrived.GET - 1).toBeGreaterThanOrEqual(5)
    expect(b.arrived.GET).toBe(20)
    const aPosts = a.arrived.POST
    const posts = await send(proxy.url, 20, 'POST')
    // A POST is not retried: a's 503 reaches the client (with its Retry-After), b serves the rest.
    expect(posts['503']).toBe(a.arrived.POST - aPosts)
    expect(posts['503']).toBeGreaterThanOrEqual(5)
    expect((posts['503'] ?? 0) + (posts.b ?? 0)).toBe(20)
    expect(b.arrived.POST).toBe(posts.b)
    await release()
  })

  it('readiness keeps an overloaded instance in, takes a closing one out; liveness never fails on overload', async () => {
    const [a, b] = (await Promise.all(['a', 'b'].map((name) => instance(name, 1)))) as [Instance, Instance]
    const check = 'weight 100 check inter 100ms fall 2 rise 1'
    const proxy = await haproxy(`backend app
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
${[a, b].map((i) => serverLine(i, check)).join('\n')}

backend live
  option httpchk GET /health
  http-check expect status 200
${[a, b].map((i) => serverLine(i, check)).join('\n')}
`)
    await waitFor(proxy, (rows) => rows.every((row) => row.status === 'UP'), 'all up')
    const release = await fill(a, 1)
    // a sheds every request now; twenty check intervals later it is still in on both paths.
    const shed = await fetch(`${a.server.url}/work`)
    expect(shed.status).toBe(503)
    await shed.text()
    await new Promise((resolve) => setTimeout(resolve, 2000))
    for (const backend of ['app', 'live']) {
      const rows = await proxy.servers(backend)
      expect(rows.map((row) => row.status)).toEqual(['UP', 'UP'])
    }
    const health = await fetch(`${a.server.url}/health`)
    expect(health.status).toBe(200)
    await health.text()
    await release()

    await b.limiter.close()
    await waitFor(proxy, (rows) => byName(rows, 'b')?.status === 'DOWN', 'b out on readiness')
    const rows = await proxy.servers('live')
    expect(byName(rows, 'b')?.status).toBe('UP')
  })
})
