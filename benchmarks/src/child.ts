/**
 * A benchmark's child process (a server, a database): forked with tsx, it says `{ type: 'ready', … }`
 * over IPC once listening, and answers `{ type: 'report' }` with a report message.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))

export interface BenchChild<Ready, Report> {
  readonly ready: Ready
  report(): Promise<Report>
  kill(): Promise<void>
}

export async function startChild<Ready extends { type: 'ready' }, Report extends { type: 'report' }>(
  file: string,
  config: unknown,
  name: string,
): Promise<BenchChild<Ready, Report>> {
  const child: ChildProcess = fork(fileURLToPath(new URL(file, import.meta.url)), [JSON.stringify(config)], {
    cwd: BENCH_DIR,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s`)), 20_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code}`))
    })
    child.on('message', (message: Ready | Report) => {
      if (message.type !== 'ready') return
      clearTimeout(timer)
      resolve(message as Ready)
    })
  })
  return {
    ready,
    report: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no report from ${name}`)), 10_000)
        const onMessage = (message: Ready | Report) => {
          if (message.type !== 'report') return
          clearTimeout(timer)
          child.off('message', onMessage)
          resolve(message as Report)
        }
        child.on('message', onMessage)
        child.send({ type: 'report' })
      }),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
