//! One module per `kflex` command.

pub mod diff;
pub mod gitops;
pub mod sync;
pub mod validate;
pub mod wait;
pub mod watch;
