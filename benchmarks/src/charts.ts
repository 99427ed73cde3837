/** Charts drawn by vega-lite → vega → SVG, in Node, no browser. */
import * as vega from 'vega'
import * as vl from 'vega-lite'

export type Row = Record<string, string | number | null>

/**
 * Okabe & Ito's colour-blind-safe palette. A chart never has more series than it has colours, so no
 * two lines share one; the black goes to a reference line (capacity) where a chart has one, and the yellow comes last.
 */
export const PALETTE = [
  '#0072B2', // blue
  '#E69F00', // orange
  '#009E73', // bluish green
  '#D55E00', // vermillion
  '#56B4E9', // sky blue
  '#CC79A7', // reddish purple
  '#000000', // black
  '#F0E442', // yellow: faint on white, so last
] as const
const BLACK = '#000000'

/** Ours solid, every other system dashed, whatever order the rows come in. */
const DASH = {
  field: 'kind',
  type: 'nominal',
  title: null,
  legend: null,
  scale: {
    domain: ['ours', 'other'],
    range: [
      [1, 0],
      [4, 3],
    ],
  },
} as const

async function render(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  // labelLimit 0: legend labels are never cut, whatever their length.
  config: { font: 'sans-serif', legend: { labelLimit: 0, orient: 'bottom', columns: 2 } },
} as const

/**
 * The colour scale of a chart's series, in the order given, one palette colour each; `black` (a
 * reference line such as the capacity in force) takes the palette's black, the others its colours.
 */
function colour(series: string, domain: string[], black?: string): object {
  const lines = domain.filter((d) => d !== black)
  const colours = lines.length === domain.length ? [...PALETTE] : PALETTE.filter((c) => c !== BLACK)
  if (lines.length > colours.length)
    throw new Error(`a chart takes at most ${colours.length} series, got ${lines.length}: split it`)
  const ordered = black !== undefined && domain.includes(black) ? [...lines, black] : lines
  const range = ordered.map((d, i) => (d === black ? BLACK : colours[i]!))
  return { field: series, type: 'nominal', title: null, sort: ordered, scale: { domain: ordered, range } }
}

/** The series of rows, in first-seen order. */
function seriesOf(rows: Row[], series: string): string[] {
  return [...new Set(rows.map((r) => String(r[series])))]
}

/**
 * Goodput (top) and p99 of accepted requests (bottom) against offered load, one line per series,
 * sharing one legend. `kind` draws ours solid and every other system dashed.
 */
export function loadChart(options: { title: string; rows: Row[]; series: string }): Promise<string> {
  const domain = seriesOf(options.rows, options.series)
  const x = {
    field: 'load',
    type: 'quantitative',
    title: 'offered load (× C)',
    scale: { type: 'log' },
    axis: { values: [0.5, 1, 2, 5, 10] },
  }
  const panel = (y: object, filter?: string) => ({
    width: 560,
    height: 240,
    ...(filter === undefined ? {} : { transform: [{ filter }] }),
    mark: { type: 'line', point: true, strokeWidth: 1.5 },
    encoding: {
      x,
      y,
      color: colour(options.series, domain),
      strokeDash: DASH,
    },
  })
  return render({
    ...base,
    title: options.title,
    data: { values: options.rows },
    vconcat: [
      panel({ field: 'goodput', type: 'quantitative', title: 'goodput (% of C)', scale: { zero: true } }),
      panel(
        { field: 'p99', type: 'quantitative', title: 'p99 of 2xx (ms, log)', scale: { type: 'log' } },
        'datum.p99 !== null',
      ),
    ],
  } as vl.TopLevelSpec)
}

/**
 * One panel per capacity step, goodput per second over the run, one line per system and the capacity
 * in force as a black line; the panels share one legend, so a system keeps its colour across them.
 */
export function stepChart(options: {
  title: string
  rows: Row[]
  panels: { title: string; filter: string }[]
  capacity: string
}): Promise<string> {
  const domain = seriesOf(options.rows, 'system')
  return render({
    ...base,
    title: options.title,
    data: { values: options.rows },
    vconcat: options.panels.map((p) => ({
      width: 560,
      height: 200,
      title: p.title,
      transform: [{ filter: p.filter }],
      mark: { type: 'line', point: true, strokeWidth: 1.5 },
      encoding: {
        x: { field: 'second', type: 'quantitative', title: 'second of the run' },
        y: {
          field: 'goodput',
          type: 'quantitative',
          title: '2xx within 1 s per second',
          scale: { zero: true },
        },
        color: colour('system', domain, options.capacity),
        strokeDash: DASH,
      },
    })),
  } as vl.TopLevelSpec)
}

/**
 * The event-loop shedder over a run: the share of arrivals it turned away (top) and the loop's lag
 * (bottom), every 100 ms, one line per system and load, sharing one legend.
 */
export function shedChart(options: { title: string; rows: Row[] }): Promise<string> {
  const domain = seriesOf(options.rows, 'series')
  const panel = (field: string, title: string) => ({
    width: 560,
    height: 200,
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'second', type: 'quantitative', title: 'second of the run' },
      y: { field, type: 'quantitative', title, scale: { zero: true } },
      color: colour('series', domain),
    },
  })
  return render({
    ...base,
    title: options.title,
    data: { values: options.rows },
    vconcat: [panel('fraction', 'share of arrivals shed'), panel('lag', 'event-loop lag (ms)')],
  } as vl.TopLevelSpec)
}
