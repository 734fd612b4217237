//! `kflex version`: client, API version, and the server's version when
//! reachable (`--client`: offline).

use anyhow::anyhow;
use serde_json::json;

use super::App;
use crate::cli::{Format, VersionArgs};
use crate::hosting;
use crate::output::kube_error;

pub async fn run(app: Option<&App>, a: &VersionArgs) -> anyhow::Result<()> {
    let client_v = env!("CARGO_PKG_VERSION");
    let api_v = kubeflex_operator::api::API_VERSION;
    let server = match app {
        None => None,
        Some(app) => {
            let (_, kc) = app.load()?;
            let client = hosting::client(&kc, &kc.current_context)
                .await
                .map_err(|e| anyhow!("Could not connect to a Kubernetes cluster: {e}"))?;
            let info = client.apiserver_version().await.map_err(|e| {
                anyhow!(
                    "Could not connect to a Kubernetes cluster: {}",
                    kube_error(&e)
                )
            })?;
            Some(info.git_version)
        }
    };
    match a.output {
        None => {
            println!("Kubeflex version: {client_v}");
            println!("API version: {api_v}");
            if let Some(s) = &server {
                println!("Kubernetes version: {s}");
            }
        }
        Some(f) => {
            let v = json!({"client": client_v, "apiVersion": api_v, "server": server});
            match f {
                Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                Format::Yaml => print!("{}", serde_saphyr::to_string(&v)?),
            }
        }
    }
    Ok(())
}
