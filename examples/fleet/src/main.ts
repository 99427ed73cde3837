/**
 * `pnpm --filter @backpressure/example-fleet start`: three instances and HAProxy in front, the same
 * load twice — plain round-robin, then with agent feedback — and each instance's and the fleet's goodput.
 */
import { INSTANCES, load, startHaproxy, startInstance } from './fleet.js'

const multiple = Number(process.env.LOAD ?? 1.5)
const seconds = Number(process.env.SECONDS ?? 8)
const capacity = INSTANCES.reduce((sum, i) => sum + (i.connections * 1000) / i.queryMs, 0)
const rate = Math.round(multiple * capacity)

console.log(
  `instances: ${INSTANCES.map((i) => `${i.name} (${i.connections} connections × ${i.queryMs} ms = ${(i.connections * 1000) / i.queryMs} req/s)`).join(', ')}`,
)
console.log(`fleet capacity ${capacity} req/s; load ${rate} req/s (${multiple}×) for ${seconds} s per run\n`)

for (const feedback of [false, true]) {
  const instances = await Promise.all(INSTANCES.map(startInstance))
  const proxy = await startHaproxy(instances, feedback)
  try {
    const report = await load(proxy.url, rate, seconds * 1000)
    const served = INSTANCES.map((i) => report.okInTime[i.name] ?? 0)
    const total = served.reduce((a, b) => a + b, 0)
    console.log(feedback ? 'with agent feedback' : 'round-robin, no feedback')
    INSTANCES.forEach((i, index) => {
      const own = (i.connections * 1000) / i.queryMs
      const perSecond = served[index]! / seconds
      console.log(
        `  ${i.name.padEnd(5)} ${perSecond.toFixed(0).padStart(4)} req/s within 1 s  (${((100 * perSecond) / own).toFixed(0)}% of its capacity)`,
      )
    })
    console.log(
      `  fleet ${(total / seconds).toFixed(0).padStart(4)} req/s within 1 s  (${((100 * total) / seconds / capacity).toFixed(1)}% of ${capacity}); 503: ${report.rejected}, timed out: ${report.timedOut}\n`,
    )
  } finally {
    await proxy.stop()
    await Promise.all(instances.map((i) => i.close()))
  }
}
