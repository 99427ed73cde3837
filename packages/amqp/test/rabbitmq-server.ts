import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import amqplib from 'amqplib'
import { freePort } from '../../redis/test/redis-server.js'

/** Debian's rabbitmq-server, run directly (its /usr/sbin wrapper would switch to the rabbitmq user). */
const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'

/** True when a real RabbitMQ can be started (CI installs it with scripts/system-deps.sh). */
export const rabbitAvailable = existsSync(SERVER)

export const SKIP_MESSAGE =
  'rabbitmq-server is not installed: skipping the AMQP consumer tests (install it with scripts/system-deps.sh)'

if (!rabbitAvailable) console.warn(SKIP_MESSAGE)

/** How long a broker may take to boot on a loaded machine (about 5-12 s seen on 2 busy cores). */
const START_TIMEOUT_MS = 60_000

export interface RabbitServer {
  readonly port: number
  readonly url: string
  /** Stops the broker (and its epmd), waits for both to exit and removes its files. Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts a throwaway RabbitMQ node on 127.0.0.1: its own node name, AMQP, distribution and epmd ports,
 * and its database, logs, cookie and config in a temporary directory, so it neither needs nor touches
 * a system broker. Resolves once an AMQP connection opens; the whole start is bounded.
 */
export async function startRabbit(): Promise<RabbitServer> {
  const dir = await mkdtemp(join(tmpdir(), 'backpressure-rabbit-'))
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()]
  // No plugins (management would add seconds and a port); no config file of the system's.
  await writeFile(join(dir, 'enabled_plugins'), '[].\n')
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: `bp${port}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_LOGS: join(dir, 'log', 'rabbit.log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbit.pid'),
  }
  // An epmd of our own on its own port, in the foreground, so it ends with the broker.
  const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], {
    env,
    stdio: 'ignore',
    detached: true,
  })
  const broker = spawn(SERVER, [], { env, stdio: 'ignore', detached: true })
  const children = [broker, epmd]
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      await Promise.all(children.map(killGroup))
      await rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  const url = `amqp://guest:guest@127.0.0.1:${port}`
  try {
    await waitForAmqp(url, broker, START_TIMEOUT_MS)
  } catch (error) {
    await stop()
    throw error
  }
  return { port, url, stop }
}

/** Kills a child's whole process group (the broker's shell script, beam.smp and its helpers). */
async function killGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
  await exited
}

async function waitForAmqp(url: string, broker: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    if (broker.exitCode !== null)
      throw new Error(`rabbitmq-server exited with ${broker.exitCode} while starting`)
    try {
      const connection = await amqplib.connect(url, { timeout: 2000 })
      await connection.close()
      return
    } catch (error) {
      lastError = error
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
  throw new Error(`rabbitmq-server did not accept AMQP within ${timeoutMs} ms: ${String(lastError)}`)
}
