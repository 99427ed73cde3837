import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

// The built package, loaded by Node itself (not through Vitest's transform), from both module systems.
describe('built package consumers', () => {
  it('has been built (run `pnpm build`)', () => {
    expect(existsSync(`${dist}index.js`)).toBe(true)
    expect(existsSync(`${dist}index.cjs`)).toBe(true)
    expect(existsSync(`${dist}index.d.ts`)).toBe(true)
    expect(existsSync(`${dist}index.d.cts`)).toBe(true)
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
      rejected: true,
      status: 503,
      http: 'function',
      inFlight: 0,
    })
  })
})
