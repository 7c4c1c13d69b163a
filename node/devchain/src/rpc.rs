//! Ethereum JSON-RPC: request framing and the method table.

use alloy::consensus::transaction::Recovered;
use alloy::consensus::{SignableTransaction, Transaction as _};
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::rpc::types::{
    Block, BlockTransactions, Filter, Header as RpcHeader, Transaction, TransactionReceipt,
    TransactionRequest,
};
use alloy::signers::SignerSync;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::DevChain;
use crate::chain::{Chain, FilterChanges, FilterKind, MinedBlock, MinedTx, SUGGESTED_TIP, rpc_log};
use crate::error::RpcError;

/// Most calls in one batch request.
pub const MAX_BATCH: usize = 1000;

/// A call's result, serialized once (blocks, receipts and logs are not built as `Value`s
/// first).
type RpcResult = Result<Box<RawValue>, RpcError>;

/// Answers a request body (one call or a batch) with the JSON response's bytes. `None` for a
/// notification (a call without an `id`) or an all-notification batch: JSON-RPC 2.0 answers
/// neither.
pub fn handle_body(dc: &DevChain, body: &[u8]) -> Option<Vec<u8>> {
    let parsed: Box<RawValue> = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(error_response(
                RawValue::NULL,
                &RpcError::parse(format!("invalid JSON: {e}")),
            ));
        }
    };
    match serde_json::from_str::<Vec<Box<RawValue>>>(parsed.get()) {
        Ok(calls) => {
            if calls.is_empty() {
                return Some(error_response(
                    RawValue::NULL,
                    &RpcError::invalid_request("empty batch"),
                ));
            }
            if calls.len() > MAX_BATCH {
                return Some(error_response(
                    RawValue::NULL,
                    &RpcError::invalid_request(format!(
                        "batch of {} calls; at most {MAX_BATCH} allowed",
                        calls.len()
                    )),
                ));
            }
            let out: Vec<Vec<u8>> = calls
                .into_iter()
                .filter_map(|c| handle_call(dc, &c))
                .collect();
            if out.is_empty() {
                return None;
            }
            let mut bytes = Vec::with_capacity(out.iter().map(|o| o.len() + 1).sum::<usize>() + 1);
            bytes.push(b'[');
            for (i, o) in out.iter().enumerate() {
                if i > 0 {
                    bytes.push(b',');
                }
                bytes.extend_from_slice(o);
            }
            bytes.push(b']');
            Some(bytes)
        }
        Err(_) => handle_call(dc, &parsed),
    }
}

/// A call's `id` as it was written (a number is echoed digit for digit).
#[derive(serde::Deserialize)]
struct CallId<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// One response object, written straight to bytes.
#[derive(serde::Serialize)]
struct Reply<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

impl Reply<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail; an error object stands in regardless.
        serde_json::to_vec(self).unwrap_or_else(|e| {
            format!(
                r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32603,"message":"internal error: {e}"}}}}"#
            )
            .into_bytes()
        })
    }
}

fn error_response(id: &RawValue, e: &RpcError) -> Vec<u8> {
    Reply {
        jsonrpc: "2.0",
        id,
        result: None,
        error: Some(e),
    }
    .to_bytes()
}

fn handle_call(dc: &DevChain, raw: &RawValue) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(raw.get()) else {
        return Some(error_response(
            RawValue::NULL,
            &RpcError::invalid_request("a call must be a JSON object"),
        ));
    };
    let is_notification = !obj.contains_key("id");
    // A repeated "id" key fails the borrowed read: the last one, as parsed, is echoed.
    let parsed_id = obj
        .get("id")
        .and_then(|v| serde_json::value::to_raw_value(v).ok());
    let id = match serde_json::from_str::<CallId>(raw.get()) {
        Ok(CallId { id: Some(id) }) => id,
        _ => parsed_id.as_deref().unwrap_or(RawValue::NULL),
    };
    let Some(Value::String(method)) = obj.remove("method") else {
        return Some(error_response(
            id,
            &RpcError::invalid_request("missing \"method\""),
        ));
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    let result = dispatch(dc, &method, params);
    if is_notification {
        return None;
    }
    Some(match result {
        Ok(v) => Reply {
            jsonrpc: "2.0",
            id,
            result: Some(&v),
            error: None,
        }
        .to_bytes(),
        Err(e) => {
            tracing::debug!(%method, error = %e, "JSON-RPC error");
            error_response(id, &e)
        }
    })
}

