//! What the node persists: one redb file in the data dir ([`StateStore`]) with the jobs as the
//! chain shows them, their event history, the follower's cursor, and this node's bid
//! decisions and executions (the model is `shoal-api`'s).

mod db;

pub use db::StateStore;
