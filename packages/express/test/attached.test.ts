import { attachedMode, runConformanceSuite, runPermitSuite } from '@backpressure/conformance'
import { harness } from './harness.js'

// Every behaviour again with admission attached to the server, before the framework.
runConformanceSuite(attachedMode(harness))
runPermitSuite(attachedMode(harness))
