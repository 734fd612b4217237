//! testenv: a Kubernetes-API-compatible server over HTTPS on loopback, used
//! unchanged by kube-rs and the real kubectl, for end-to-end tests and the
//! local playground. No etcd, no Go: an in-memory store (optionally
//! persisted), watch fan-out, the API verbs with their real semantics,
//! RBAC, and the controllers a cluster always runs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let env = kubeflex_testenv::TestEnv::builder().start().await?;
//! let client = env.client().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod http;
pub mod immutable;
pub mod ingress;
pub mod kubeconfig;
pub mod measure;
pub mod merge_keys;
pub mod meta;
pub mod patch;
pub mod pdb;
pub mod pki;
pub mod podsecurity;
pub mod proxy;
pub mod rbac;
pub mod resources;
pub mod runtime;
pub mod schema;
pub mod selector;
pub mod server;
pub mod service_account;
pub mod simulate;
pub mod status;
pub mod store;
pub mod table;
pub mod tenant;
pub mod watch;

pub use server::{Builder, TestEnv, client_from_kubeconfig};
