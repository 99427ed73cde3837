import { drainOnSignals, poolOptionsFromEnv } from '@backpressure/example-shared'
import { createApp } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const { app, limiter } = createApp({ pool: poolOptionsFromEnv() })

const server = app.listen(port, () => {
  console.log(`orders API (Express) on http://localhost:${port}  —  try /health, /metrics, /api/orders`)
})
drainOnSignals(limiter, server)
