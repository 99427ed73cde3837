import { runMetricsConformance } from '@backpressure/conformance'
import { fastifyHarness } from './harness.js'

runMetricsConformance(fastifyHarness)
