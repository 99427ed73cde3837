// Imports every package by name, as an ESM user does, and runs the shared checks on what it got.
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as amqp from '@backpressure/amqp'
import * as bullmq from '@backpressure/bullmq'
import * as client from '@backpressure/client'
import * as core from '@backpressure/core'
import * as express from '@backpressure/express'
import * as fastify from '@backpressure/fastify'
import * as koa from '@backpressure/koa'
import * as prometheus from '@backpressure/prometheus'
import * as redis from '@backpressure/redis'
import amqplib from 'amqplib'
import * as bullmqLib from 'bullmq'
import expressApp from 'express'
import Fastify from 'fastify'
import * as ioredis from 'ioredis'
import Koa from 'koa'
import * as promClient from 'prom-client'
import { run } from './run.mjs'

const ours = { core, express, fastify, koa, client, prometheus, redis, bullmq, amqp }
const resolved = Object.fromEntries(
  Object.keys(ours).map((name) => [
    name,
    relative(process.cwd(), fileURLToPath(import.meta.resolve(`@backpressure/${name}`))),
  ]),
)
await run(
  'esm',
  ours,
  { express: expressApp, fastify: Fastify, Koa, promClient, ioredis, bullmq: bullmqLib, amqplib },
  resolved,
)
