//! One module per `shoal` subcommand group.

pub mod content;
pub mod devchain;