/// Parses positional parameters into a tuple; missing trailing ones are `null`.
fn params<T: DeserializeOwned>(params: Value, n: usize) -> Result<T, RpcError> {
    let mut arr = match params {
        Value::Null => Vec::new(),
        Value::Array(a) => a,
        Value::Object(_) if n >= 1 => vec![params],
        _ => return Err(RpcError::invalid_params("params must be an array")),
    };
    if arr.len() > n {
        return Err(RpcError::invalid_params(format!(
            "expected at most {n} parameters, got {}",
            arr.len()
        )));
    }
    arr.resize(n, Value::Null);
    serde_json::from_value(Value::Array(arr))
        .map_err(|e| RpcError::invalid_params(format!("invalid parameters: {e}")))
}

/// A quantity given as a JSON number or a hex/decimal string.
fn quantity(v: &Value) -> Result<u64, RpcError> {
    let bad = || RpcError::invalid_params(format!("expected a quantity, got {v}"));
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad()),
            None => s.parse().map_err(|_| bad()),
        },
        _ => Err(bad()),
    }
}

fn q(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn to_value<T: serde::Serialize>(v: T) -> RpcResult {
    serde_json::value::to_raw_value(&v)
        .map_err(|e| RpcError::server(format!("internal error: {e}")))
}

fn raw(v: Value) -> RpcResult {
    to_value(v)
}

fn block_number_of(chain: &Chain, tag: BlockNumberOrTag) -> u64 {
    match tag {
        BlockNumberOrTag::Earliest => 0,
        BlockNumberOrTag::Number(n) => n,
        _ => chain.height(),
    }
}

fn block_of(chain: &Chain, id: Option<BlockId>) -> Option<&MinedBlock> {
    match id.unwrap_or_default() {
        BlockId::Hash(h) => chain.block_by_hash(&h.block_hash),
        BlockId::Number(tag) => chain.block(block_number_of(chain, tag)),
    }
}

/// State is kept for the latest block only; any other block is an error.
fn check_state_block(chain: &Chain, id: Option<BlockId>) -> Result<(), RpcError> {
    let latest = chain.height();
    let number = match id.unwrap_or_default() {
        BlockId::Hash(h) => match chain.block_by_hash(&h.block_hash) {
            Some(b) => b.header.number,
            None => {
                return Err(RpcError::server(format!(
                    "header not found: block {}",
                    h.block_hash
                )));
            }
        },
        BlockId::Number(tag) => block_number_of(chain, tag),
    };
    if number > latest {
        return Err(RpcError::server(format!(
            "header not found: block {number} (latest is {latest})"
        )));
    }
    if number < latest {
        return Err(RpcError::server(format!(
            "historical state is not available: the devchain keeps the state of the latest block ({latest}) only; \
             query \"latest\" instead of block {number}"
        )));
    }
    Ok(())
}

fn rpc_tx(b: &MinedBlock, i: usize, t: &MinedTx) -> Transaction {
    Transaction {
        inner: Recovered::new_unchecked(t.tx.clone(), t.sender),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        transaction_index: Some(i as u64),
        effective_gas_price: Some(t.effective_gas_price),
        block_timestamp: Some(b.header.timestamp),
    }
}

fn rpc_receipt(b: &MinedBlock, i: usize, t: &MinedTx) -> TransactionReceipt {
    let mut li = 0;
    let inner = t.receipt.clone().map_logs(|log| {
        let l = rpc_log(b, i, t, li, &log);
        li += 1;
        l
    });
    TransactionReceipt {
        inner,
        transaction_hash: t.hash,
        transaction_index: Some(i as u64),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        gas_used: t.gas_used,
        effective_gas_price: t.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: t.sender,
        to: t.tx.to(),
        contract_address: t.contract_address,
    }
}

fn rpc_block(b: &MinedBlock, full: bool) -> RpcResult {
    let transactions = if full {
        BlockTransactions::Full(
            b.txs
                .iter()
                .enumerate()
                .map(|(i, t)| rpc_tx(b, i, t))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(b.txs.iter().map(|t| t.hash).collect())
    };
    let block: Block = Block {
        header: RpcHeader {
            hash: b.hash,
            inner: b.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(b.size)),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    };
    to_value(block)
}

fn filter_id(v: Value) -> Result<u64, RpcError> {
    let (id,): (Value,) = params(v, 1)?;
    quantity(&id)
}

/// Answers one JSON-RPC method call.
pub fn dispatch(dc: &DevChain, method: &str, p: Value) -> RpcResult {
    if !matches!(p, Value::Null | Value::Array(_) | Value::Object(_)) {
        return Err(RpcError::invalid_params("params must be an array"));
    }
    match method {
        "web3_clientVersion" => raw(json!(concat!(
            "shoal-devchain/v",
            env!("CARGO_PKG_VERSION")
        ))),
        "web3_sha3" => {
            let (data,): (Bytes,) = params(p, 1)?;
            to_value(keccak256(&data))
        }
        "net_version" => raw(json!(dc.chain_id().to_string())),
        "net_listening" => raw(json!(true)),
        "net_peerCount" => raw(q(0)),
        "eth_chainId" => raw(q(dc.chain_id())),
        "eth_syncing" | "eth_mining" => raw(json!(method == "eth_mining")),
        "eth_hashrate" => raw(q(0)),
        "eth_coinbase" => to_value(Address::ZERO),
        "eth_accounts" => to_value(
            dc.dev_accounts()
                .iter()
                .map(|a| a.address)
                .collect::<Vec<_>>(),
        ),
        "eth_blockNumber" => raw(q(dc.chain().height())),
        "eth_gasPrice" => {
            let base = dc.chain().next_base_fee();
            to_value(U256::from(u128::from(base) + SUGGESTED_TIP))
        }
        "eth_maxPriorityFeePerGas" => to_value(U256::from(SUGGESTED_TIP)),
        "eth_blobBaseFee" => raw(q(1)),
        "eth_feeHistory" => {
            let (count, newest, percentiles): (Value, Option<BlockNumberOrTag>, Option<Vec<f64>>) =
                params(p, 3)?;
            let count = quantity(&count)?;
            let chain = dc.chain();
            let newest = block_number_of(&chain, newest.unwrap_or_default());
            if newest > chain.height() {
                return Err(RpcError::server(format!("block {newest} not found")));
            }
            let percentiles = percentiles.unwrap_or_default();
            if percentiles.len() > 100 || percentiles.windows(2).any(|w| w[0] > w[1]) {
                return Err(RpcError::invalid_params(
                    "reward percentiles must be at most 100 ascending values",
                ));
            }
            to_value(chain.fee_history(count, newest, &percentiles))
        }
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" => {
            let (addr, block): (Address, Option<BlockId>) = params(p, 2)?;
            let chain = dc.chain();
            if method == "eth_getTransactionCount"
                && matches!(block, Some(BlockId::Number(BlockNumberOrTag::Pending)))
            {
                return raw(q(chain.pending_nonce(&addr)));
            }
            check_state_block(&chain, block)?;
            match method {
                "eth_getBalance" => to_value(chain.account(&addr).balance),
                "eth_getTransactionCount" => raw(q(chain.account(&addr).nonce)),
                _ => to_value(chain.code(&addr)),
            }
        }
        "eth_getStorageAt" => {
            let (addr, slot, block): (Address, U256, Option<BlockId>) = params(p, 3)?;
            let chain = dc.chain();
            check_state_block(&chain, block)?;
            to_value(B256::from(chain.storage(&addr, slot)))
        }
        "eth_call" => {
            let (req, block): (TransactionRequest, Option<BlockId>) = params(p, 2)?;
            let chain = dc.chain();
            if !matches!(block, Some(BlockId::Number(BlockNumberOrTag::Pending))) {
                check_state_block(&chain, block)?;
            }
            to_value(chain.call(&req)?)
        }
        "eth_estimateGas" => {
            let (req, block): (TransactionRequest, Option<BlockId>) = params(p, 2)?;
            let chain = dc.chain();
            if !matches!(block, Some(BlockId::Number(BlockNumberOrTag::Pending))) {
                check_state_block(&chain, block)?;
            }
            raw(q(chain.estimate_gas(&req)?))
        }
        "eth_sendRawTransaction" => {
            let (raw,): (Bytes,) = params(p, 1)?;
            // Decoding and signature recovery run outside the chain lock.
            let (tx, sender) = crate::chain::decode_raw(&raw)?;
            to_value(dc.chain().submit_recovered(tx, sender)?)
        }
        "eth_sendTransaction" => {
            let (req,): (TransactionRequest,) = params(p, 1)?;
            to_value(send_transaction(dc, req)?)
        }
        "eth_getTransactionByHash" => {
            let (hash,): (B256,) = params(p, 1)?;
            let chain = dc.chain();
            if let Some((b, i)) = chain.mined_tx(&hash) {
                return to_value(rpc_tx(b, i, &b.txs[i]));
            }
            match chain.pending_tx(&hash) {
                Some(pt) => to_value(Transaction {
                    inner: Recovered::new_unchecked(pt.tx.clone(), pt.sender),
                    block_hash: None,
                    block_number: None,
                    transaction_index: None,
                    effective_gas_price: None,
                    block_timestamp: None,
                }),
                None => raw(Value::Null),
            }
        }
        "eth_getTransactionReceipt" => {
            let (hash,): (B256,) = params(p, 1)?;
            let chain = dc.chain();
            match chain.mined_tx(&hash) {
                Some((b, i)) => to_value(rpc_receipt(b, i, &b.txs[i])),
                None => raw(Value::Null),
            }
        }
        "eth_getBlockReceipts" => {
            let (id,): (BlockId,) = params(p, 1)?;
            let chain = dc.chain();
            match block_of(&chain, Some(id)) {
                Some(b) => to_value(
                    b.txs
                        .iter()
                        .enumerate()
                        .map(|(i, t)| rpc_receipt(b, i, t))
                        .collect::<Vec<_>>(),
                ),
                None => raw(Value::Null),
            }
        }
        "eth_getBlockByNumber" | "eth_getBlockByHash" => {
            let (id, full): (BlockId, Option<bool>) = params(p, 2)?;
            let chain = dc.chain();
            match block_of(&chain, Some(id)) {
                Some(b) => rpc_block(b, full.unwrap_or(false)),
                None => raw(Value::Null),
            }
        }
        "eth_getBlockTransactionCountByNumber" | "eth_getBlockTransactionCountByHash" => {
            let (id,): (BlockId,) = params(p, 1)?;
            let chain = dc.chain();
            raw(block_of(&chain, Some(id))
                .map(|b| q(b.txs.len() as u64))
                .unwrap_or(Value::Null))
        }
        "eth_getUncleCountByBlockNumber" | "eth_getUncleCountByBlockHash" => raw(q(0)),
        "eth_getUncleByBlockNumberAndIndex" | "eth_getUncleByBlockHashAndIndex" => raw(Value::Null),
        "eth_getTransactionByBlockNumberAndIndex" | "eth_getTransactionByBlockHashAndIndex" => {
            let (id, index): (BlockId, Value) = params(p, 2)?;
            let index = quantity(&index)? as usize;
            let chain = dc.chain();
            match block_of(&chain, Some(id)).and_then(|b| b.txs.get(index).map(|t| (b, t))) {
                Some((b, t)) => to_value(rpc_tx(b, index, t)),
                None => raw(Value::Null),
            }
        }
        "eth_getLogs" => {
            let (filter,): (Filter,) = params(p, 1)?;
            let chain = dc.chain();
            let (from, to) = chain.filter_range(&filter)?;
            to_value(chain.logs(&filter, from, to)?)
        }
        "eth_newFilter" => {
            let (filter,): (Filter,) = params(p, 1)?;
            raw(q(dc.chain().new_filter(FilterKind::Logs(Box::new(filter)))))
        }
        "eth_newBlockFilter" => raw(q(dc.chain().new_filter(FilterKind::Blocks))),
        "eth_newPendingTransactionFilter" => {
            raw(q(dc.chain().new_filter(FilterKind::PendingTransactions)))
        }
        "eth_uninstallFilter" => raw(json!(dc.chain().uninstall_filter(filter_id(p)?))),
        "eth_getFilterChanges" => match dc.chain().filter_changes(filter_id(p)?)? {
            FilterChanges::Hashes(h) => to_value(h),
            FilterChanges::Logs(l) => to_value(l),
        },
        "eth_getFilterLogs" => to_value(dc.chain().filter_logs(filter_id(p)?)?),
        // Mining and time controls (anvil's and hardhat's names).
        "evm_mine" | "anvil_mine" | "hardhat_mine" => {
            let (a, b): (Option<Value>, Option<Value>) = params(p, 2)?;
            let mut chain = dc.chain();
            if method == "evm_mine" {
                let ts = match a {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(o)) => o.get("timestamp").map(quantity).transpose()?,
                    Some(v) => Some(quantity(&v)?),
                };
                chain.mine(ts)?;
                return raw(json!("0x0"));
            }
            let count = a.as_ref().map(quantity).transpose()?.unwrap_or(1);
            let interval = b.as_ref().map(quantity).transpose()?;
            if count > 100_000 {
                return Err(RpcError::invalid_params("at most 100000 blocks at once"));
            }
            for _ in 0..count {
                let ts = match interval {
                    None => None,
                    Some(i) => Some(chain.latest().header.timestamp.checked_add(i).ok_or_else(
                        || RpcError::invalid_params("interval too large: the timestamp overflows"),
                    )?),
                };
                chain.mine(ts)?;
            }
            raw(Value::Null)
        }
        "evm_increaseTime" | "anvil_increaseTime" => {
            let (secs,): (Value,) = params(p, 1)?;
            let secs = i64::try_from(quantity(&secs)?)
                .map_err(|_| RpcError::invalid_params("time too large"))?;
            raw(q(dc.chain().increase_time(secs)? as u64))
        }
        "evm_setNextBlockTimestamp" | "anvil_setNextBlockTimestamp" => {
            let (ts,): (Value,) = params(p, 1)?;
            dc.chain().set_next_timestamp(quantity(&ts)?)?;
            raw(Value::Null)
        }
        "evm_setAutomine" | "anvil_setAutomine" => {
            let (on,): (bool,) = params(p, 1)?;
            let mut chain = dc.chain();
            chain.automine = on;
            if on {
                chain.mine(None)?;
            }
            raw(Value::Null)
        }
        "anvil_getAutomine" | "hardhat_getAutomine" => raw(json!(dc.chain().automine)),
        "evm_snapshot" | "anvil_snapshot" => raw(q(dc.chain().snapshot()?)),
        "evm_revert" | "anvil_revert" => {
            let (id,): (Value,) = params(p, 1)?;
            raw(json!(dc.chain().revert(quantity(&id)?)?))
        }
        "anvil_setBalance" | "hardhat_setBalance" => {
            let (addr, bal): (Address, U256) = params(p, 2)?;
            dc.chain().set_balance(addr, bal)?;
            raw(json!(true))
        }
        "anvil_setCode" | "hardhat_setCode" => {
            let (addr, code): (Address, Bytes) = params(p, 2)?;
            dc.chain().set_code(addr, code)?;
            raw(json!(true))
        }
        "anvil_setNonce" | "hardhat_setNonce" => {
            let (addr, nonce): (Address, Value) = params(p, 2)?;
            dc.chain().set_nonce(addr, quantity(&nonce)?)?;
            raw(json!(true))
        }
        "anvil_setStorageAt" | "hardhat_setStorageAt" => {
            let (addr, slot, value): (Address, U256, B256) = params(p, 3)?;
            dc.chain().set_storage(addr, slot, value)?;
            raw(json!(true))
        }
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// `eth_sendTransaction`: fills, signs with a dev account key, and submits.
fn send_transaction(dc: &DevChain, mut req: TransactionRequest) -> Result<B256, RpcError> {
    let from = req
        .from
        .ok_or_else(|| RpcError::invalid_params("eth_sendTransaction needs a \"from\" address"))?;
    let Some(account) = dc.dev_accounts().iter().find(|a| a.address == from) else {
        return Err(RpcError::server(format!(
            "unknown account {from}: the devchain signs only for its dev accounts (eth_accounts); \
             sign the transaction yourself and send it with eth_sendRawTransaction"
        )));
    };
    let mut chain = dc.chain();
    if req.nonce.is_none() {
        req.nonce = Some(chain.pending_nonce(&from));
    }
    req.chain_id = Some(dc.chain_id());
    if req.gas.is_none() {
        req.gas = Some(chain.estimate_gas(&req)?);
    }
    if req.gas_price.is_none() {
        let tip = req.max_priority_fee_per_gas.unwrap_or(SUGGESTED_TIP);
        let max_fee = req
            .max_fee_per_gas
            .unwrap_or(2 * u128::from(chain.next_base_fee()) + tip);
        req.max_priority_fee_per_gas = Some(tip.min(max_fee));
        req.max_fee_per_gas = Some(max_fee);
    }
    let typed = req.build_typed_tx().map_err(|_| {
        RpcError::invalid_params("the transaction request is incomplete or mixes fee fields")
    })?;
    let signature = account
        .signer
        .sign_hash_sync(&typed.signature_hash())
        .map_err(|e| RpcError::server(format!("cannot sign: {e}")))?;
    let envelope = typed.into_envelope(signature);
    if envelope.nonce() < chain.account(&from).nonce {
        return Err(RpcError::server("nonce too low"));
    }
    chain.submit_recovered(envelope, from)
}
