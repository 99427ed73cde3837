import { runConformanceSuite } from '@backpressure/conformance'
import { koaHarness } from './harness.js'

runConformanceSuite(koaHarness)
