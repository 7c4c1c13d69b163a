//! Pipelines on the PipelineMarket (docs/pipelines.md): the escrow of every stage is paid at
//! post, and a wallet that is not the creator starts the next stage from the previous stage's
//! verified result and earns its tip; a wallet that starts a stage with a spec that is not the
//! stage's template applied to that result finds every node declining it, earns nothing, and
//! the creator gets every wei back.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use shoal_chain::{JobId, JobState, PipelineState, U256};
use shoal_e2e::{init_tracing, stack, upload, wait_job, wasm};
use shoal_sdk::Client;
use shoal_sdk::pipeline::{Advanced, Pipeline};

const TIP: u128 = 1_000_000_000_000; // 0.000001 ETH

/// A two-stage pipeline: count the words of a file, then count the words of the first
/// stage's results folder (mounted at /previous).
async fn pipeline(api: &str) -> Result<Pipeline> {
    let module = upload(api, wasm("wordcount")?).await?;
    let input = upload(api, b"the quick brown fox jumps over the lazy dog".to_vec()).await?;
    let deal = "deal: {concurrency: 2, confidence: 2, min_bids: 2, mediation: false, windows: {bid: 3s, exec: 60s, reveal: 20s}}";
    Ok(Pipeline::from_yaml(&format!(
        "name: twice\nstages:\n  - name: count\n    spec:\n      engine: {{wasm: {{module: \"ipfs://{module}\", args: [\"/inputs\"]}}}}\n      inputs: [{{source: \"ipfs://{input}\", path: /inputs/fox.txt}}]\n      resources: {{timeout: 10s}}\n      {deal}\n  - name: recount\n    previous_at: /previous\n    spec:\n      engine: {{wasm: {{module: \"ipfs://{module}\", args: [\"/previous\"]}}}}\n      resources: {{timeout: 10s}}\n      {deal}\n"
    ))?)
}

async fn client(stack: &shoal_devstack::Devstack, key: &str) -> Result<Client> {
    Ok(Client::connect(
        &stack.nodes[0].api_url(),
        Some(&stack.rpc_url),
        Some(key.parse()?),
    )
    .await?)
}

/// The deployer's key: a funded wallet that is neither the creator nor an operator.
fn stranger_key() -> Result<String> {
    let deployer = shoal_devchain::derive_dev_accounts(1)?
        .into_iter()
        .next()
        .context("no dev account")?;
    Ok(format!("0x{}", hex::encode(deployer.private_key())))
}

/// The two-stage pipeline posted by the devstack's creator, and a funded stranger's client.
struct Posted {
    api: String,
    creator: Client,
    stranger: Client,
    pipeline: Pipeline,
    id: U256,
}

/// Runs `test` on a 3-node devstack where the creator has posted the pipeline; stops the
/// devstack whatever the test's outcome.
async fn with_pipeline(
    test: impl AsyncFnOnce(&shoal_devstack::Devstack, Posted, &std::path::Path) -> Result<()>,
) -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 0, None).await?;
    let r = async { test(&stack, post(&stack).await?, dir.path()).await }.await;
    stack.shutdown().await;
    r
}

async fn post(stack: &shoal_devstack::Devstack) -> Result<Posted> {
    let api = stack.nodes[0].api_url();
    let creator = client(stack, &stack.creator_key).await?;
    let stranger = client(stack, &stranger_key()?).await?;
    let pipeline = pipeline(&api).await?;
    let posted = creator.post_pipeline(&pipeline, TIP).await?;
    let id: U256 = posted.pipeline_id.parse()?;
    Ok(Posted {
        api,
        creator,
        stranger,
        pipeline,
        id,
    })
}

