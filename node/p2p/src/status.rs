//! `/shoal/status/1.0.0`: ask a peer for a job's live state and logs.
//! The node answers through a [`StatusSource`] it implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The request-response protocol name.
pub const STATUS_PROTOCOL: &str = "/shoal/status/1.0.0";
/// Each log stream is cut to this many bytes (the tail is kept).
pub const MAX_LOG_BYTES: usize = 64 * 1024;
/// Largest request accepted (a job id and a flag).
pub(crate) const MAX_REQUEST_BYTES: u64 = 4 * 1024;
/// Largest response accepted: two capped logs, JSON-escaped, and the rest.
pub(crate) const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Which job, and whether to include its logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The on-chain job id, decimal.
    pub job_id: String,
    pub logs: bool,
}

/// What a node knows about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub job_id: String,
    /// False when the node has never seen the job (or serves no status).
    pub found: bool,
    /// The job's state as the node sees it, e.g. `"Running"`.
    pub state: Option<String>,
    pub executions: Vec<ExecutionStatus>,
    /// Present when asked for and the node has any.
    pub logs: Option<JobLogs>,
}

impl StatusResponse {
    /// "I do not know this job."
    pub fn not_found(job_id: impl Into<String>) -> Self {
        Self {
            job_id: job_id.into(),
            found: false,
            state: None,
            executions: Vec::new(),
            logs: None,
        }
    }
}

/// One execution of the job on the answering node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionStatus {
    /// e.g. `"executor"`, `"verifier"`.
    pub role: String,
    /// e.g. `"fetching inputs"`, `"running"`, `"submitted"`.
    pub step: String,
    pub result_hash: Option<String>,
    pub error: Option<String>,
    /// Unix seconds.
    pub updated_at: u64,
}

/// The job's output so far, each stream cut to [`MAX_LOG_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogs {
    pub stdout: String,
    pub stderr: String,
    /// True when either stream was cut.
    pub truncated: bool,
}

impl JobLogs {
    /// Builds logs from full streams, keeping the last [`MAX_LOG_BYTES`] of
    /// each (cut on a character boundary).
    pub fn capped(stdout: &str, stderr: &str) -> Self {
        let (o, t1) = tail(stdout);
        let (e, t2) = tail(stderr);
        Self {
            stdout: o.to_owned(),
            stderr: e.to_owned(),
            truncated: t1 || t2,
        }
    }

    pub(crate) fn cap(self) -> Self {
        if self.stdout.len() <= MAX_LOG_BYTES && self.stderr.len() <= MAX_LOG_BYTES {
            return self;
        }
        let mut c = Self::capped(&self.stdout, &self.stderr);
        c.truncated = true;
        c
    }
}

fn tail(s: &str) -> (&str, bool) {
    if s.len() <= MAX_LOG_BYTES {
        return (s, false);
    }
    let mut start = s.len() - MAX_LOG_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    (&s[start..], true)
}

/// Answers status requests; the node implements it over its job database.
/// Called off the swarm's event loop, with a time limit.
#[async_trait]
pub trait StatusSource: Send + Sync + 'static {
    async fn status(&self, job_id: &str, logs: bool) -> StatusResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_capped_at_a_char_boundary() {
        let long = "é".repeat(MAX_LOG_BYTES);
        let l = JobLogs::capped(&long, "short");
        assert!(l.truncated);
        assert!(l.stdout.len() <= MAX_LOG_BYTES && l.stdout.len() > MAX_LOG_BYTES - 2);
        assert_eq!(l.stderr, "short");
        let l = JobLogs::capped("a", "b");
        assert!(!l.truncated);
    }
}
