//! Sharded jobs (docs/sharding.md): a job's batches, and its merged result.

use axum::Json;
use axum::extract::State;
use shoal_api::shard::{BatchView, LeavesDoc, MergedResult, ShardJobView};
use shoal_chain::{BatchState, JobId, ShardJobState};

use super::{ApiError, ApiResult, Path, Shared};

fn parse_id(s: &str) -> ApiResult<JobId> {
    s.parse().map_err(|e| {
        ApiError::bad_request(
            format!("`{s}` is not a sharded job id: {e}"),
            "sharded job ids are decimal numbers, as `shoal job run` prints them",
        )
    })
}

fn chain_err(e: shoal_chain::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        e.to_string(),
        "the node could not read the ShardMarket; check the node's chain endpoint",
    )
}

pub(super) async fn get_shard_job(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<ShardJobView>> {
    let id = parse_id(&id)?;
    let client = inner.chain.client();
    let job = client.get_shard_job(id).await.map_err(chain_err)?;
    if job.state == ShardJobState::None {
        return Err(ApiError::not_found(
            format!("sharded job {id} does not exist"),
            "check the id; `shoal job run` prints it",
        ));
    }
    let mut batches = Vec::new();
    if job.state == ShardJobState::Running || job.state == ShardJobState::Done {
        for b in 0..u32::from(job.batchCount) {
            let x = client.get_batch(id, b).await.map_err(chain_err)?;
            batches.push(BatchView {
                batch: b,
                state: format!("{:?}", x.state),
                attempt: x.attempt,
                deadline: x.deadline,
                operators: x.operators,
                root: (x.state == BatchState::Verified).then_some(x.root),
            });
        }
    }
    Ok(Json(ShardJobView {
        id,
        state: format!("{:?}", job.state),
        shard_count: job.shardCount,
        batch_size: job.batchSize,
        concurrency: job.concurrency,
        confidence: job.confidence,
        verified: job.verifiedBatches,
        failed: job.failedBatches,
        batches,
    }))
}

pub(super) async fn get_merged_result(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<MergedResult>> {
    let id = parse_id(&id)?;
    Ok(Json(merged(&inner, id).await?))
}

/// The merged result folder of a Done sharded job, built from its verified batches.
pub(crate) async fn merged(inner: &Shared, id: JobId) -> ApiResult<MergedResult> {
    if let Some(m) = inner.merged.lock().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(m);
    }
    let client = inner.chain.client();
    let job = client.get_shard_job(id).await.map_err(chain_err)?;
    if job.state != ShardJobState::Done {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!("sharded job {id} is {:?}, not Done", job.state),
            "wait until every batch is verified or failed (`shoal job status`), then ask again",
        ));
    }
    let reveals = client.batch_reveals(id).await.map_err(chain_err)?;
    // Read only when a batch was settled per shard (one log query).
    let mut per_shard = None;
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for b in 0..u32::from(job.batchCount) {
        let x = client.get_batch(id, b).await.map_err(chain_err)?;
        match x.state {
            BatchState::Verified => docs.push(verified_doc(inner, id, b, x.root, &reveals).await?),
            // Settled shard by shard: the accepted result of each shard is on chain.
            BatchState::SettledPerShard => {
                if per_shard.is_none() {
                    per_shard = Some(client.per_shard_results(id).await.map_err(chain_err)?);
                }
                let accepted = per_shard.as_ref().and_then(|m| m.get(&b));
                docs.push(settled_doc(id, b, u32::from(job.batchSize), accepted)?)
            }
            _ => failed.push(b),
        }
    }
    let shards = docs.iter().map(|d| d.shards.len() as u32).sum();
    let cid = crate::shards::run::merged_result(inner, &docs)
        .await
        .map_err(ApiError::internal)?;
    let merged = MergedResult {
        cid: cid.to_string(),
        shards,
        failed_batches: failed,
    };
    if let Ok(mut cache) = inner.merged.lock() {
        cache.insert(id, merged.clone());
    }
    Ok(merged)
}

/// The shards a batch settled shard by shard accepted (`BatchSettledPerShard`), as a leaves
/// document of those shards only.
fn settled_doc(
    id: JobId,
    batch: u32,
    size: u32,
    accepted: Option<&Vec<shoal_chain::B256>>,
) -> ApiResult<LeavesDoc> {
    let accepted = accepted.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!("batch {batch} of sharded job {id} is settled per shard but its BatchSettledPerShard event is not found"),
            "retry when the node's chain endpoint has the logs",
        )
    })?;
    let mut shards = Vec::new();
    for (i, h) in accepted.iter().enumerate().filter(|(_, h)| !h.is_zero()) {
        let cid = shoal_api::results_cid_of(*h).map_err(ApiError::internal)?;
        shards.push(shoal_api::shard::ShardResult {
            index: batch * size + i as u32,
            result_cid: cid.to_string(),
        });
    }
    Ok(LeavesDoc {
        job: id,
        batch,
        shards,
    })
}

/// A leaves document revealed for `batch` whose root is the verified `root`.
async fn verified_doc(
    inner: &Shared,
    id: JobId,
    batch: u32,
    root: shoal_chain::B256,
    reveals: &[shoal_chain::BatchReveal],
) -> ApiResult<LeavesDoc> {
    let mut last = String::from("no operator revealed the verified root");
    for r in reveals
        .iter()
        .filter(|r| r.batch == batch && r.root == root)
    {
        let cid = match shoal_api::cid_from_chain_bytes(&r.leaves_cid) {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if let Err(e) = inner.content.ensure(&cid).await {
            last = e.to_string();
            continue;
        }
        let doc = inner
            .content
            .read_file(&cid)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<LeavesDoc>(&b).map_err(|e| e.to_string()));
        match doc {
            Ok(d) if d.job == id && d.batch == batch && d.root().is_ok_and(|x| x == root) => {
                return Ok(d);
            }
            Ok(_) => last = format!("the leaves document {cid} does not give the verified root"),
            Err(e) => last = e,
        }
    }
    Err(ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        format!("batch {batch} of sharded job {id}: {last}"),
        "the operators' leaves documents are not reachable from this node; retry when they are online",
    ))
}
