// Test harness: the npm pkarr@1.3.0 HTTP relay, fully offline on 127.0.0.1.
//
//   node local-relay.mjs [httpPort=0] [storageNodeCount=3]
//
// The package's own `pkarr relay` CLI listens on every interface and bootstraps from public DHT
// routers, so it must not be used in tests. Here the package's Relay and DHT classes are kept, but
// the DHT is pointed at a private Mainline DHT made of our own bittorrent-dht storage nodes (given a
// `verify` function so they accept BEP44 mutable puts), and every socket is bound to loopback.
// A PUT therefore really goes HTTP -> relay -> BEP44 put over UDP -> storage nodes, and back for GET.
// Prints one line `READY http://127.0.0.1:<port> ...` once it answers; SIGTERM/SIGINT stop it.
import MainlineNode from 'bittorrent-dht'
import sodium from 'sodium-universal'
import PkarrDht from 'pkarr/lib/dht.js'
import PkarrRelay from 'pkarr/lib/relay.js'

const LOOPBACK = '127.0.0.1'
const requestedHttpPort = Number.parseInt(process.argv[2] ?? '0', 10)
const storageNodeCount = Number.parseInt(process.argv[3] ?? '3', 10)

if (!Number.isInteger(requestedHttpPort) || requestedHttpPort < 0 || !(storageNodeCount >= 1)) {
  console.error('usage: node local-relay.mjs [httpPort>=0] [storageNodeCount>=1]')
  process.exit(2)
}

// Bind a bittorrent-dht node's UDP socket on loopback and resolve with its port.
function bindOnLoopback (node) {
  return new Promise((resolve, reject) => {
    node.once('error', reject)
    node.listen(0, LOOPBACK, () => {
      node.removeListener('error', reject)
      resolve(node.address().port)
    })
  })
}

const storageNodes = []
for (let i = 0; i < storageNodeCount; i++) {
  const seedNodes = storageNodes.map((n) => `${LOOPBACK}:${n.address().port}`)
  const node = new MainlineNode({
    host: LOOPBACK,
    bootstrap: seedNodes.length ? seedNodes : false,
    verify: sodium.crypto_sign_verify_detached
  })
  await bindOnLoopback(node)
  storageNodes.push(node)
}

// The pkarr wrapper would read/write ~/.config/pkarr/routing-table.json: give it a storage that does nothing.
const noRoutingTableFile = { loadRoutingTable () {}, saveRoutingTable () {} }
const dht = new PkarrDht({
  host: LOOPBACK,
  bootstrap: storageNodes.map((n) => `${LOOPBACK}:${n.address().port}`),
  storage: noRoutingTableFile
})
const relayDhtPort = await bindOnLoopback(dht._dht)
if (!dht._dht.ready) await new Promise((resolve) => dht._dht.once('ready', resolve))

const relay = new PkarrRelay({ dht })
await new Promise((resolve, reject) => {
  relay._server.once('error', reject)
  relay._server.listen(requestedHttpPort, LOOPBACK, resolve)
})

const storagePorts = storageNodes.map((n) => n.address().port).join(',')
console.log(`READY http://${LOOPBACK}:${relay.port} dht=${relayDhtPort} storage=${storagePorts}`)

let stopping = false
async function stop () {
  if (stopping) return
  stopping = true
  relay._server.close()
  await dht.destroy()
  await Promise.all(storageNodes.map((n) => new Promise((resolve) => n.destroy(resolve))))
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
