import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

// scripts/demo.sh is the first thing a newcomer runs: the install and build must not bury the demo
// under a hundred lines of tool output, yet a failure must show all of it. A stand-in `pnpm` first on
// PATH plays the noisy tools (and the demo), so nothing is installed or built here.

const root = fileURLToPath(new URL('..', import.meta.url))
const pinned = (
  JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { packageManager: string }
).packageManager.split('@')[1]

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

/** A fake pnpm: the pinned --version, 80 lines per install or build (build exits `buildStatus`), and the demo. */
function fakePnpm(buildStatus: number): { path: string; log: string } {
  dir = mkdtempSync(join(tmpdir(), 'bp-scripts-'))
  const pnpm = join(dir, 'pnpm')
  writeFileSync(
    pnpm,
    `#!/usr/bin/env bash
case "$*" in
  --version) echo ${pinned} ;;
  "install --frozen-lockfile") for i in $(seq 80); do echo "install output $i"; done ;;
  build) for i in $(seq 80); do echo "build output $i"; done; exit ${buildStatus} ;;
  "--silent demo") echo "DEMO STARTS" ;;
  *) echo "unexpected pnpm $*" >&2; exit 99 ;;
esac
`,
  )
  chmodSync(pnpm, 0o755)
  return { path: `${dir}:${process.env.PATH}`, log: join(dir, 'setup.log') }
}

function run(script: string, env: Record<string, string>) {
  const { BOOTSTRAP_LOG: _ignored, ...inherited } = process.env
  return spawnSync('bash', [script], { cwd: root, env: { ...inherited, ...env }, encoding: 'utf8' })
}

describe('scripts/demo.sh', () => {
  it('prints a few progress lines before the demo, and keeps the output of the tools in its log', () => {
    const { path, log } = fakePnpm(0)
    const result = run('scripts/demo.sh', { PATH: path, BOOTSTRAP_LOG: log })
    expect(result.status).toBe(0)
    const lines = result.stdout.trim().split('\n')
    expect(lines.at(-1)).toBe('DEMO STARTS')
    expect(lines.length).toBeLessThanOrEqual(6)
    expect(result.stdout).not.toContain('output')
    expect(result.stderr).toBe('')
    const written = readFileSync(log, 'utf8')
    expect(written).toContain('install output 80')
    expect(written).toContain('build output 80')
  })

  it('shows the whole log and fails when a step fails', () => {
    const { path, log } = fakePnpm(3)
    const result = run('scripts/demo.sh', { PATH: path, BOOTSTRAP_LOG: log })
    expect(result.status).toBe(3)
    expect(result.stdout).not.toContain('DEMO STARTS')
    expect(result.stderr).toContain('failed (exit 3): pnpm build')
    expect(result.stderr).toContain('install output 1\n')
    expect(result.stderr).toContain('build output 80\n')
  })
})

describe('scripts/bootstrap.sh', () => {
  it('still prints everything without BOOTSTRAP_LOG, as CI and scripts/test.sh want', () => {
    const { path } = fakePnpm(0)
    const result = run('scripts/bootstrap.sh', { PATH: path })
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('==> installing dependencies\ninstall output 1\n')
    expect(result.stdout).toContain('==> building packages\nbuild output 1\n')
  })
})
