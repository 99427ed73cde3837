import { runCallChainSuite } from '@backpressure/conformance'
import { harness } from './harness.js'

runCallChainSuite(harness)
