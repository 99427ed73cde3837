import { runMetricsConformance } from '@backpressure/conformance'
import { harness as koaHarness } from './harness.js'

runMetricsConformance(koaHarness)
