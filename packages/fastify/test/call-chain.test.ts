import { runCallChainSuite } from '@backpressure/conformance'
import { fastifyHarness } from './harness.js'

runCallChainSuite(fastifyHarness)
