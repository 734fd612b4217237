//! "The tenant itself answers": the second half of `Ready`, after the
//! workload is available.
//!
//! In the cluster the operator dials the Service with the generated
//! in-cluster kubeconfig and asks for `/api/v1` (what KubeFlex does); outside
//! it goes through the hosting API server's service proxy to `/readyz`,
//! which needs no extra flag and no network route to the pods (the proxy is
//! anonymous to the backend, and `/readyz` is public on API servers).

use std::time::Duration;

use kube::Client;

use crate::kubeconfig;

/// Where and how to probe one tenant.
pub struct Probe<'a> {
    /// Hosting namespace of the Service.
    pub namespace: &'a str,
    /// The API Service.
    pub service: &'a str,
    /// Its port.
    pub port: i32,
    /// The in-cluster kubeconfig (YAML), when probing in-cluster.
    pub in_cluster_kubeconfig: Option<&'a str>,
}

/// Whether the tenant answers. Failures are logged at debug (they are
/// expected while pods start) and reported as `false`.
pub async fn answers(
    hosting: &Client,
    probe: &Probe<'_>,
    in_cluster: bool,
    timeout: Duration,
) -> bool {
    let result = if in_cluster {
        tokio::time::timeout(timeout, direct(probe)).await
    } else {
        tokio::time::timeout(timeout, proxied(hosting, probe)).await
    };
    match result {
        Ok(Ok(())) => true,
        Ok(Err(reason)) => {
            tracing::debug!(service = probe.service, namespace = probe.namespace, %reason, "tenant does not answer yet");
            false
        }
        Err(_) => {
            tracing::debug!(
                service = probe.service,
                namespace = probe.namespace,
                "tenant probe timed out"
            );
            false
        }
    }
}

async fn proxied(hosting: &Client, probe: &Probe<'_>) -> Result<(), String> {
    let path = format!(
        "/api/v1/namespaces/{}/services/https:{}:{}/proxy/readyz",
        probe.namespace, probe.service, probe.port
    );
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    // Non-2xx answers come back as errors.
    hosting
        .request_text(request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn direct(probe: &Probe<'_>) -> Result<(), String> {
    let yaml = probe
        .in_cluster_kubeconfig
        .ok_or_else(|| "no in-cluster kubeconfig yet".to_string())?;
    // Parse with our own parser first: its errors never quote the document.
    kubeconfig::parse(yaml, "in-cluster kubeconfig").map_err(|e| e.to_string())?;
    let kc =
        kube::config::Kubeconfig::from_yaml(yaml).map_err(|_| "unusable kubeconfig".to_string())?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|_| "unusable kubeconfig".to_string())?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    client
        .list_core_api_resources("v1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
