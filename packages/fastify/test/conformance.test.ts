import { runConformanceSuite } from '@backpressure/conformance'
import { fastifyHarness } from './harness.js'

runConformanceSuite(fastifyHarness)
