/** Charts drawn by vega-lite → vega → SVG, in Node, no browser. */
import * as vega from 'vega'
import * as vl from 'vega-lite'

export type Row = Record<string, string | number | null>

async function render(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  width: 560,
  height: 320,
  config: { font: 'sans-serif', legend: { labelLimit: 320 } },
} as const

/** One line per series over x, optionally with a log y axis. */
export function lineChart(options: {
  title: string
  rows: Row[]
  x: string
  xTitle: string
  y: string
  yTitle: string
  series: string
  logY?: boolean
  xLog?: boolean
}): Promise<string> {
  return render({
    ...base,
    title: options.title,
    data: { values: options.rows },
    mark: { type: 'line', point: true, strokeWidth: 1.5 },
    encoding: {
      x: {
        field: options.x,
        type: 'quantitative',
        title: options.xTitle,
        scale: options.xLog ? { type: 'log' } : {},
        axis: options.xLog ? { values: [0.5, 1, 2, 5, 10] } : {},
      },
      y: {
        field: options.y,
        type: 'quantitative',
        title: options.yTitle,
        scale: options.logY ? { type: 'log' } : { zero: true },
      },
      color: { field: options.series, type: 'nominal', title: null, scale: { scheme: 'category20' } },
      strokeDash: { field: 'kind', type: 'nominal', title: null, legend: null },
    },
  } as vl.TopLevelSpec)
}
