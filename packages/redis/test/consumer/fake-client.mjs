// Stands in for an ioredis client: records what is sent and answers as the scripts would: the token
// bucket's for a fresh bucket of 5 after one take, the shared baseline's for a fleet at 10 and 14 ms.
export function fakeClient() {
  const client = {
    sent: [],
    lua: undefined,
    scripts: {},
    defineCommand(name, definition) {
      client.lua = definition.lua
      client.scripts[name] = definition.lua
      client[name] = (...args) => {
        client.sent.push([name, definition.numberOfKeys, ...args])
        return Promise.resolve(name === 'backpressureSharedBaseline' ? ['10', '14'] : [1, '4'])
      }
    },
  }
  return client
}
