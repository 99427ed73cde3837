import { createApp } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const { app, limiter } = createApp({
  pool: {
    connections: Number(process.env.DB_CONNECTIONS ?? 4),
    queryMs: Number(process.env.DB_QUERY_MS ?? 10),
  },
})

const server = app.listen(port, () => {
  console.log(`orders API (Express) on http://localhost:${port}  —  try /health, /metrics, /api/orders`)
})

// Draining: closing the limiter turns /ready to 503 (the load balancer stops sending new traffic) and
// answers queued requests with 503; the server then stops once the requests in flight have finished.
process.once('SIGTERM', () => {
  void limiter.close().then(() => server.close())
})
process.once('SIGINT', () => {
  void limiter.close().then(() => server.close())
})
