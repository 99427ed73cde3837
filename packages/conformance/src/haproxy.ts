import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** True when a real `haproxy` can be started (CI installs it with scripts/system-deps.sh). */
export const haproxyAvailable = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0

export const HAPROXY_SKIP_MESSAGE =
  'haproxy is not installed: skipping the HAProxy tests (install it with scripts/system-deps.sh)'

/** A port nobody listens on right now (the OS picks it; we release it for the process to take). */
export async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/** One server row of HAProxy's `show stat`. */
export interface HaproxyServerStat {
  readonly name: string
  /** `UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/2` (going down) … */
  readonly status: string
  /** The effective weight, after the agent's percentage. */
  readonly weight: number
  /** Requests (sessions) sent to it in total. */
  readonly sessions: number
}

export interface Haproxy {
  /** The frontend's port on 127.0.0.1. */
  readonly port: number
  readonly url: string
  /** The servers of `backend`, from the runtime API. */
  servers(backend?: string): Promise<HaproxyServerStat[]>
  /** A runtime API command's answer (`show stat`, `set server app/a weight 10` …). */
  command(line: string): Promise<string>
  /** Stops HAProxy (SIGKILL), waits for it to exit and removes its files. Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts `haproxy -db` (foreground) on `config(port, socket)`: the frontend must bind 127.0.0.1:port and
 * the `global` section should carry `stats socket <socket> level admin` (`globalSection` does). Waits
 * until the frontend accepts connections; tries another port if the first was taken meanwhile.
 */
export async function startHaproxy(config: (port: number, socket: string) => string): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'bp-haproxy-'))
  const socket = join(dir, 'admin.sock')
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const file = join(dir, 'haproxy.cfg')
    writeFileSync(file, config(port, socket))
    const child = spawn('haproxy', ['-f', file, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk) => {
      if (stderr.length < 10_000) stderr += String(chunk)
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    if (await accepts(port, child, 5_000)) {
      let stopping: Promise<void> | undefined
      const command = (line: string) => runtimeCommand(socket, line)
      return {
        port,
        url: `http://127.0.0.1:${port}`,
        command,
        servers: async (backend = 'app') => parseStat(await command('show stat'), backend),
        stop() {
          stopping ??= (async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
            await exited
            rmSync(dir, { recursive: true, force: true })
          })()
          return stopping
        },
      }
    }
    child.kill('SIGKILL')
    await exited
    if (attempt === 2) {
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`haproxy did not start on 127.0.0.1:${port}: ${stderr}`)
    }
  }
}

/** The `global` and `defaults` sections every test configuration starts with. */
export function globalSection(socket: string): string {
  return `global
  stats socket ${socket} level admin
  maxconn 4000

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout queue 5s
`
}

async function accepts(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && child.exitCode === null) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      const done = (value: boolean) => {
        socket.destroy()
        resolve(value)
      }
      socket.setTimeout(500, () => done(false))
      socket.once('error', () => done(false))
      socket.once('connect', () => done(true))
    })
    if (ok) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

function runtimeCommand(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path)
    let answer = ''
    socket.setTimeout(2000, () => socket.destroy(new Error(`runtime API: no answer to ${line}`)))
    // HAProxy may reset the socket right after its answer: what arrived is the answer.
    socket.once('error', (error) => (answer === '' ? reject(error) : resolve(answer)))
    socket.on('data', (chunk) => {
      answer += String(chunk)
    })
    socket.once('end', () => resolve(answer))
    socket.once('connect', () => socket.end(`${line}\n`))
  })
}

function parseStat(csv: string, backend: string): HaproxyServerStat[] {
  const lines = csv.split('\n').filter((line) => line !== '')
  const header = (lines[0] ?? '').replace(/^# /, '').split(',')
  const at = (name: string) => header.indexOf(name)
  const rows: HaproxyServerStat[] = []
  for (const line of lines.slice(1)) {
    const cells = line.split(',')
    const name = cells[at('svname')] ?? ''
    if (cells[at('pxname')] !== backend || name === 'BACKEND' || name === 'FRONTEND') continue
    rows.push({
      name,
      status: cells[at('status')] ?? '',
      weight: Number(cells[at('weight')]),
      sessions: Number(cells[at('stot')]),
    })
  }
  return rows
}

/** Connects to an agent-check port and reads the one line it answers, as HAProxy does. */
export function readAgentLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let line = ''
    socket.setTimeout(2000, () => socket.destroy(new Error('agent check: no answer')))
    socket.once('error', reject)
    socket.on('data', (chunk) => {
      line += String(chunk)
    })
    socket.once('end', () => resolve(line))
  })
}
