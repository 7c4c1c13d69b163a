// Reference UnixFS import with helia's importer (ipfs-unixfs-importer, the one
// @helia/unixfs uses). Usage: node tests/js/store-import.mjs PROFILE PATH...
// Prints the root CID of each PATH (a file or a folder) on stdout, one a line.
//
// Both IPIP-499 profiles are passed explicitly: the `profile` name plus every
// option it implies, so a change of defaults upstream cannot pass unnoticed.
import { readdir, lstat } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { basename, join } from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'

const PROFILES = {
  'unixfs-v1-2025': {
    profile: 'unixfs-v1-2025',
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: 1_048_576 }),
    layout: balanced({ maxChildrenPerNode: 1024 }),
    shardSplitStrategy: 'block-bytes',
    shardSplitThresholdBytes: 262_144,
    shardFanoutBits: 8,
    reduceSingleLeafToSelf: true,
    fieldOrder: 'links-first'
  },
  'unixfs-v0-2015': {
    profile: 'unixfs-v0-2015',
    cidVersion: 0,
    rawLeaves: false,
    chunker: fixedSize({ chunkSize: 262_144 }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    shardSplitStrategy: 'links-bytes',
    shardSplitThresholdBytes: 262_144,
    shardFanoutBits: 8,
    reduceSingleLeafToSelf: true,
    fieldOrder: 'links-first'
  }
}

const [profileName, ...roots] = process.argv.slice(2)
const options = PROFILES[profileName]
if (options == null || roots.length === 0) {
  console.error('usage: store-import.mjs unixfs-v1-2025|unixfs-v0-2015 PATH...')
  process.exit(2)
}

// Files and empty folders, parents before children, names in byte order.
async function * walk (abs, rel) {
  const st = await lstat(abs)
  if (st.isFile()) {
    yield { path: rel, content: createReadStream(abs, { highWaterMark: 1 << 20 }) }
    return
  }
  if (!st.isDirectory()) throw new Error(`unsupported entry ${abs}`)
  const names = (await readdir(abs)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  if (names.length === 0) {
    yield { path: rel }
    return
  }
  for (const name of names) yield * walk(join(abs, name), `${rel}/${name}`)
}

for (const root of roots) {
  let last
  for await (const entry of importer(walk(root, basename(root)), new BlackHoleBlockstore(), options)) {
    last = entry
  }
  console.log(last.cid.toString())
}
