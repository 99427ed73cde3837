/** The call-chain tier's section of docs/benchmarks.md, and its rows of the targets table. */
import type { CallChainResult } from './call-chain.js'

export const CALL_CHAIN_HEADING = 'Call chains: our client in front of our servers'

const cell = (values: number[], digits = 0): string =>
  values.map((v) => (Number.isFinite(v) ? v.toFixed(digits) : '–')).join(' / ')

export function callChainSection(
  r: CallChainResult & { startedAt?: string; loadavgStart?: number[]; loadavgEnd?: number[] },
): string {
  const out: string[] = []
  out.push(`## ${CALL_CHAIN_HEADING}`)
  out.push('')
  if (r.startedAt !== undefined) {
    out.push(
      `Measured ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, load average ${r.loadavgStart?.join(' ')} at the start and ${r.loadavgEnd?.join(' ')} at the end, on two cores shared with other work. The 10× client-limit-off rows are the callers' own collapse (every request on the wire, thousands of sockets), not the server's 503 ratio.`,
    )
    out.push('')
  }
  out.push(
    `${r.callers} in-process callers, each its own \`createFetch({ timeoutMs: ${r.deadlineMs} })\` (defaults but the deadline), open loop, ${r.durationMs / 1000} s per phase, ${r.runs} run${r.runs === 1 ? '' : 's'} (values per run, separated by /). The server is Express with \`backpressure()\` and no options over the simulated pool (C = ${r.capacity} req/s). "Client limit off" is \`concurrencyLimit: false\`, the client without it. Server-side 503s and served requests are counted on the wire, by the callers' fetch.`,
  )
  out.push('')
  out.push(
    "| load | client limit | server 503s per served request | goodput (% of C) | callers' success p50 / p99 (ms) | refused locally | held locally |",
  )
  out.push('|---|---|---:|---:|---:|---:|---:|')
  for (const [multiple, on] of [
    [10, false],
    [10, true],
    [1, false],
    [1, true],
    [0.9, false],
    [0.9, true],
  ] as const) {
    const rows = (multiple === 10 ? r.fleet : r.nearCapacity).filter(
      (f) => f.multiple === multiple && f.clientLimit === on,
    )
    if (rows.length === 0) continue
    out.push(
      `| ${multiple}× | ${on ? 'on (default)' : 'off'} | ${cell(
        rows.map((f) => f.rejectionsPerServed),
        2,
      )} | ${cell(
        rows.map((f) => f.goodputPct),
        1,
      )} | ${cell(rows.map((f) => f.p50Ms))}; ${cell(rows.map((f) => f.p99Ms))} | ${cell(rows.map((f) => f.refusedLocally))} | ${cell(rows.map((f) => f.held))} |`,
    )
  }
  out.push('')
  if (r.nearCapacity.some((f) => !f.clientLimit && f.multiple === 1)) {
    out.push(
      "At 1× C sits at its capacity, and a query holds its connection a little over 10 ms (the server's event loop reads answers late), so C can take slightly less than is offered: without the client limit it queues (p50 above) and turns some requests away. With the client limit on, the requests C would have refused wait a few round trips in the caller instead: compare the two 1× rows' server 503s, goodput and p50. At 0.9× C has room, and the client limit should hold and refuse nothing.",
    )
    out.push('')
  }
  out.push(
    `A → B → C on three real servers, every layer on defaults: C as above; B and A are Express with \`backpressure()\` and its error handler, whose route calls the next server with \`createFetch()\` and \`req.signal\` (no error handling of its own); callers offer 5× C to A. "For departed" counts B route bodies started, and attempts sent to C, after the caller's deadline had passed.`,
  )
  out.push('')
  out.push('| figure | per run |')
  out.push('|---|---|')
  const ch = r.chain
  out.push(
    `| attempts reaching C per logical request | **${cell(
      ch.map((c) => c.attemptsAtCPerLogical),
      3,
    )}** |`,
  )
  out.push(
    `| logical requests / attempts at A / at B / at C | ${ch.map((c) => `${c.logical} / ${c.attemptsAtA} / ${c.attemptsAtB} / ${c.attemptsAtC}`).join('; ')} |`,
  )
  out.push(
    `| goodput (% of C) / callers' success p99 (ms) | ${ch.map((c) => `${c.goodputPct} / ${Number.isFinite(c.p99Ms) ? c.p99Ms : '–'}`).join('; ')} |`,
  )
  out.push(
    `| A's 503s to its callers: all / with Retry-After / marked retried below | ${ch.map((c) => `${c.a503} / ${c.a503RetryAfter} / ${c.a503RetriedBelow}`).join('; ')} |`,
  )
  out.push(
    `| callers' failures: gave up on a 503 with Retry-After / refused locally / other | ${ch.map((c) => `${c.callersGaveUp503} / ${c.callersRefusedLocally} / ${c.callersOther}`).join('; ')} |`,
  )
  out.push(
    `| B route bodies for departed callers / attempts at C for departed callers | ${ch.map((c) => `${c.bRoutesForDeparted} / ${c.cAttemptsForDeparted}`).join('; ')} |`,
  )
  out.push('')
  return out.join('\n')
}

/** Rows for the targets table: [figure, target, passes per run, ours]. */
export function callChainTargets(r: CallChainResult | undefined): {
  figure: string
  target: string
  passes: boolean[]
  ours: string
}[] {
  if (r === undefined) return []
  const on = r.fleet.filter((f) => f.multiple === 10 && f.clientLimit)
  return [
    {
      figure: 'our callers at 10× (client-side limit): server-side 503s per served request; goodput',
      target: '≤ 1; ≥ 99% of C',
      passes: on.map((f) => f.rejectionsPerServed <= 1 && f.goodputPct >= 99),
      ours: `${cell(
        on.map((f) => f.rejectionsPerServed),
        2,
      )}; ${cell(
        on.map((f) => f.goodputPct),
        1,
      )}%`,
    },
    {
      figure: 'A→B→C chain, C at 5×, defaults everywhere: attempts at C per logical request',
      target: '≤ 1.2',
      passes: r.chain.map((c) => c.attemptsAtCPerLogical <= 1.2),
      ours: cell(
        r.chain.map((c) => c.attemptsAtCPerLogical),
        3,
      ),
    },
    ...[1, 0.9].map((multiple) => {
      const rows = r.nearCapacity.filter((f) => f.clientLimit && f.multiple === multiple)
      return {
        figure: `client-side limit at ${multiple}×${multiple < 1 ? ' (C has room)' : ''}: requests held / refused`,
        target: '0',
        passes: rows.map((f) => f.held === 0 && f.refused === 0),
        ours: rows.map((f) => `${f.held}/${f.refused}`).join(', '),
      }
    }),
  ]
}
