import { runPermitSuite } from '@backpressure/conformance'
import { harness } from './harness.js'

runPermitSuite(harness)
