// Stands in for an ioredis client: records what the store sends and answers as the script would for
// a fresh bucket of 5 after one take.
export function fakeClient() {
  const client = {
    sent: [],
    lua: undefined,
    defineCommand(name, definition) {
      client.lua = definition.lua
      client[name] = (...args) => {
        client.sent.push([name, definition.numberOfKeys, ...args])
        return Promise.resolve([1, '4'])
      }
    },
  }
  return client
}
