import { runMetricsConformance } from '@backpressure/conformance'
import { expressHarness } from './harness.js'

runMetricsConformance(expressHarness)
