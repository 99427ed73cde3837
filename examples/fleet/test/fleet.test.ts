import { spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { type Haproxy, INSTANCES, type Instance, load, startHaproxy, startInstance } from '../src/fleet.js'

const haproxyAvailable = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0
if (!haproxyAvailable)
  console.warn('haproxy is not installed: skipping the fleet example (scripts/system-deps.sh)')

const running: { instances: Instance[]; proxy?: Haproxy }[] = []
afterEach(async () => {
  for (const { instances, proxy } of running.splice(0)) {
    await proxy?.stop()
    await Promise.all(instances.map((i) => i.close()))
  }
})

describe.skipIf(!haproxyAvailable)('the fleet example', () => {
  it.each([false, true])(
    'serves through HAProxy from every instance (agent feedback: %s)',
    async (feedback) => {
      const instances = await Promise.all(INSTANCES.map(startInstance))
      const entry: { instances: Instance[]; proxy?: Haproxy } = { instances }
      running.push(entry)
      entry.proxy = await startHaproxy(instances, feedback)
      // Well below capacity: every request is answered in time, by all three instances.
      const report = await load(entry.proxy.url, 60, 1000)
      const served = Object.values(report.okInTime).reduce((a, b) => a + b, 0)
      expect(served).toBe(report.offered)
      expect(Object.keys(report.okInTime).sort()).toEqual(['a', 'b', 'slow'])
    },
  )
})
