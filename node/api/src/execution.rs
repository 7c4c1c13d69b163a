//! A node's own side of a job: its bid decision and its execution's steps.

use serde::{Deserialize, Serialize};
use shoal_chain::{B256, JobId, U256};

/// A node's decision on a posted job, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidDecision {
    /// Whether it bid.
    pub bid: bool,
    /// Why (or why not).
    pub reason: String,
    /// Price bid.
    #[serde(with = "opt_wei")]
    pub price: Option<U256>,
    /// Unix seconds of the decision.
    pub at: u64,
}

mod opt_wei {
    use serde::{Deserialize, Deserializer, Serializer};
    use shoal_chain::U256;

    pub fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
        Option::<std::borrow::Cow<'de, str>>::deserialize(d)?
            .map(|s| crate::wei::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Why a node runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A selected operator.
    Worker,
    /// A mediator drawn for a dispute.
    Mediator,
}

/// Where a node's execution of a job stands. Each step is persisted before it is acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// The bid is decided and (about to be) sent.
    Bidding,
    /// A deal (or mediator seat) is ours.
    Selected,
    /// Fetching the spec's inputs.
    Fetching,
    /// The executor runs the job.
    Running,
    /// The result is known and its salt persisted; the commit is (about to be) sent.
    #[serde(rename_all = "camelCase")]
    Committed {
        result_hash: B256,
        result_cid: String,
        salt: B256,
        commit_confirmed: bool,
    },
    /// The reveal is confirmed.
    #[serde(rename_all = "camelCase")]
    Revealed {
        result_hash: B256,
        result_cid: String,
    },
    /// The job verified with our result and the results are pinned and served.
    #[serde(rename_all = "camelCase")]
    Published { result_cid: String },
    /// Nothing more to do.
    Failed { reason: String },
    /// The job ended without this node being selected or needed.
    Done { reason: String },
}

impl Step {
    /// The step's name.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Bidding => "bidding",
            Step::Selected => "selected",
            Step::Fetching => "fetching",
            Step::Running => "running",
            Step::Committed { .. } => "committed",
            Step::Revealed { .. } => "revealed",
            Step::Published { .. } => "published",
            Step::Failed { .. } => "failed",
            Step::Done { .. } => "done",
        }
    }

    /// Whether nothing more happens.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Step::Published { .. } | Step::Failed { .. } | Step::Done { .. }
        )
    }

    /// The result hash this node committed to, once it has one.
    pub fn result_hash(&self) -> Option<B256> {
        match self {
            Step::Committed { result_hash, .. } | Step::Revealed { result_hash, .. } => {
                Some(*result_hash)
            }
            _ => None,
        }
    }
}

/// A node's execution of one job (as the node stores it; the salt never leaves the node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// The job.
    pub job_id: JobId,
    /// Worker or mediator.
    pub role: Role,
    /// Where it stands.
    pub step: Step,
    /// The results folder on this node (kept private until verified).
    pub results_dir: Option<String>,
    /// The program's exit code.
    pub exit_code: Option<i32>,
    /// Payout claimed (or nothing to claim) after the job settled.
    pub claimed: bool,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

impl Execution {
    /// A new execution at `step`.
    pub fn new(job_id: JobId, role: Role, step: Step) -> Self {
        Self {
            job_id,
            role,
            step,
            results_dir: None,
            exit_code: None,
            claimed: false,
            updated_at: crate::now_secs(),
        }
    }

    /// What the API shows of it: no salt, no local paths, and no result before the job is
    /// final (`job_final`): the result hash is what mediators must find by running the job,
    /// so it stays private while a dispute can still draw them.
    pub fn view(&self, job_final: bool) -> ExecutionView {
        let (result_cid, reason) = match &self.step {
            Step::Published { result_cid } => (Some(result_cid.clone()), None),
            Step::Revealed { result_cid, .. } if job_final => (Some(result_cid.clone()), None),
            Step::Failed { reason } | Step::Done { reason } => (None, Some(reason.clone())),
            _ => (None, None),
        };
        ExecutionView {
            role: self.role,
            step: self.step.name().to_owned(),
            result_cid,
            exit_code: self.exit_code,
            reason,
        }
    }
}

/// A node's execution of a job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    /// Worker or mediator.
    pub role: Role,
    /// The step's name (`running`, `committed`, `published`, …).
    pub step: String,
    /// The result, once the job is final.
    pub result_cid: Option<String>,
    /// The program's exit code.
    pub exit_code: Option<i32>,
    /// Why it failed or ended.
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_keep_their_wire_names() {
        let s = Step::Committed {
            result_hash: B256::repeat_byte(1),
            result_cid: "bafy".into(),
            salt: B256::repeat_byte(2),
            commit_confirmed: true,
        };
        let json = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(json["step"], "committed");
        assert_eq!(json["commitConfirmed"], true);
        assert_eq!(serde_json::from_value::<Step>(json).ok(), Some(s));
        let d = BidDecision {
            bid: true,
            reason: "ok".into(),
            price: Some(U256::from(5u64)),
            at: 1,
        };
        let json = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(json["price"], "5");
        assert_eq!(serde_json::from_value::<BidDecision>(json).ok(), Some(d));
    }
}

/// A watcher's check of an optimistic job it has no deal on (`[watch]` in the node config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchCheck {
    /// The result hash the watcher's own re-run produced.
    pub result_hash: Option<B256>,
    /// What the watcher did (`verdict`, with `tx`/`bond` or `reason`).
    #[serde(flatten)]
    pub verdict: WatchVerdict,
    /// Unix seconds of the verdict.
    pub at: u64,
}

/// What a watcher did about an optimistic job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
pub enum WatchVerdict {
    /// Every revealed result equals the watcher's: nothing to do.
    Agreed,
    /// A revealed result differs: the watcher challenged the job.
    Challenged {
        /// The challenge transaction.
        tx: B256,
        /// The bond paid, in wei.
        #[serde(with = "crate::wei")]
        bond: U256,
    },
    /// A revealed result differs but the challenge could not be made (window over, already
    /// disputed, no mediators, bond too high).
    NotChallenged {
        /// Why.
        reason: String,
    },
}
