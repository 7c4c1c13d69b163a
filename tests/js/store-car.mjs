// Reads a CAR with @ipld/car and lists the UnixFS tree under its root with
// ipfs-unixfs-exporter. Usage: node tests/js/store-car.mjs FILE.car
// Prints JSON: {"roots": [...], "entries": {"path": "sha256-hex" | "dir"}}.
// Every block's bytes are checked against its CID first.
import { createReadStream } from 'node:fs'
import { createHash } from 'node:crypto'
import { CarBlockIterator } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { exporter } from 'ipfs-unixfs-exporter'
import { sha256 } from 'multiformats/hashes/sha2'

const file = process.argv[2]
const reader = await CarBlockIterator.fromIterable(createReadStream(file))
const roots = (await reader.getRoots()).map(c => c.toString())
const store = new MemoryBlockstore()
for await (const { cid, bytes } of reader) {
  const digest = await sha256.digest(bytes)
  if (Buffer.compare(Buffer.from(digest.digest), Buffer.from(cid.multihash.digest)) !== 0) {
    throw new Error(`block ${cid} does not match its hash`)
  }
  await store.put(cid, bytes)
}
const entries = {}
async function visit (cid, rel) {
  const entry = await exporter(cid, store)
  if (entry.type === 'directory') {
    entries[rel] = 'dir'
    for await (const child of entry.entries()) {
      await visit(child.cid, rel === '' ? child.name : `${rel}/${child.name}`)
    }
  } else {
    const h = createHash('sha256')
    for await (const chunk of entry.content()) h.update(chunk)
    entries[rel] = h.digest('hex')
  }
}
await visit(roots[0], '')
console.log(JSON.stringify({ roots, entries }))
