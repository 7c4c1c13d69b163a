//! Prometheus counters of the node.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_rate_limited: AtomicU64,
    pub chain_events: AtomicU64,
    pub decisions_bid: AtomicU64,
    pub decisions_declined: AtomicU64,
    pub bids_sent: AtomicU64,
    pub executions_started: AtomicU64,
    pub executions_failed: AtomicU64,
    pub commits: AtomicU64,
    pub reveals: AtomicU64,
    pub published: AtomicU64,
    pub tx_errors: AtomicU64,
    pub announcements_sent: AtomicU64,
    pub announcements_received: AtomicU64,
    pub watch_checks: AtomicU64,
    pub watch_challenges: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, jobs_by_state: &[(String, usize)], fetched_bytes: u64) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 16] = [
            (
                "shoal_http_requests_total",
                "HTTP requests served",
                &self.http_requests,
            ),
            (
                "shoal_http_rate_limited_total",
                "HTTP requests refused by the rate limit",
                &self.http_rate_limited,
            ),
            (
                "shoal_chain_events_total",
                "market events stored",
                &self.chain_events,
            ),
            (
                "shoal_bid_decisions_bid_total",
                "posted jobs this node decided to bid on",
                &self.decisions_bid,
            ),
            (
                "shoal_bid_decisions_declined_total",
                "posted jobs this node declined",
                &self.decisions_declined,
            ),
            (
                "shoal_bids_sent_total",
                "bid transactions confirmed",
                &self.bids_sent,
            ),
            (
                "shoal_executions_started_total",
                "executions started",
                &self.executions_started,
            ),
            (
                "shoal_executions_failed_total",
                "executions that failed",
                &self.executions_failed,
            ),
            (
                "shoal_commits_total",
                "commit transactions confirmed",
                &self.commits,
            ),
            (
                "shoal_reveals_total",
                "reveal transactions confirmed",
                &self.reveals,
            ),
            (
                "shoal_results_published_total",
                "verified results published",
                &self.published,
            ),
            (
                "shoal_tx_errors_total",
                "transactions that failed",
                &self.tx_errors,
            ),
            (
                "shoal_job_announcements_sent_total",
                "jobs announced on the swarm by this node",
                &self.announcements_sent,
            ),
            (
                "shoal_job_announcements_received_total",
                "valid job announcements received from the swarm",
                &self.announcements_received,
            ),
            (
                "shoal_watch_checks_total",
                "optimistic jobs re-run by this node's watcher",
                &self.watch_checks,
            ),
            (
                "shoal_watch_challenges_total",
                "challenges sent by this node's watcher",
                &self.watch_challenges,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP shoal_content_fetched_bytes_total bytes of blocks fetched from other nodes (Bitswap and peers' CARs)\n\
             # TYPE shoal_content_fetched_bytes_total counter\nshoal_content_fetched_bytes_total {fetched_bytes}"
        );
        let _ = writeln!(
            out,
            "# HELP shoal_jobs jobs known to this node by state\n# TYPE shoal_jobs gauge"
        );
        for (state, n) in jobs_by_state {
            let _ = writeln!(out, "shoal_jobs{{state=\"{state}\"}} {n}");
        }
        out
    }
}
