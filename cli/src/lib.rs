//! kflex as a library: the kubeconfig handling, hosting-context resolution,
//! output and the commands, reusable by later commands (`create --git`,
//! `validate`, `kflex dev`).

pub mod cli;
pub mod commands;
pub mod dev;
pub mod hosting;
pub mod kubeconfig;
pub mod output;
