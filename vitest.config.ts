import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Tests import workspace packages by name; point those names at the sources so the suite runs without
// a build. The consumer tests import the built `dist/` files by path instead, to prove the packages
// themselves work from ESM and CommonJS.
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url))
const alias = readdirSync(packagesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => ({
    find: new RegExp(`^@backpressure/${entry.name}$`),
    replacement: `${packagesDir}${entry.name}/src/index.ts`,
  }))

export default defineConfig({
  resolve: { alias },
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'benchmarks/test/**/*.test.ts',
      'test/**/*.test.ts',
    ],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests run real servers; two cores cannot run many of them at once without noise.
    maxWorkers: 2,
    // The Redis store's tests kill a real redis-server on purpose. When that races a command ioredis
    // sends on its own (not one of ours: every command we send is awaited), ioredis rejects it with
    // "Connection is closed." and nobody can catch it (redis/ioredis#455, #1140). Only that error, from
    // ioredis's close handler, is ignored; every other unhandled error still fails the run.
    onUnhandledError(error) {
      const fromIoredis = error.message === 'Connection is closed.' && /ioredis/.test(error.stack ?? '')
      return fromIoredis ? false : undefined
    },
  },
})
