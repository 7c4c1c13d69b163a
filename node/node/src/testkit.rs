//! For the node's unit tests: one node on an in-process devchain with the contracts deployed
//! and the node's operator registered, and a creator key to post jobs with.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use shoal_api::{Execution, JobId, JobView};
use shoal_chain::{Bytes, Capabilities, ChainClient, DeployParams, U256};
use shoal_devchain::{DevChain, ServerHandle};
use shoal_types::JobSpec;

use crate::config::{DeploymentConfig, NodeConfig};
use crate::node::{NodeHandle, start};
use crate::state::StateStore;

const ETHER: u128 = 1_000_000_000_000_000_000;

/// A deal for one operator: n = k = m = 1, no mediation.
pub(crate) const SOLO_DEAL: &str = "deal:\n  concurrency: 1\n  confidence: 1\n  min_bids: 1\n  mediation: false\n  windows: {bid: 3s, exec: 20s, reveal: 20s}\n";

pub(crate) struct Kit {
    pub(crate) node: NodeHandle,
    pub(crate) rpc: String,
    pub(crate) deployment: DeploymentConfig,
    creator: PrivateKeySigner,
    server: ServerHandle,
    _chain: DevChain,
    _dir: tempfile::TempDir,
}

impl Kit {
    /// A devchain, the contracts, and one registered node configured by `change`.
    pub(crate) async fn start(change: impl FnOnce(&mut NodeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = DevChain::builder().accounts(3).build().expect("devchain");
        let server = chain
            .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("serve");
        let rpc = server.url();
        let accounts = chain.dev_accounts().to_vec();
        let deployer = ChainClient::connect(&rpc, Some(accounts[0].signer.clone()))
            .await
            .expect("connect");
        let params = DeployParams {
            mediator_count: 1,
            ..DeployParams::default()
        };
        let d = shoal_chain::deploy(&deployer, params)
            .await
            .expect("deploy");
        let deployment = DeploymentConfig {
            chain_id: Some(d.chain_id),
            operator_registry: d.operator_registry,
            job_market: d.job_market,
            shard_market: d.shard_market,
            pipeline_market: d.pipeline_market,
            deploy_block: d.deploy_block,
        };
        let operator = ChainClient::connect(&rpc, Some(accounts[1].signer.clone()))
            .await
            .expect("connect")
            .with_deployment(d)
            .expect("deployment");
        let caps = Capabilities {
            engines: 1,
            cpuMillicores: 4000,
            memoryMiB: 4096,
            diskGiB: 10,
            gpus: 0,
        };
        operator
            .register(
                Bytes::from_static(b"test-peer"),
                caps,
                U256::from(5 * ETHER),
            )
            .await
            .expect("register");
        let mut cfg = NodeConfig {
            data_dir: dir.path().join("node"),
            deployment: Some(deployment),
            ..NodeConfig::default()
        };
        cfg.chain.rpc_url = rpc.clone();
        cfg.chain.poll_interval_ms = 50;
        cfg.operator.private_key = Some(format!("0x{}", hex::encode(accounts[1].private_key())));
        cfg.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.p2p.enabled = false;
        change(&mut cfg);
        let node = start(cfg).await.expect("node starts");
        Self {
            node,
            rpc,
            deployment,
            creator: accounts[2].signer.clone(),
            server,
            _chain: chain,
            _dir: dir,
        }
    }

    /// Uploads `bytes` to the node; the CID.
    pub(crate) async fn upload(&self, bytes: Vec<u8>) -> String {
        let r: shoal_api::CidResponse = reqwest::Client::new()
            .post(format!("{}/api/v1/content", self.node.api_url()))
            .body(bytes)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("cid");
        r.cid
    }

    /// Uploads the spec in `yaml` and posts it from the creator key.
    pub(crate) async fn post(&self, yaml: &str) -> JobId {
        let spec = JobSpec::from_yaml(yaml).expect("spec");
        let cid = self.upload(spec.to_canonical_json()).await;
        let cid = shoal_store::parse_cid(&cid).expect("cid");
        crate::post_job(
            &self.rpc,
            self.deployment.job_market,
            self.creator.clone(),
            &spec,
            &cid,
        )
        .await
        .expect("post")
    }

    /// Posts the `hello` WASM test program with `deal`.
    pub(crate) async fn post_hello(&self, deal: &str) -> JobId {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../executor/testdata/wasm/hello.wasm"
        );
        let module = self.upload(std::fs::read(path).expect("hello.wasm")).await;
        self.post(&format!(
            "name: hello\nengine:\n  wasm:\n    module: ipfs://{module}\nresources:\n  timeout: 10s\n{deal}"
        ))
        .await
    }

    /// Waits (up to 30 s) until the node's view of job `id` and its execution satisfy `pred`.
    pub(crate) async fn wait(
        &self,
        id: JobId,
        what: &str,
        pred: impl Fn(&JobView, Option<&Execution>) -> bool,
    ) -> (JobView, Option<Execution>) {
        self.wait_for(what, |s| {
            let job = s.job(id).ok()??;
            let exec = s.execution(id).ok()?;
            pred(&job, exec.as_ref()).then_some((job, exec))
        })
        .await
    }

    /// Waits (up to 30 s) until `f` finds something in the node's state store.
    pub(crate) async fn wait_for<T>(&self, what: &str, f: impl Fn(&StateStore) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = f(self.node.state()) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never got {what}; jobs: {:#?}; executions: {:#?}",
                self.node.state().jobs(),
                self.node.state().executions()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn stop(self) {
        self.node.shutdown().await;
        self.server.shutdown().await;
    }
}
