import { defaultConcurrencyLimit } from '@backpressure/client'
import { fleet } from '../call-chain.js'

const multiple = Number(process.argv[2] ?? 1)
const trace: string[] = []
const t0 = performance.now()
const timer = setInterval(() => {
  const origins = (
    defaultConcurrencyLimit as unknown as {
      origins: Map<string, { limit: number; inFlight: number; queue: { size: number } }>
    }
  ).origins
  for (const s of origins.values())
    trace.push(`${Math.round(performance.now() - t0)}:${s.limit.toFixed(1)}/${s.inFlight}/${s.queue.size}`)
}, 100)
const r = await fleet(multiple, true, 5000)
clearInterval(timer)
console.log(JSON.stringify(r))
console.log(trace.join(' '))
