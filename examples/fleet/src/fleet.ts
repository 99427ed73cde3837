/**
 * Three instances of one service, each with its own database pool (one of them slower), behind a real
 * HAProxy, with or without agent feedback: every instance runs an agent-check responder that tells
 * HAProxy the share of its concurrency limit still free, and HAProxy weighs its round-robin by it.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SimulatedPool } from '@backpressure/example-shared'
import { type AgentCheck, backpressure, listenAgentCheck } from '@backpressure/express'
import express from 'express'

export interface InstanceSpec {
  readonly name: string
  readonly connections: number
  readonly queryMs: number
}

/** Two instances with a 4-connection pool at 50 ms a query, one at 100 ms: 80 + 80 + 40 = 200 req/s. */
export const INSTANCES: readonly InstanceSpec[] = [
  { name: 'a', connections: 4, queryMs: 50 },
  { name: 'b', connections: 4, queryMs: 50 },
  { name: 'slow', connections: 4, queryMs: 100 },
]

export interface Instance {
  readonly spec: InstanceSpec
  readonly port: number
  readonly agent: AgentCheck
  close(): Promise<void>
}

/** One instance: Express, `backpressure()` given no options, GET /work runs one query on its pool. */
export async function startInstance(spec: InstanceSpec): Promise<Instance> {
  const pool = new SimulatedPool({ connections: spec.connections, queryMs: spec.queryMs })
  const limiter = backpressure()
  const app = express()
  app.use(limiter)
  app.get('/work', async (req, res) => {
    try {
      await pool.query(() => undefined, req.signal)
    } catch (error) {
      // The client left (its deadline passed): its query was cancelled, nobody waits for an answer.
      if (req.signal.aborted) return
      throw error
    }
    res.set('x-instance', spec.name).send('ok')
  })
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const agent = await listenAgentCheck(limiter.controller, { port: 0, host: '127.0.0.1' })
  return {
    spec,
    port: (server.address() as { port: number }).port,
    agent,
    async close() {
      await limiter.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await agent.close()
    },
  }
}

/** The HAProxy configuration: plain round-robin, or round-robin weighted by each instance's agent. */
export function haproxyConfig(port: number, instances: readonly Instance[], feedback: boolean): string {
  const servers = instances.map((i) => {
    const agent = feedback ? ` agent-check agent-port ${i.agent.port} agent-inter 200ms` : ''
    return `  server ${i.spec.name} 127.0.0.1:${i.port} weight 100${agent}`
  })
  return `global
  maxconn 4000

defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s

frontend fe
  bind 127.0.0.1:${port}
  default_backend app

backend app
  balance roundrobin
${servers.join('\n')}
`
}

export interface Haproxy {
  readonly url: string
  stop(): Promise<void>
}

/** Starts `haproxy -db` (in the foreground) with that configuration, and waits until it accepts connections. */
export async function startHaproxy(instances: readonly Instance[], feedback: boolean): Promise<Haproxy> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'fleet-example-'))
  const file = join(dir, 'haproxy.cfg')
  writeFileSync(file, haproxyConfig(port, instances, feedback))
  const child = spawn('haproxy', ['-f', file, '-db'], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const deadline = Date.now() + 5000
  while (!(await accepts(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
      throw new Error('haproxy did not start (is it installed? apt-get install haproxy)')
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGKILL')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface LoadReport {
  readonly offered: number
  /** 200s answered within the deadline, per instance name. */
  readonly okInTime: Record<string, number>
  readonly rejected: number
  readonly timedOut: number
}

/** Open-loop load: `rate` GETs a second for `durationMs`, each abandoned after `deadlineMs`. */
export async function load(
  url: string,
  rate: number,
  durationMs: number,
  deadlineMs = 1000,
): Promise<LoadReport> {
  const okInTime: Record<string, number> = {}
  let rejected = 0
  let timedOut = 0
  const pending: Promise<void>[] = []
  const start = performance.now()
  const total = Math.round((rate * durationMs) / 1000)
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    pending.push(
      fetch(`${url}/work`, { signal: AbortSignal.timeout(deadlineMs) }).then(
        async (res) => {
          await res.text()
          if (res.status !== 200) rejected++
          else {
            const name = res.headers.get('x-instance') ?? '?'
            okInTime[name] = (okInTime[name] ?? 0) + 1
          }
        },
        () => {
          timedOut++
        },
      ),
    )
  }
  await Promise.all(pending)
  return { offered: total, okInTime, rejected, timedOut }
}

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
