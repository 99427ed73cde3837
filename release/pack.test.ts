import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RabbitServer, rabbitAvailable, startRabbit } from '../packages/amqp/test/rabbitmq-server.js'
import { type RedisServer, redisAvailable, startRedis } from '../packages/redis/test/redis-server.js'

// What a stranger gets from the registry: each public package packed with `pnpm pack` (which turns
// `workspace:*` into real versions), installed with npm from the tarballs into a project outside the
// workspace (so no workspace node_modules can help), next to the frameworks from the registry. Then
// the packages are loaded by Node from ESM and CommonJS and run against real servers, and their
// declarations are type-checked from an .mts and a .cts file. Needs `pnpm build` first.

const root = fileURLToPath(new URL('../', import.meta.url))
const smokeDir = fileURLToPath(new URL('./smoke/', import.meta.url))

/** Every package the smoke checks exercise; a new public package must be added to them (and here). */
const PUBLIC = ['amqp', 'bullmq', 'client', 'core', 'express', 'fastify', 'koa', 'prometheus', 'redis']

interface Manifest {
  name: string
  version: string
  private?: boolean
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  exports?: Record<string, unknown>
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs a command to its end (or kills it after `timeout` ms, 0 = never); never rejects, so a failure is
 * reported by the assertion that reads it.
 */
function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
  timeout = 0,
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({
        code,
        stdout,
        stderr: error !== null && code === null ? `${error.message}\n${stderr}` : stderr,
      })
    })
  })
}

function check(step: string, result: Run): string {
  if (result.code !== 0)
    throw new Error(`${step} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

async function readManifest(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest
}

/** The file paths an `exports` map names, at any depth of conditions. */
function exportedFiles(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports]
  if (typeof exports !== 'object' || exports === null) return []
  return Object.values(exports).flatMap(exportedFiles)
}

function rangeOf(
  manifest: Manifest | undefined,
  field: 'dependencies' | 'devDependencies',
  dependency: string,
): string {
  const range = manifest?.[field]?.[dependency]
  if (range === undefined) throw new Error(`${manifest?.name} has no ${dependency} in its ${field}`)
  return range
}

/**
 * npm, run by pnpm, inherits pnpm's `npm_config_*` view of the workspace; the scratch project is a
 * stranger's and gets npm's own configuration only.
 */
function strangerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(npm|pnpm)_(config|package|lifecycle)_/i.test(key)),
  )
}

let scratch: string
let manifests: Map<string, Manifest>
let redis: RedisServer | undefined
let rabbit: RabbitServer | undefined
let typeChecks: Map<string, Promise<Run>>

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'backpressure-pack-'))
  const tarballs = join(scratch, 'tarballs')
  await mkdir(tarballs)

  const names = (await readdir(join(root, 'packages'), { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
  manifests = new Map()
  for (const name of names) {
    const manifest = await readManifest(join(root, 'packages', name))
    if (manifest.private !== true) manifests.set(name, manifest)
  }
  const unbuilt = [...manifests.keys()].filter((name) => !existsSync(join(root, 'packages', name, 'dist')))
  if (unbuilt.length > 0) throw new Error(`not built: ${unbuilt.join(', ')}; run \`pnpm build\` first`)

  const filters = [...manifests.values()].flatMap((manifest) => ['--filter', manifest.name])
  check('pnpm pack', await run('pnpm', ['-r', ...filters, 'pack', '--pack-destination', tarballs], root))

  // The peers and the types a user installs next to our packages, at the ranges our manifests state.
  const wanted = new Map<string, string>()
  for (const manifest of manifests.values()) {
    for (const [dependency, range] of Object.entries(manifest.peerDependencies ?? {}))
      wanted.set(dependency, range)
  }
  const rootManifest = await readManifest(root)
  wanted.set('prom-client', rangeOf(manifests.get('prometheus'), 'dependencies', 'prom-client'))
  wanted.set('@types/express', rangeOf(manifests.get('express'), 'devDependencies', '@types/express'))
  wanted.set('@types/koa', rangeOf(manifests.get('koa'), 'devDependencies', '@types/koa'))
  wanted.set('@types/node', rangeOf(rootManifest, 'devDependencies', '@types/node'))
  wanted.set('typescript', rangeOf(rootManifest, 'devDependencies', 'typescript'))

  const project = join(scratch, 'project')
  await mkdir(project)
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'stranger', private: true }))
  await cp(smokeDir, project, { recursive: true })
  const files = (await readdir(tarballs)).map((file) => join(tarballs, file))
  const specs = [...wanted].map(([dependency, range]) => `${dependency}@${range}`)
  check(
    'npm install',
    await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...files, ...specs],
      project,
      strangerEnv(),
    ),
  )

  // Type checks take the longest and need no server: they run while the smoke tests do.
  const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc')
  typeChecks = new Map(
    ['mts', 'cts'].map((kind) => [
      kind,
      run(process.execPath, [tsc, '-p', `tsconfig.${kind}.json`], project),
    ]),
  )
  if (redisAvailable) redis = await startRedis()
  if (rabbitAvailable) rabbit = await startRabbit()
}, 300_000)

