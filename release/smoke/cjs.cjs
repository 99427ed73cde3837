// Requires every package by name, as a CommonJS user does, and runs the shared checks on what it got.
const { relative } = require('node:path')

const names = ['core', 'express', 'fastify', 'koa', 'client', 'prometheus', 'redis', 'bullmq', 'amqp']
const ours = Object.fromEntries(names.map((name) => [name, require(`@backpressure/${name}`)]))
const resolved = Object.fromEntries(
  names.map((name) => [name, relative(process.cwd(), require.resolve(`@backpressure/${name}`))]),
)
const peers = {
  express: require('express'),
  fastify: require('fastify'),
  Koa: require('koa'),
  promClient: require('prom-client'),
  ioredis: require('ioredis'),
  bullmq: require('bullmq'),
  amqplib: require('amqplib'),
}

import('./run.mjs').then(({ run }) => run('cjs', ours, peers, resolved))
