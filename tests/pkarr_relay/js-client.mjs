// Test helper: the npm pkarr@1.3.0 client, for cross-client tests against a relay.
//
//   node js-client.mjs publish <relayUrl> <seedHex> <name> <txtValue> [timestampMicros]
//       -> prints {"status": <http status>, "publicKey": "<z32>", "timestamp": <µs>}
//   node js-client.mjs resolve <relayUrl> <z32PublicKey>
//       -> prints {"timestamp": <µs>, "records": [{"name", "type", "ttl", "data": [<utf8 strings>]}]}
//          (the JS client verifies the signature; a failure exits 1 with the message on stderr)
import { Pkarr, SignedPacket, z32 } from 'pkarr'

async function publish (relayUrl, seedHex, name, txtValue, timestamp) {
  const seed = Buffer.from(seedHex, 'hex')
  if (seed.length !== 32) throw new Error('seed must be 32 bytes of hex')
  const keyPair = Pkarr.generateKeyPair(seed)
  const packet = {
    id: 0,
    type: 'response',
    flags: 0,
    answers: [{ type: 'TXT', name, ttl: 300, class: 'IN', data: txtValue }]
  }
  const options = timestamp ? { timestamp: Number(timestamp) } : {}
  const signed = SignedPacket.fromPacket(keyPair, packet, options)
  const response = await Pkarr.relayPut(relayUrl, signed)
  return { status: response.status, publicKey: z32.encode(keyPair.publicKey), timestamp: signed.timestamp() }
}

async function resolve (relayUrl, publicKeyZ32) {
  const signed = await Pkarr.relayGet(relayUrl, z32.decode(publicKeyZ32))
  const records = signed.packet().answers.map((rr) => ({
    name: rr.name,
    type: rr.type,
    ttl: rr.ttl,
    data: Array.isArray(rr.data) ? rr.data.map((b) => Buffer.from(b).toString('utf8')) : [String(rr.data)]
  }))
  return { timestamp: signed.timestamp(), records }
}

const [command, ...args] = process.argv.slice(2)
try {
  let result
  if (command === 'publish' && args.length >= 4) result = await publish(...args)
  else if (command === 'resolve' && args.length === 2) result = await resolve(...args)
  else throw new Error('usage: js-client.mjs publish <relay> <seedHex> <name> <txt> [ts] | resolve <relay> <z32>')
  console.log(JSON.stringify(result))
} catch (error) {
  console.error(`js-client: ${error.message}`)
  process.exit(1)
}
