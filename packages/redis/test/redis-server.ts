import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'

/** True when a real `redis-server` can be started (CI installs it with scripts/system-deps.sh). */
export const redisAvailable = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0

export const SKIP_MESSAGE =
  'redis-server is not installed: skipping the Redis store tests (install it with scripts/system-deps.sh)'

if (!redisAvailable) console.warn(SKIP_MESSAGE)

export interface RedisServer {
  readonly port: number
  /** Stops the server and waits for it to exit. Idempotent. */
  stop(): Promise<void>
}

/** A port nobody listens on right now (the OS picks it; we release it for the server to take). */
export async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/** Starts a throwaway redis-server on 127.0.0.1 with no persistence, and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()],
      { stdio: 'ignore' },
    )
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    if (await answersPing(port, child, 5_000)) {
      let stopping: Promise<void> | undefined
      return {
        port,
        stop() {
          stopping ??= (async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
            await exited
          })()
          return stopping
        },
      }
    }
    child.kill('SIGKILL')
    await exited
    // Another process may have taken the port between probe and spawn: try another one.
    if (attempt === 2) throw new Error(`redis-server did not answer PING on 127.0.0.1:${port}`)
  }
}

async function answersPing(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && child.exitCode === null) {
    if (await pingOnce(port)) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}
