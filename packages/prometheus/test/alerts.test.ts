import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { METRIC_FAMILIES } from '../src/index.js'
import { hasPromtool, PROMTOOL_MISSING, promtool } from './helpers.js'

const docs = fileURLToPath(new URL('../../../docs/', import.meta.url))
if (!hasPromtool) console.warn(PROMTOOL_MISSING)

describe.skipIf(!hasPromtool)('docs/alerts.yml', () => {
  it('passes promtool check rules', async () => {
    const result = await promtool(['check', 'rules', `${docs}alerts.yml`])
    expect(result.stdout).toContain('SUCCESS: 3 rules found')
    expect(result.code).toBe(0)
  })

  it('passes its unit tests (promtool test rules docs/alerts.test.yml): each alert fires when it should, and only then', async () => {
    const result = await promtool(['test', 'rules', `${docs}alerts.test.yml`])
    expect(result.stdout).toContain('SUCCESS')
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0)
  })
})

describe('docs/alerts.yml metric names', () => {
  it('uses only metrics we expose', async () => {
    const { readFile } = await import('node:fs/promises')
    const text = await readFile(`${docs}alerts.yml`, 'utf8')
    const used = new Set(text.match(/\bbackpressure_[a-z0-9_]+/g))
    expect(used.size).toBeGreaterThan(0)
    for (const name of used) expect(exposedSeriesNames(), name).toContain(name)
  })
})

/** Every series name a scrape can hold: families, plus _bucket/_sum/_count of histograms. */
function exposedSeriesNames(): string[] {
  return METRIC_FAMILIES.flatMap((f) =>
    f.type === 'histogram' ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name],
  )
}
