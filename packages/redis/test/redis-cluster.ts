import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface ClusterNode {
  readonly port: number
  /** SIGKILLs this node (a master lost mid-run) and waits for it to exit. Idempotent. */
  kill(): Promise<void>
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[]
  /** Stops every node and removes their files. Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts a throwaway Redis Cluster of `size` masters (no replicas) on 127.0.0.1, each in its own temp
 * dir with its own cluster bus port, joins them with `redis-cli --cluster create`, and waits until
 * every node reports `cluster_state:ok`. Every step is bounded; on any failure everything started is
 * stopped again.
 */
export async function startRedisCluster(size = 3, nodeTimeoutMs = 1000): Promise<RedisCluster> {
  // A port taken between our probe and a node's bind makes that node exit: start again, twice at most.
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(size, nodeTimeoutMs)
    } catch (error) {
      if (attempt === 2) throw error
    }
  }
}

async function startOnce(size: number, nodeTimeoutMs: number): Promise<RedisCluster> {
  const ports = await distinctFreePorts(2 * size)
  const dir = mkdtempSync(join(tmpdir(), 'bp-redis-cluster-'))
  const children: { port: number; child: ChildProcess; exited: Promise<void> }[] = []
  const stopAll = async () => {
    for (const { child } of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await Promise.all(children.map((c) => c.exited))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < size; i++) {
      const port = ports[2 * i]!
      const busPort = ports[2 * i + 1]!
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      )
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      children.push({ port, child, exited })
    }
    for (const { port, child } of children) {
      await until(async () => {
        if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited`)
        return ping(port)
      }, `redis-server on ${port}`)
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...children.map((c) => `127.0.0.1:${c.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 20_000 },
    )
    for (const { port } of children) {
      await until(
        async () => (await cli(port, 'cluster', 'info')).includes('cluster_state:ok'),
        `cluster on ${port}`,
      )
    }
  } catch (error) {
    await stopAll()
    throw error
  }
  let stopping: Promise<void> | undefined
  return {
    nodes: children.map(({ port, child, exited }) => ({
      port,
      async kill() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        await exited
      },
    })),
    stop() {
      stopping ??= stopAll()
      return stopping
    },
  }
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: 2000,
  })
  return stdout
}

async function ping(port: number): Promise<boolean> {
  try {
    return (await cli(port, 'ping')).trim() === 'PONG'
  } catch {
    return false
  }
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** `count` different ports nobody listens on: every probe stays open until all are chosen. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const probes: Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const probe = createServer()
      probes.push(probe)
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    }
    return probes.map((probe) => (probe.address() as { port: number }).port)
  } finally {
    await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))))
  }
}
