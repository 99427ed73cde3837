import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// Every package we publish ships its licence and its README: npm adds both on its own today, but
// naming them in `files` keeps that true for any packer, and the LICENSE file must exist to be added.

const root = fileURLToPath(new URL('..', import.meta.url))

interface Manifest {
  name: string
  private?: boolean
  license?: string
  files?: string[]
}

function published(): { dir: string; manifest: Manifest }[] {
  return readdirSync(`${root}packages`, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(`${root}packages/${entry.name}/package.json`))
    .map((entry) => {
      const dir = `${root}packages/${entry.name}/`
      return { dir, manifest: JSON.parse(readFileSync(`${dir}package.json`, 'utf8')) as Manifest }
    })
    .filter(({ manifest }) => manifest.private !== true)
}

describe('published packages', () => {
  it('are the nine we release', () => {
    expect(published().map(({ manifest }) => manifest.name)).toEqual([
      '@backpressure/amqp',
      '@backpressure/bullmq',
      '@backpressure/client',
      '@backpressure/core',
      '@backpressure/express',
      '@backpressure/fastify',
      '@backpressure/koa',
      '@backpressure/prometheus',
      '@backpressure/redis',
    ])
  })

  it('carry the MIT licence of the repository, and name LICENSE, README.md and dist in files', () => {
    const licence = readFileSync(`${root}LICENSE`, 'utf8')
    expect(licence).toMatch(/^MIT License\n\nCopyright \(c\) 2026 Backpressure contributors\n/)
    for (const { dir, manifest } of published()) {
      expect(manifest.license, manifest.name).toBe('MIT')
      expect(manifest.files, manifest.name).toEqual(expect.arrayContaining(['dist', 'LICENSE', 'README.md']))
      expect(readFileSync(`${dir}LICENSE`, 'utf8'), `${manifest.name}/LICENSE`).toBe(licence)
      expect(existsSync(`${dir}README.md`), `${manifest.name}/README.md`).toBe(true)
    }
  })
})
