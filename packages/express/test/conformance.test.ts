import { runConformanceSuite } from '@backpressure/conformance'
import { expressHarness } from './harness.js'

runConformanceSuite(expressHarness)
