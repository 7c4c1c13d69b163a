//! Sharded jobs on the node (docs/sharding.md): running a batch shard by shard, the leaves
//! document and root it commits to, and the merged result.

// Wired to the ShardMarket follower next; until then only the tests use it.
#[allow(dead_code)]
pub(crate) mod run;

pub use run::shard_name;
