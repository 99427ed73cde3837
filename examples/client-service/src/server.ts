import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createInventory, createOrders } from './app.js'

// Two services in one process: inventory can serve 2 requests at a time; orders calls it for every
// request. Try `for i in $(seq 20); do curl -s localhost:3000/orders/sku-$i & done` and watch the retries
// spread out instead of piling onto inventory.
const inventory = createInventory({ capacity: 2, serviceMs: 100 }).listen(0, '127.0.0.1')
await once(inventory, 'listening')
const inventoryUrl = `http://127.0.0.1:${(inventory.address() as AddressInfo).port}`

const port = Number(process.env.PORT ?? 3000)
const orders = createOrders({ inventoryUrl, log: console.log }).listen(port, () => {
  console.log(`orders on http://localhost:${port}/orders/<sku>, calling inventory at ${inventoryUrl}`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    orders.close()
    inventory.close()
  })
}
