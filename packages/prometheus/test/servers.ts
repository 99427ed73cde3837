import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BackpressureController, HttpBackpressureOptions } from '@backpressure/core'
import { backpressure as expressBackpressure } from '@backpressure/express'
import { backpressure as fastifyBackpressure } from '@backpressure/fastify'
import { backpressure as koaBackpressure } from '@backpressure/koa'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'

export type AdapterName = 'express' | 'fastify' | 'koa'

export interface RunningServer {
  readonly url: string
  readonly controller: BackpressureController
  close(): Promise<void>
}

/** `/work` answers after `workMs`: enough to hold a slot while the test sends more. */
const WORK_MS = 15

// biome-ignore lint/suspicious/noExplicitAny: the options are passed through untouched to each adapter
type AnyOptions = HttpBackpressureOptions<any>

/** Starts a real server of one adapter on 127.0.0.1, port 0, with `/work` behind backpressure. */
export async function startServer(
  adapter: AdapterName,
  options: AnyOptions,
  workMs = WORK_MS,
): Promise<RunningServer> {
  const work = () => new Promise<void>((resolve) => setTimeout(resolve, workMs))
  if (adapter === 'fastify') {
    const app = Fastify()
    await app.register(fastifyBackpressure, options)
    app.get('/work', async () => {
      await work()
      return 'ok'
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    return {
      url: `http://127.0.0.1:${port}`,
      controller: (app as unknown as { backpressure: BackpressureController }).backpressure,
      close: async () => {
        app.server.closeAllConnections()
        await app.close()
      },
    }
  }
  if (adapter === 'express') {
    const limiter = expressBackpressure(options)
    const app = express()
    app.use(limiter)
    app.get('/work', async (_req, res) => {
      await work()
      res.send('ok')
    })
    return listen(createServer(app), limiter.controller, () => limiter.close())
  }
  const limiter = koaBackpressure(options)
  const app = new Koa()
  app.use(limiter)
  app.use(async (ctx) => {
    if (ctx.path !== '/work') return
    await work()
    ctx.body = 'ok'
  })
  return listen(createServer(app.callback()), limiter.controller, () => limiter.close())
}

async function listen(
  server: Server,
  controller: BackpressureController,
  close: () => Promise<void>,
): Promise<RunningServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    controller,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      // Not awaited past a bound: a test may have closed the controller already.
      await Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 500))])
    },
  }
}

/** Sends `count` requests to `/work` at once and tallies the statuses. */
export async function burst(url: string, count: number): Promise<Map<number, number>> {
  const statuses = await Promise.all(
    Array.from({ length: count }, async () => {
      const response = await fetch(`${url}/work`)
      await response.text()
      return response.status
    }),
  )
  const tally = new Map<number, number>()
  for (const status of statuses) tally.set(status, (tally.get(status) ?? 0) + 1)
  return tally
}
