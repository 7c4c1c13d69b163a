//! What the state store holds: jobs as the chain shows them, their event
//! history, this node's bid decisions and its own executions.

use std::fmt;

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// A job id on the market (ids start at 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A job's on-chain state, taken from the contract ABI (`IJobMarket.JobState`) by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    None,
    Posted,
    Running,
    Revealing,
    Challengeable,
    Disputed,
    DisputeRevealing,
    Verified,
    Failed,
    Expired,
}

impl JobState {
    /// Every state in ABI order.
    pub const ALL: [JobState; 10] = [
        JobState::None,
        JobState::Posted,
        JobState::Running,
        JobState::Revealing,
        JobState::Challengeable,
        JobState::Disputed,
        JobState::DisputeRevealing,
        JobState::Verified,
        JobState::Failed,
        JobState::Expired,
    ];

    /// The state with this ABI index.
    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(usize::from(i)).copied()
    }

    /// Verified, Failed and Expired are final.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Verified | JobState::Failed | JobState::Expired
        )
    }

    /// The name as in the contract (`Posted`, `Running`, …).
    pub fn name(self) -> &'static str {
        match self {
            JobState::None => "None",
            JobState::Posted => "Posted",
            JobState::Running => "Running",
            JobState::Revealing => "Revealing",
            JobState::Challengeable => "Challengeable",
            JobState::Disputed => "Disputed",
            JobState::DisputeRevealing => "DisputeRevealing",
            JobState::Verified => "Verified",
            JobState::Failed => "Failed",
            JobState::Expired => "Expired",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|st| st.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a job state; use one of {}",
                    Self::ALL
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Job parameters as posted (amounts in wei as decimal strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobParamsView {
    pub spec_cid: String,
    pub spec_hash: B256,
    pub concurrency: u8,
    pub confidence: u8,
    pub min_bids: u8,
    pub max_price: String,
    pub collateral: String,
    pub bid_window: u32,
    pub exec_window: u32,
    pub reveal_window: u32,
    pub challenge_window: u32,
    pub verifier: String,
    pub escalate: bool,
}

/// A bid on a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidView {
    pub operator: Address,
    pub price: String,
    pub dropped: bool,
}

/// A selected operator or a mediator and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealView {
    pub operator: Address,
    pub price: String,
    pub collateral: String,
    pub mediator: bool,
    pub commitment: Option<B256>,
    pub result_hash: Option<B256>,
    pub result_cid: Option<String>,
}

/// A payment, refund or slash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    pub account: Address,
    pub amount: String,
    pub kind: String,
}

/// A job as this node's chain follower has seen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub id: JobId,
    pub creator: Address,
    pub state: JobState,
    pub params: JobParamsView,
    pub escrow: String,
    pub bid_deadline: u64,
    /// End of the current phase (unix seconds); the end time once final.
    pub phase_deadline: u64,
    pub posted_block: u64,
    pub bids: Vec<BidView>,
    pub deals: Vec<DealView>,
    pub result_hash: Option<B256>,
    /// The verified results folder's CID (from the result hash).
    pub result_cid: Option<String>,
    pub payments: Vec<Transfer>,
    pub refunds: Vec<Transfer>,
    pub slashes: Vec<Transfer>,
    pub fail_reason: Option<String>,
}

impl JobRecord {
    /// The deal of `operator` (worker or mediator).
    pub fn deal_of(&self, operator: Address) -> Option<&DealView> {
        self.deals.iter().find(|d| d.operator == operator)
    }
}

/// One decoded chain event of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub block: u64,
    pub log_index: u64,
    pub tx: Option<B256>,
    pub event: String,
    pub fields: serde_json::Value,
}

/// This node's decision on a posted job, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidDecision {
    pub bid: bool,
    pub reason: String,
    /// Price bid, in wei.
    pub price: Option<String>,
    /// Unix seconds of the decision.
    pub at: u64,
}

/// Why this node runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A selected operator.
    Worker,
    /// A mediator drawn for a dispute.
    Mediator,
}

/// Where this node's execution of a job stands. Each step is persisted before it is acted on.
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
    Committed {
        result_hash: B256,
        result_cid: String,
        salt: B256,
        commit_confirmed: bool,
    },
    /// The reveal is confirmed.
    Revealed {
        result_hash: B256,
        result_cid: String,
    },
    /// The job verified with our result and the results are pinned and served.
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
}

/// This node's execution of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub job_id: JobId,
    pub role: Role,
    pub step: Step,
    /// The results folder on this node (kept private until verified).
    pub results_dir: Option<String>,
    pub exit_code: Option<i32>,
    /// Payout claimed after the job settled.
    pub claimed: bool,
    pub updated_at: u64,
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Variant names of `IJobMarket.Verifier`, in ABI order.
pub const VERIFIER: &[&str] = &["Deterministic", "Optimistic"];
/// Variant names of `IJobMarket.SlashReason`, in ABI order.
pub const SLASH_REASON: &[&str] = &["NoCommit", "NoReveal", "WrongResult"];
/// Variant names of `IJobMarket.FailReason`, in ABI order.
pub const FAIL_REASON: &[&str] = &[
    "TooFewCommits",
    "TooFewReveals",
    "NoQuorum",
    "NoMediatorMajority",
    "NoCorrectResult",
];
/// Variant names of `IJobMarket.PaymentKind`, in ABI order.
pub const PAYMENT_KIND: &[&str] = &["Execution", "Mediation", "Compensation", "BondReturned"];

/// The name of an ABI enum value, or `Unknown(n)`.
pub fn enum_name(names: &[&str], v: u8) -> String {
    names
        .get(usize::from(v))
        .map_or_else(|| format!("Unknown({v})"), |s| (*s).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `enum Name { A, B }` variants from the contract interface source.
    fn variants(source: &str, name: &str) -> Vec<String> {
        let start = source
            .find(&format!("enum {name} {{"))
            .unwrap_or_else(|| panic!("enum {name} not found"));
        let body = &source[start..];
        let body = &body[body.find('{').unwrap_or(0) + 1..body.find('}').unwrap_or(0)];
        body.lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    }

    /// The copies of the contract's enums must match the interface, in order.
    #[test]
    fn enum_names_match_the_contract_interface() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../contracts/src/interfaces/IJobMarket.sol"
        );
        let source = std::fs::read_to_string(path).expect("IJobMarket.sol");
        let states: Vec<&str> = JobState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(variants(&source, "JobState"), states);
        assert_eq!(variants(&source, "Verifier"), VERIFIER);
        assert_eq!(variants(&source, "SlashReason"), SLASH_REASON);
        assert_eq!(variants(&source, "FailReason"), FAIL_REASON);
        assert_eq!(variants(&source, "PaymentKind"), PAYMENT_KIND);
    }

    #[test]
    fn states_parse_by_name() {
        assert_eq!("verified".parse::<JobState>(), Ok(JobState::Verified));
        assert!("nope".parse::<JobState>().is_err());
        assert!(JobState::Expired.is_final() && !JobState::Revealing.is_final());
    }
}
