//! Sharded jobs on the node (docs/sharding.md): running a batch shard by shard, the leaves
//! document and root it commits to, and the merged result.

pub(crate) mod driver;
pub(crate) mod run;

pub use driver::BatchWork;
pub use run::shard_name;
