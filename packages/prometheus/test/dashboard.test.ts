import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { METRIC_FAMILIES } from '../src/index.js'
import { dashboardExpressions, type Panel } from './helpers.js'

const file = fileURLToPath(new URL('../../../docs/grafana-dashboard.json', import.meta.url))

const seriesNames = METRIC_FAMILIES.flatMap((f) =>
  f.type === 'histogram' ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name],
)

describe('docs/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(file, 'utf8'))

  it('has what Grafana import needs', () => {
    expect(dashboard.title).toBe('Backpressure')
    expect(typeof dashboard.uid).toBe('string')
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dashboard.id).toBeNull()
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }),
    ])
    const variables = dashboard.templating.list.map((v: { name: string }) => v.name)
    expect(variables).toEqual(['datasource', 'job', 'controller'])
    const ids = dashboard.panels.map((p: Panel) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('covers queue depth, in flight vs limit, rejections by reason, p99 and Retry-After', () => {
    const exprs = dashboardExpressions()
      .map((e) => e.expr)
      .join('\n')
    expect(exprs).toContain('backpressure_queue_depth')
    expect(exprs).toMatch(/backpressure_in_flight[\s\S]*backpressure_concurrency_limit/)
    expect(exprs).toContain('sum by (reason) (rate(backpressure_rejections_total')
    expect(exprs).toContain(
      'histogram_quantile(0.99, sum by (le, controller) (rate(backpressure_request_duration_seconds_bucket',
    )
    expect(exprs).toContain('backpressure_retry_after_seconds_bucket')
  })

  it('references only metrics we expose, from every panel, through the datasource variable', () => {
    for (const panel of dashboard.panels as Panel[]) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0)
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
      expect(panel.datasource.uid).toBe('${datasource}')
      for (const { expr } of panel.targets) {
        const names = expr.match(/\bbackpressure_[a-z0-9_]+/g) ?? []
        expect(names.length, `${panel.title}: ${expr}`).toBeGreaterThan(0)
        for (const name of names) expect(seriesNames, `${panel.title}: ${name}`).toContain(name)
      }
    }
  })
})
