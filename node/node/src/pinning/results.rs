//! Verified job results on the pinset: pinned with the replication the job's spec asks for
//! (`pin: {replication_min, replication_max}`, default 2–3).

use cid::Cid;
use shoal_api::{JobView, PinRequest};
use shoal_types::PinSpec;

use crate::node::Node;

/// Adds a job's verified results to the swarm's pinset unless it holds them already (an
/// earlier worker of the job added them, or an earlier job had the same results); a failure
/// is logged, never fatal (the results stay pinned on this node either way).
pub(crate) async fn pin_results(node: &Node, job: &JobView, cid: &Cid) {
    let Some(pinning) = &node.pinning else {
        return;
    };
    let spec = match crate::compute::inputs::load_spec(&node.content, job).await {
        Ok(s) => s.pin.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cannot read the spec; results pinned at the default replication");
            PinSpec::default()
        }
    };
    if pinning.covers(cid, spec.replication_min, spec.replication_max) {
        tracing::debug!(job = %job.id, %cid, "results already on the pinset");
        return;
    }
    let req = PinRequest {
        cid: cid.to_string(),
        name: Some(format!("job {} results", job.id)),
        replication_min: Some(spec.replication_min),
        replication_max: Some(spec.replication_max),
        constraints: Vec::new(),
    };
    match pinning.add(req).await {
        Ok(p) => {
            tracing::info!(job = %job.id, %cid, allocations = p.allocations.len(), "results pinned on the swarm")
        }
        Err(e) => {
            tracing::warn!(job = %job.id, %cid, error = %e, "cannot pin the results on the swarm")
        }
    }
}
