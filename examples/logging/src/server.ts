// A runnable example: `pnpm --filter @backpressure/example-logging start`, then overload
// http://127.0.0.1:3000/work and watch about one rejection in ten logged by each of the two sources.
import { createServer } from 'node:http'
import { HttpBackpressure, PASS } from '@backpressure/core'
import pino from 'pino'
import { rejectionLogger } from './index.js'

const logger = pino()
const rejections = rejectionLogger(logger, { sampleRate: 0.1 })
rejections.subscribe()

const http = new HttpBackpressure({ maxConcurrency: 10, maxQueueDepth: 20, onReject: rejections.onReject })
createServer(async (req, res) => {
  const decision = await http.decide(req, req.method ?? 'GET', req.url ?? '/', res)
  if (decision !== PASS) {
    res.writeHead(decision.status, decision.headers).end(decision.body)
    return
  }
  setTimeout(() => res.end('ok'), 50)
}).listen(3000, '127.0.0.1', () => logger.info('listening on http://127.0.0.1:3000'))
