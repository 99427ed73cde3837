import { runPermitSuite } from '@backpressure/conformance'
import { fastifyHarness } from './harness.js'

runPermitSuite(fastifyHarness)
