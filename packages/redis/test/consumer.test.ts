import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

// The built package, loaded by Node itself (not through Vitest's transform), from both module systems.
describe('built package consumers', () => {
  it('has been built (run `pnpm build`)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(`${dist}${file}`)).toBe(true)
    }
  })

  it.each(['esm.mjs', 'cjs.cjs'])('works from %s', (file) => {
    const out = execFileSync(
      process.execPath,
      [fileURLToPath(new URL(`./consumer/${file}`, import.meta.url))],
      {
        encoding: 'utf8',
      },
    )
    expect(JSON.parse(out)).toEqual({
      format: file.startsWith('esm') ? 'esm' : 'cjs',
      result: { allowed: true, remaining: 4, retryAfterMs: 0, resetMs: 1000 },
      // Key with the default prefix, capacity, tokens per ms, cost, '' = Redis's clock, no minimum TTL.
      sent: [['backpressureTokenBucketTake', 1, 'bp:tb:k', 5, 0.001, 1, '', '0']],
      script: true,
      // The fleet's baseline: the median of the two the fake Redis holds, read through the built script.
      baseline: 12,
      baselineScript: true,
    })
  })
})
