//! Call batching: one key's calls to a contract with `batch(bytes[])` (the JobMarket) that are
//! queued while an earlier transaction of theirs is in flight go out together in one
//! transaction, each still answered with its own result.
//!
//! A call is sent at once, on its own, while fewer than [`IN_FLIGHT`] transactions of the
//! key's calls to the target are in flight. Calls arriving while they all are wait, and go out
//! as one `batch` of at most `max_batch` calls as soon as one is mined: nothing is delayed on
//! an idle key, and under load a node sends a few transactions per round trip instead of one
//! per call. `batch` runs every call as a delegatecall and emits
//! `CallFailed(index, reason)` for one that reverts (undoing only it); the caller of that call
//! gets [`Error::Reverted`] with the reason, the others the shared receipt. A call that failed
//! without revert data (out of gas), and every call of a batch that failed as a whole, is sent
//! again on its own so its error is its own.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::{SolCall, SolEvent};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::bindings::JobMarket;
use crate::error::{ContractError, Error, Result};
use crate::tx::TxManager;

/// Calls waiting for a target's batcher beyond this make their senders wait (backpressure).
const QUEUE: usize = 1024;
/// Transactions of one target's calls in flight at once; calls arriving while all are in
/// flight queue up and form the next batch.
const IN_FLIGHT: usize = 4;

/// A call waiting to be sent, and where its outcome goes.
struct Queued {
    input: Bytes,
    reply: oneshot::Sender<Result<TransactionReceipt>>,
}

/// The batchers of one key, one per target contract, started on first use.
#[derive(Default)]
pub(crate) struct Batchers {
    queues: std::sync::Mutex<HashMap<Address, mpsc::Sender<Queued>>>,
}

impl Batchers {
    /// Sends `input` to `to` through the target's batcher (started on first use) and waits for
    /// its outcome.
    pub(crate) async fn send(
        &self,
        tm: &TxManager,
        to: Address,
        input: Bytes,
        max_batch: usize,
    ) -> Result<TransactionReceipt> {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            queues
                .entry(to)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(run(tm.downgrade(), to, rx, max_batch.max(1)));
                    tx
                })
                .clone()
        };
        let (reply, outcome) = oneshot::channel();
        let queued = Queued { input, reply };
        if let Err(mpsc::error::SendError(q)) = queue.send(queued).await {
            // The batcher stopped (its runtime is gone): send directly.
            return tm.send(call(to, q.input)).await;
        }
        outcome.await.unwrap_or(Err(Error::BatcherStopped))
    }
}

fn call(to: Address, input: Bytes) -> TransactionRequest {
    TransactionRequest::default().with_to(to).with_input(input)
}

/// A target's batcher: waits for a free slot (at most [`IN_FLIGHT`] transactions of the
/// target's calls are in flight), takes the first queued call and everything queued behind it
/// (up to `max`) and sends them; runs until the key's manager is dropped.
async fn run(
    tm: crate::tx::WeakTxManager,
    to: Address,
    mut rx: mpsc::Receiver<Queued>,
    max: usize,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut calls = vec![first];
        while calls.len() < max {
            match rx.try_recv() {
                Ok(q) => calls.push(q),
                Err(_) => break,
            }
        }
        let Some(tm) = tm.upgrade() else { return };
        tokio::spawn(async move {
            flush(&tm, to, calls).await;
            drop(slot);
        });
    }
}

async fn flush(tm: &TxManager, to: Address, calls: Vec<Queued>) {
    if calls.len() == 1 {
        return alone(tm, to, calls).await;
    }
    let input = JobMarket::batchCall {
        calls: calls.iter().map(|q| q.input.clone()).collect(),
    }
    .abi_encode();
    let receipt = match tm.send(call(to, input.into())).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%to, calls = calls.len(), error = %e, "a batch failed as a whole; sending its calls one by one");
            return alone(tm, to, calls).await;
        }
    };
    let mut failed = failures(&receipt, to);
    let mut retry = Vec::new();
    for (i, q) in calls.into_iter().enumerate() {
        match failed.remove(&i) {
            None => {
                let _ = q.reply.send(Ok(receipt.clone()));
            }
            Some(reason) if reason.is_empty() => retry.push(q),
            Some(reason) => {
                let _ = q
                    .reply
                    .send(Err(Error::Reverted(ContractError::decode(&reason))));
            }
        }
    }
    if !retry.is_empty() {
        tracing::debug!(%to, calls = retry.len(), tx = %receipt.transaction_hash, "calls of a batch failed without a reason (out of gas?); sending them one by one");
        alone(tm, to, retry).await;
    }
}

/// Sends each call as its own transaction, concurrently (the manager orders their nonces).
async fn alone(tm: &TxManager, to: Address, calls: Vec<Queued>) {
    let sends = calls.into_iter().map(|q| async move {
        let _ = q.reply.send(tm.send(call(to, q.input)).await);
    });
    futures::future::join_all(sends).await;
}

/// The calls of a mined batch that reverted: index → revert data.
fn failures(receipt: &TransactionReceipt, to: Address) -> HashMap<usize, Bytes> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|l| l.address() == to)
        .filter_map(|l| JobMarket::CallFailed::decode_log(&l.inner).ok())
        .filter_map(|e| Some((usize::try_from(e.index).ok()?, e.reason.clone())))
        .collect()
}
