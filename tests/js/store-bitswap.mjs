// A helia node (TCP + noise + yamux on loopback, Bitswap) for interop tests.
//   node tests/js/store-bitswap.mjs serve PATH
//     imports PATH (unixfs-v1-2025), prints {"cid", "addrs"} as one JSON line,
//     serves it until stdin closes.
//   node tests/js/store-bitswap.mjs fetch ADDR CID
//     dials ADDR, fetches the DAG under CID over Bitswap and prints
//     {"entries": {"path": "sha256-hex" | "dir"}}.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { MemoryDatastore } from 'datastore-core/memory'
import { createHeliaLight } from 'helia'
import { exporter } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'

const TIMEOUT_MS = 60_000

// Node 20 lacks Promise.withResolvers, which helia's queues use.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

async function node () {
  const helia = withBitswap(withLibp2pLight(createHeliaLight({
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore()
  }), {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

async function * walk (abs, rel) {
  const st = await lstat(abs)
  if (st.isFile()) {
    yield { path: rel, content: createReadStream(abs, { highWaterMark: 1 << 20 }) }
    return
  }
  const names = (await readdir(abs)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  if (names.length === 0) {
    yield { path: rel }
    return
  }
  for (const name of names) yield * walk(join(abs, name), `${rel}/${name}`)
}

const [mode, ...args] = process.argv.slice(2)
const helia = await node()

if (mode === 'serve') {
  let last
  for await (const entry of importer(walk(args[0], basename(args[0])), helia.blockstore, { profile: 'unixfs-v1-2025' })) {
    last = entry
  }
  const addrs = helia.libp2p.getMultiaddrs().map(a => a.toString())
  console.log(JSON.stringify({ cid: last.cid.toString(), addrs }))
  process.stdin.resume()
  process.stdin.on('end', async () => {
    await helia.stop()
    process.exit(0)
  })
} else if (mode === 'fetch') {
  const [addr, cidText] = args
  await helia.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(TIMEOUT_MS) })
  const entries = {}
  const opts = { signal: AbortSignal.timeout(TIMEOUT_MS) }
  async function visit (cid, rel) {
    const entry = await exporter(cid, helia.blockstore, opts)
    if (entry.type === 'directory') {
      entries[rel] = 'dir'
      for await (const child of entry.entries(opts)) {
        await visit(child.cid, rel === '' ? child.name : `${rel}/${child.name}`)
      }
    } else {
      const h = createHash('sha256')
      for await (const chunk of entry.content(opts)) h.update(chunk)
      entries[rel] = h.digest('hex')
    }
  }
  await visit(CID.parse(cidText), '')
  console.log(JSON.stringify({ entries }))
  await helia.stop()
  process.exit(0)
} else {
  console.error('usage: store-bitswap.mjs serve PATH | fetch ADDR CID')
  process.exit(2)
}
