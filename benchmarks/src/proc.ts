/**
 * Parent side of a server child: spawn it, wait for its port, and read its CPU time and memory from
 * outside, through /proc, the way an operator's tools would see them.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { ChildConfig, ChildMessage, ChildReport } from './server-child.js'

const CHILD = fileURLToPath(new URL('./server-child.ts', import.meta.url))
const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))

export interface ServerHandle {
  readonly pid: number
  readonly port: number
  readonly origin: string
  go(): void
  /** What the server saw; `drainMs`: let its route bodies end first, for up to that long. */
  report(drainMs?: number): Promise<ChildReport>
  kill(): Promise<void>
}

export async function startServer(config: ChildConfig, timeoutMs = 20_000): Promise<ServerHandle> {
  const child: ChildProcess = fork(CHILD, [JSON.stringify(config)], {
    cwd: BENCH_DIR,
    execArgv: ['--import', 'tsx', '--max-old-space-size=4096'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`server ${config.system} did not start within ${timeoutMs} ms`))
    }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server ${config.system} exited with ${code} before listening`))
    })
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer)
        resolve(message.port)
      } else if (message.type === 'error') {
        clearTimeout(timer)
        reject(new Error(`server ${config.system}: ${message.message}`))
      }
    })
  })
  const pid = child.pid!
  return {
    pid,
    port,
    origin: `http://127.0.0.1:${port}`,
    go: () => child.send({ type: 'go' }),
    report: (drainMs = 0) =>
      new Promise<ChildReport>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no report from server')), 10_000 + drainMs)
        const onMessage = (message: ChildMessage): void => {
          if (message.type !== 'report') return
          clearTimeout(timer)
          child.off('message', onMessage)
          resolve(message)
        }
        child.on('message', onMessage)
        child.send(drainMs > 0 ? { type: 'report', drainMs } : { type: 'report' })
      }),
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        // SIGKILL: an unprotected server may hold tens of thousands of queued queries; nothing to flush.
        child.kill('SIGKILL')
      }),
  }
}

/** CPU time of every thread of the process, in ns, from the scheduler's own accounting. */
export function cpuNs(pid: number): number {
  let total = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
      } catch {
        // a thread that ended between the listing and the read
      }
    }
  } catch {
    return Number.NaN
  }
  return total
}

/**
 * CPU time the whole machine spent busy (every core, every process), in ms: with the server's and the
 * load generator's own time taken off, what the machine's other tenants used meanwhile. On a shared
 * machine that is what moves a phase's figures, so each phase records it.
 */
export function machineBusyMs(): number {
  let busy = 0
  for (const cpu of cpus()) busy += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq
  return busy
}

/** Resident set size now and its peak (VmHWM), in bytes. */
export function memory(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (key: string): number =>
      Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)
    return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 }
  } catch {
    return { rss: Number.NaN, peak: Number.NaN }
  }
}
