import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { CLIENT_CAUSED_REASONS } from '@backpressure/core'
import { describe, expect, it } from 'vitest'

const docs = fileURLToPath(new URL('../../../docs/', import.meta.url))

/**
 * The alert and the dashboard's rejection ratio leave out the reasons core counts as client-caused
 * (not overload): the same list in every expression, so neither can drift from `rejectionRate`.
 */
describe('client-caused reasons in docs/alerts.yml and the dashboard', () => {
  it.each(['alerts.yml', 'grafana-dashboard.json'])(
    '%s excludes exactly CLIENT_CAUSED_REASONS',
    async (file) => {
      const text = (await readFile(`${docs}${file}`, 'utf8')).replace(/\\"/g, '"')
      const lists = [...text.matchAll(/reason[!=]~"([^"]*)"/g)].map((match) => match[1]!.split('|').sort())
      // The numerator leaves them out, the denominator takes them off.
      expect(lists.length).toBeGreaterThanOrEqual(2)
      for (const list of lists) expect(list).toEqual([...CLIENT_CAUSED_REASONS].sort())
    },
  )
})
