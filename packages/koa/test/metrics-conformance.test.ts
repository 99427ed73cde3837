import { runMetricsConformance } from '@backpressure/conformance'
import { koaHarness } from './harness.js'

runMetricsConformance(koaHarness)
