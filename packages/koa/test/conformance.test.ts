import { runConformanceSuite } from '@backpressure/conformance'
import { harness } from './harness.js'

runConformanceSuite(harness)