/// Waits until stage `stage` of pipeline `id` is posted and its job verified and published.
async fn wait_stage(c: &Client, api: &str, id: U256, stage: u8) -> Result<JobId> {
    let st = c.chain().get_pipeline_stage(id, stage).await?;
    let job = JobId(st.jobId);
    ensure!(!st.jobId.is_zero(), "stage {stage} not started");
    wait_job(api, job, Duration::from_secs(90), "verified", |v| {
        v["state"] == "Verified" && !v["resultCid"].is_null()
    })
    .await?;
    Ok(job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anyone_starts_the_next_stage_and_earns_its_tip() -> Result<()> {
    with_pipeline(async |_, posted, dir| {
        let Posted {
            api,
            creator,
            stranger: keeper,
            pipeline: p,
            id,
        } = posted;
        let reserved = creator.chain().get_pipeline(id).await?.reserved;
        ensure!(
            !reserved.is_zero(),
            "stage 1's escrow and tip are held at post"
        );

        // Too early: the first stage is not final.
        let work = dir.join("keeper");
        let first = keeper.advance_pipeline(id, &work.join("0")).await?;
        ensure!(matches!(first, Advanced::NotFinal { .. }), "{first:?}");

        wait_stage(&keeper, &api, id, 0).await?;
        let started = keeper.advance_pipeline(id, &work.join("1")).await?;
        let Advanced::Started {
            job_id, previous, ..
        } = started
        else {
            anyhow::bail!("stage 1 not started: {started:?}");
        };
        let st = keeper.chain().get_pipeline_stage(id, 1).await?;
        ensure!(
            st.startedBy == keeper.address()?,
            "started by {}",
            st.startedBy
        );
        let v = wait_stage(&keeper, &api, id, 1).await?;
        ensure!(v.0 == U256::from(job_id));
        // The second stage runs its template over the first stage's verified folder.
        let job = keeper.chain().get_job(v).await?;
        ensure!(job.state == JobState::Verified);
        let derived = p.stages[1].derive(Some(&previous), None)?;
        ensure!(
            job.specHash == alloy::primitives::keccak256(derived.to_canonical_json()),
            "stage 1 runs the template applied to ipfs://{previous}"
        );

        let ended = keeper.advance_pipeline(id, &work.join("2")).await?;
        ensure!(
            matches!(&ended, Advanced::Ended { state, .. } if state == "Done"),
            "{ended:?}"
        );
        let p = keeper.chain().get_pipeline(id).await?;
        ensure!(
            p.state == PipelineState::Done && p.reserved.is_zero(),
            "{p:?}"
        );
        let tip = keeper
            .chain()
            .pipeline_withdrawable(keeper.address()?)
            .await?;
        ensure!(tip == U256::from(TIP), "the keeper earned {tip}");
        ensure!(keeper.claim_pipeline_refunds().await? == U256::from(TIP));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stage_started_with_a_spec_not_derived_from_its_template_is_declined() -> Result<()> {
    with_pipeline(async |stack, posted, dir| {
        let Posted {
            api,
            creator,
            stranger: attacker,
            pipeline: p,
            id,
        } = posted;
        let first = wait_stage(&attacker, &api, id, 0).await?;
        let result = creator
            .published_result(first)
            .await?
            .context("stage 0 published")?;

        // The attacker starts stage 1 with the right previous result but its own program
        // arguments (a job it could run cheaply, paid from the creator's escrow).
        let previous = shoal_api::results_cid_of(result)?.to_string();
        let mut forged = p.stages[1].derive(Some(&previous), None)?;
        if let shoal_types::EngineSpec::Wasm(w) = &mut forged.engine {
            w.args = vec!["/".into()];
        }
        let json = forged.to_canonical_json();
        let cid = shoal_store::parse_cid(&upload(&api, json.clone()).await?)?;
        let input = shoal_chain::StageInput {
            specCid: cid.to_bytes().into(),
            specHash: alloy::primitives::keccak256(&json),
            previousResult: result,
            ..shoal_chain::empty_stage_input()
        };
        attacker.chain().advance_pipeline(id, input).await?;
        let st = attacker.chain().get_pipeline_stage(id, 1).await?;
        let job = JobId(st.jobId);
        // Every node declines it, naming the template.
        for n in &stack.nodes {
            let v = wait_job(&n.api_url(), job, Duration::from_secs(30), "decided", |v| {
                !v["decision"].is_null()
            })
            .await?;
            ensure!(v["decision"]["bid"] == false, "{v:#}");
            let reason = v["decision"]["reason"].as_str().unwrap_or_default();
            ensure!(reason.contains("template"), "{reason}");
        }
        // No bid: the stage expires (the nodes close the bidding after its window).
        wait_job(&api, job, Duration::from_secs(60), "expired", |v| {
            v["state"] == "Expired"
        })
        .await?;
        let ended = attacker.advance_pipeline(id, &dir.join("w")).await?;
        ensure!(
            matches!(&ended, Advanced::Ended { state, .. } if state == "Stopped"),
            "{ended:?}"
        );
        // No tip for the attacker; the creator gets the tip back here and the stage's escrow
        // from the JobMarket.
        let me = attacker.address()?;
        ensure!(attacker.chain().pipeline_withdrawable(me).await?.is_zero());
        let creator_addr = creator.address()?;
        let back = creator.chain().pipeline_withdrawable(creator_addr).await?;
        ensure!(back == U256::from(TIP), "creator's pipeline refund {back}");
        let escrow = U256::from(2u8) * U256::from(forged.deal.max_price);
        let refunds = creator.chain().withdrawable(creator_addr).await?;
        ensure!(
            refunds >= escrow,
            "the JobMarket holds {refunds} for the creator, the stage's escrow is {escrow}"
        );
        Ok(())
    })
    .await
}
