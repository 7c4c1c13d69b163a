//! `ShardMarket` (sharded jobs, docs/sharding.md): posting, bidding, the draw, batch
//! commit-reveal and settlement, reads.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::{SolEvent, SolValue};

use crate::bindings::ShardMarket;
use crate::client::{ChainClient, call_error};
use crate::error::{Error, Result};
use crate::ids::JobId;

pub use crate::bindings::ShardMarket::{
    Batch as ShardBatch, BatchState, ShardJob, ShardJobParams, ShardJobState,
};

/// `keccak256(abi.encode(jobId, batch, operator, root, salt))`: what an operator commits for
/// one batch (`ShardMarket.commitmentOf`).
pub fn batch_commitment(job: JobId, batch: u32, operator: Address, root: B256, salt: B256) -> B256 {
    keccak256((job.0, batch, operator, root, salt).abi_encode())
}

impl ChainClient {
    fn shard_market_address(&self) -> Result<Address> {
        self.deployment()?.shard_market.ok_or(Error::NoShardMarket)
    }

    fn shard_market(
        &self,
    ) -> Result<ShardMarket::ShardMarketInstance<alloy::providers::DynProvider>> {
        Ok(ShardMarket::new(
            self.shard_market_address()?,
            self.provider().clone(),
        ))
    }

    /// Posts a sharded job, paying `shardCount × concurrency × pricePerShard`.
    pub async fn post_sharded_job(
        &self,
        params: ShardJobParams,
    ) -> Result<(JobId, TransactionReceipt)> {
        let to = self.shard_market_address()?;
        let escrow = U256::from(params.shardCount)
            * U256::from(params.concurrency)
            * U256::from(params.pricePerShard);
        let receipt = self
            .send_call(to, ShardMarket::postShardedJobCall { p: params }, escrow)
            .await?;
        let posted = receipt
            .inner
            .logs()
            .iter()
            .filter(|l| l.address() == to)
            .find_map(|l| ShardMarket::ShardJobPosted::decode_log(&l.inner).ok())
            .ok_or(Error::MissingEvent {
                tx_hash: receipt.transaction_hash,
                event: "ShardJobPosted",
                contract: "ShardMarket",
            })?;
        Ok((JobId(posted.jobId), receipt))
    }