afterAll(async () => {
  await redis?.stop()
  await rabbit?.stop()
  // Settled before the directory goes, whatever failed above.
  if (typeChecks !== undefined) await Promise.all(typeChecks.values())
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
})

describe('packed packages', () => {
  it('packs every public package', () => {
    expect([...manifests.keys()].sort()).toEqual(PUBLIC)
  })

  it.each(PUBLIC)('@backpressure/%s ships README, LICENSE, types and both module formats', async (name) => {
    const manifest = manifests.get(name)!
    const tarball = join(scratch, 'tarballs', `backpressure-${name}-${manifest.version}.tgz`)
    const listing = check('tar', await run('tar', ['-tzf', tarball], scratch))
    const files = new Set(listing.split('\n').map((line) => line.replace(/^package\//, '')))
    const required = ['package.json', 'README.md', 'LICENSE']
    for (const file of exportedFiles(manifest.exports)) required.push(file.replace(/^\.\//, ''))
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) required.push(`dist/${file}`)
    expect(required.filter((file) => !files.has(file))).toEqual([])
  })

  it.each(PUBLIC)('@backpressure/%s depends on our packages by version, not workspace:', async (name) => {
    const packed = check(
      'tar',
      await run(
        'tar',
        [
          '-xzOf',
          join(scratch, 'tarballs', `backpressure-${name}-${manifests.get(name)!.version}.tgz`),
          'package/package.json',
        ],
        scratch,
      ),
    )
    const manifest = JSON.parse(packed) as Manifest
    expect(packed).not.toContain('workspace:')
    for (const [dependency, range] of Object.entries(manifest.dependencies ?? {})) {
      const ours = [...manifests.values()].find((candidate) => candidate.name === dependency)
      if (ours !== undefined) expect(range).toBe(ours.version)
    }
  })
})

describe('installed from the tarballs', () => {
  const adapter = {
    health: 200,
    work: [200, 'ok'],
    metrics: [200, 'text/plain', true],
    shed: [503, true, 'queue_full'],
    held: [200, 'held'],
  }

  it.each([
    ['esm', 'esm.mjs', 'js'],
    ['cjs', 'cjs.cjs', 'cjs'],
  ])('works from %s against real servers', async (format, file, extension) => {
    const env = { ...process.env }
    if (redis !== undefined) env.REDIS_PORT = String(redis.port)
    if (rabbit !== undefined) env.AMQP_URL = rabbit.url
    const out = check(
      `node ${file}`,
      await run(process.execPath, [file], join(scratch, 'project'), env, 60_000),
    )
    expect(JSON.parse(out)).toEqual({
      format,
      // Node loaded the installed copy in the scratch project, in the module format asked for.
      resolved: Object.fromEntries(
        PUBLIC.map((name) => [name, `node_modules/@backpressure/${name}/dist/index.${extension}`]),
      ),
      core: { submitted: 42, rejected: [true, 503, 'queue_full'], inFlight: 0 },
      express: adapter,
      client: { ok: [200, 'ok'], gaveUp: [true, 503, true] },
      prometheus: { contentType: 'text/plain', rendered: true },
      fastify: adapter,
      koa: adapter,
      redis: redis === undefined ? { constructed: true } : { taken: [true, false], baseline: 12.5 },
      bullmq:
        redis === undefined ? { constructed: true } : { results: [2, 4, 6], concurrency: 2, inFlight: 0 },
      amqp: rabbit === undefined ? { constructed: true } : { handled: ['a', 'b', 'c'], prefetch: 2, left: 0 },
    })
  })

  it.each(['mts', 'cts'])('type-checks from a .%s file', async (kind) => {
    const result = await typeChecks.get(kind)!
    // @types/koa imports `content-disposition` expecting its @types package, but express 5 hoists a
    // content-disposition that ships its own, different types: an error inside @types/koa that every
    // project with both frameworks has. Every other error counts.
    const errors = result.stdout
      .split('\n')
      .filter((line) => /error TS\d+/.test(line))
      .filter(
        (line) => !(line.startsWith('node_modules/@types/koa/') && line.includes('content-disposition')),
      )
    expect(errors, result.stdout + result.stderr).toEqual([])
    expect(result.stderr).toBe('')
  })
})
