//! kflex as a library: the kubeconfig handling, hosting-context resolution,
//! output, the Git side (`git`, `manifest`) and the commands, reusable by
//! later commands, tests and benchmarks.

pub mod cli;
pub mod commands;
pub mod dev;
pub mod git;
pub mod hosting;
pub mod kubeconfig;
pub mod manifest;
pub mod output;