    /// Bids on a sharded job; `prefer` bit `i` of word `w` = batch `256w + i` is held here.
    pub async fn shard_bid(&self, job: JobId, prefer: Vec<U256>) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::bidCall {
                jobId: job.0,
                prefer,
            },
            U256::ZERO,
        )
        .await
    }

    /// `closeBidding`: expires, arms the draw, or draws (up to 128 batches per call).
    pub async fn shard_close_bidding(&self, job: JobId) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::closeBiddingCall { jobId: job.0 },
            U256::ZERO,
        )
        .await
    }

    /// Commits this key's roots for `batches`.
    pub async fn commit_batches(
        &self,
        job: JobId,
        batches: Vec<u32>,
        commitments: Vec<B256>,
    ) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::commitBatchesCall {
                jobId: job.0,
                batches,
                commitments,
            },
            U256::ZERO,
        )
        .await
    }

    /// Reveals this key's roots, salts and leaves documents for `batches`.
    pub async fn reveal_batches(
        &self,
        job: JobId,
        batches: Vec<u32>,
        roots: Vec<B256>,
        salts: Vec<B256>,
        leaves_cids: Vec<Bytes>,
    ) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::revealBatchesCall {
                jobId: job.0,
                batches,
                roots,
                salts,
                leavesCids: leaves_cids,
            },
            U256::ZERO,
        )
        .await
    }

    /// Settles due batches (anyone): reveal phase, re-assignment, tally.
    /// `proveBatches(jobId, batches, resultHashes)`: the caller's per-shard result hashes of
    /// each Proving batch it revealed, in shard order.
    pub async fn prove_batches(
        &self,
        job: JobId,
        batches: Vec<u32>,
        result_hashes: Vec<Vec<B256>>,
    ) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::proveBatchesCall {
                jobId: job.0,
                batches,
                resultHashes: result_hashes,
            },
            U256::ZERO,
        )
        .await
    }

    /// `settleProven(jobId, batch, lists)`: settles a Proving batch shard by shard from the
    /// proven lists, in slot order.
    pub async fn settle_proven(
        &self,
        job: JobId,
        batch: u32,
        lists: Vec<Vec<B256>>,
    ) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::settleProvenCall {
                jobId: job.0,
                batch,
                lists,
            },
            U256::ZERO,
        )
        .await
    }

    pub async fn settle_batches(
        &self,
        job: JobId,
        batches: Vec<u32>,
    ) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(
            to,
            ShardMarket::settleBatchesCall {
                jobId: job.0,
                batches,
            },
            U256::ZERO,
        )
        .await
    }

    /// Ends a sharded job whose batches are all final; the unused escrow is refunded.
    pub async fn finalize_sharded(&self, job: JobId) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(to, ShardMarket::finalizeCall { jobId: job.0 }, U256::ZERO)
            .await
    }

    /// Withdraws this key's ShardMarket payouts and refunds.
    pub async fn claim_shards(&self) -> Result<TransactionReceipt> {
        let to = self.shard_market_address()?;
        self.send_call(to, ShardMarket::claimCall {}, U256::ZERO)
            .await
    }

    /// What the ShardMarket owes `account`.
    pub async fn shard_withdrawable(&self, account: Address) -> Result<U256> {
        self.shard_market()?
            .withdrawable(account)
            .call()
            .await
            .map_err(call_error("withdrawable"))
    }

    /// A sharded job.
    pub async fn get_shard_job(&self, job: JobId) -> Result<ShardJob> {
        self.shard_market()?
            .getShardJob(job.0)
            .call()
            .await
            .map_err(call_error("getShardJob"))
    }

    /// One batch of a sharded job.
    pub async fn get_batch(&self, job: JobId, batch: u32) -> Result<ShardBatch> {
        self.shard_market()?
            .getBatch(job.0, batch)
            .call()
            .await
            .map_err(call_error("getBatch"))
    }

    /// The bidders of a sharded job, in bid order.
    pub async fn get_bidders(&self, job: JobId) -> Result<Vec<Address>> {
        self.shard_market()?
            .getBidders(job.0)
            .call()
            .await
            .map_err(call_error("getBidders"))
    }

    /// The next sharded job id (ids below it exist).
    pub async fn next_shard_job_id(&self) -> Result<JobId> {
        self.shard_market()?
            .nextJobId()
            .call()
            .await
            .map(JobId)
            .map_err(call_error("nextJobId"))
    }

    /// The spec and manifest CIDs (binary) a sharded job was posted with, from its
    /// `ShardJobPosted` event.
    pub async fn shard_job_posted(&self, job: JobId) -> Result<ShardMarket::ShardJobPosted> {
        self.shard_events::<ShardMarket::ShardJobPosted>(job)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::MissingEvent {
                tx_hash: B256::ZERO,
                event: "ShardJobPosted",
                contract: "ShardMarket",
            })
    }

    /// Every `E` event of sharded job `job` (its first indexed topic), in chain order.
    async fn shard_events<E: SolEvent>(&self, job: JobId) -> Result<Vec<E>> {
        let filter = alloy::rpc::types::Filter::new()
            .address(self.shard_market_address()?)
            .event_signature(E::SIGNATURE_HASH)
            .topic1(job.0)
            .from_block(self.deployment()?.deploy_block);
        let logs = alloy::providers::Provider::get_logs(self.provider(), &filter)
            .await
            .map_err(Error::rpc("eth_getLogs"))?;
        Ok(logs
            .iter()
            .filter_map(|l| E::decode_log(&l.inner).ok())
            .map(|l| l.data)
            .collect())
    }

    /// `registry.setShardMarket(shardMarket)`; once, by the registry's deployer.
    pub async fn set_shard_market(&self, shard_market: Address) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(
            to,
            crate::bindings::OperatorRegistry::setShardMarketCall {
                shardMarket_: shard_market,
            },
            U256::ZERO,
        )
        .await
    }
}

/// One `BatchRevealed`: an operator's root and leaves document for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReveal {
    /// The batch.
    pub batch: u32,
    /// Who revealed.
    pub operator: Address,
    /// The revealed root.
    pub root: B256,
    /// The leaves document's CID (binary).
    pub leaves_cid: Bytes,
}

/// One `LeavesProven`: an operator's per-shard result hashes of a Proving batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavesProof {
    /// The batch.
    pub batch: u32,
    /// Who proved.
    pub operator: Address,
    /// Its result hash per shard, in shard order.
    pub result_hashes: Vec<B256>,
}

impl ChainClient {
    /// Every `LeavesProven` of a sharded job, in chain order.
    pub async fn leaves_proofs(&self, job: JobId) -> Result<Vec<LeavesProof>> {
        Ok(self
            .shard_events::<ShardMarket::LeavesProven>(job)
            .await?
            .into_iter()
            .map(|e| LeavesProof {
                batch: e.batch,
                operator: e.operator,
                result_hashes: e.resultHashes,
            })
            .collect())
    }

    /// The accepted result hash per shard of each batch settled shard by shard
    /// (`BatchSettledPerShard`: zero for a shard that failed), by batch.
    pub async fn per_shard_results(
        &self,
        job: JobId,
    ) -> Result<std::collections::BTreeMap<u32, Vec<B256>>> {
        Ok(self
            .shard_events::<ShardMarket::BatchSettledPerShard>(job)
            .await?
            .into_iter()
            .map(|e| (e.batch, e.accepted))
            .collect())
    }

    /// Every `BatchRevealed` of a sharded job, in chain order.
    pub async fn batch_reveals(&self, job: JobId) -> Result<Vec<BatchReveal>> {
        Ok(self
            .shard_events::<ShardMarket::BatchRevealed>(job)
            .await?
            .into_iter()
            .map(|e| BatchReveal {
                batch: e.batch,
                operator: e.operator,
                root: e.root,
                leaves_cid: e.leavesCid,
            })
            .collect())
    }
}
