//! `kflex` as a library: the binary's commands, and the pieces tests and
//! benchmarks drive directly.

pub mod commands;
pub mod git;
pub mod manifest;
