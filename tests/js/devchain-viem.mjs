// viem against a running devchain: deploy the OperatorRegistry, call, send,
// wait for receipts, read and decode logs, decode a custom error.
// Usage: node tests/js/devchain-viem.mjs RPC_URL
// Prints a JSON summary on stdout; exits non-zero on the first failed check.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  createPublicClient,
  createWalletClient,
  http,
  parseEther,
  BaseError,
  ContractFunctionRevertedError,
  defineChain,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'

const url = process.argv[2]
if (!url) {
  console.error('usage: node tests/js/devchain-viem.mjs RPC_URL')
  process.exit(2)
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const artifact = JSON.parse(readFileSync(join(root, 'contracts/artifacts/OperatorRegistry.json'), 'utf8'))
const abi = artifact.abi
const bytecode = artifact.bytecode.object ?? artifact.bytecode

function check(cond, what) {
  if (!cond) {
    console.error(`check failed: ${what}`)
    process.exit(1)
  }
}

// The public, well-known dev keys (accounts 0 and 1 of the test mnemonic).
const op0 = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80')
const op1 = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
// Defined here rather than imported from viem/chains, which pulls in modules
// the pinned `ox` override does not provide.
const foundry = defineChain({
  id: 31337,
  name: 'devchain',
  nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [url] } },
})
const transport = http(url)
const pub = createPublicClient({ chain: foundry, transport, pollingInterval: 100 })
const wallet0 = createWalletClient({ account: op0, chain: foundry, transport })
const wallet1 = createWalletClient({ account: op1, chain: foundry, transport })

check((await pub.getChainId()) === 31337, 'chain id')
const startBlock = await pub.getBlockNumber({ cacheTime: 0 })

// Plain transfer.
const to = '0x90F79bf6EB2c4f870365E785982E1f101E93b906'
const before = await pub.getBalance({ address: to })
const transferHash = await wallet0.sendTransaction({ to, value: parseEther('1.5') })
const transfer = await pub.waitForTransactionReceipt({ hash: transferHash })
check(transfer.status === 'success', 'transfer status')
check((await pub.getBalance({ address: to })) - before === parseEther('1.5'), 'transfer balance')

// Deploy, then register two operators.
const deployHash = await wallet0.deployContract({ abi, bytecode, args: [3600n, parseEther('1')] })
const deployed = await pub.waitForTransactionReceipt({ hash: deployHash })
check(deployed.status === 'success' && deployed.contractAddress, 'deploy')
const address = deployed.contractAddress
check((await pub.readContract({ address, abi, functionName: 'minStake' })) === parseEther('1'), 'minStake')

const caps = { engines: 1, cpuMillicores: 1000, memoryMiB: 512, diskGiB: 5, gpus: 0 }
for (const [wallet, peer, stake] of [[wallet0, '0x0a', '2'], [wallet1, '0x0b', '3']]) {
  const { request } = await pub.simulateContract({
    account: wallet.account, address, abi, functionName: 'register', args: [peer, caps], value: parseEther(stake),
  })
  const hash = await wallet.writeContract(request)
  const r = await pub.waitForTransactionReceipt({ hash })
  check(r.status === 'success', `register ${peer}`)
}
check(await pub.readContract({ address, abi, functionName: 'isRegistered', args: [op1.address] }), 'isRegistered')

// Logs: all Staked events, then only op1's by indexed topic.
const staked = await pub.getContractEvents({ address, abi, eventName: 'Staked', fromBlock: startBlock })
check(staked.length === 2, `two Staked events, got ${staked.length}`)
check(staked[1].args.totalStake === parseEther('3'), 'decoded Staked amount')
const mine = await pub.getContractEvents({
  address, abi, eventName: 'Staked', args: { operator: op1.address }, fromBlock: startBlock,
})
check(mine.length === 1 && mine[0].args.operator === op1.address, 'topic filter')
const raw = await pub.getLogs({ address, fromBlock: startBlock, toBlock: 'latest' })
check(raw.length >= 4, 'getLogs by address')

// A revert decodes into the contract's custom error.
let errorName = null
try {
  await pub.simulateContract({
    account: op0, address, abi, functionName: 'register', args: ['0x0a', caps], value: parseEther('2'),
  })
} catch (e) {
  const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null
  errorName = revert?.data?.errorName ?? null
}
check(errorName === 'OperatorRegistry__AlreadyRegistered', `custom error, got ${errorName}`)

const block = await pub.getBlock({ blockTag: 'latest', includeTransactions: true })
check(block.transactions.length === 1 && typeof block.baseFeePerGas === 'bigint', 'block shape')

console.log(JSON.stringify({
  registry: address,
  blocks: Number(await pub.getBlockNumber({ cacheTime: 0 })),
  staked: staked.length,
  error: errorName,
}))
