import { runMetricsConformance } from '@backpressure/conformance'
import { harness as expressHarness } from './harness.js'

runMetricsConformance(expressHarness)
