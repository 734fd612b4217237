//! `kflex list [-o wide|json|yaml]`: KubeFlex's columns (NAME, SYNCED,
//! READY, TYPE, AGE); `wide` adds the Git source, path and short commit of
//! control planes the reconciler manages and the local context reaching
//! each. Reads only: the kubeconfig is not written.

use anyhow::anyhow;
use kube::api::ListParams;
use kubeflex_operator::api::{ConditionType, ControlPlane};
use serde::Serialize;

use super::App;
use super::controlplane::{self as cpx, api};
use crate::cli::{ListArgs, ListFormat};
use crate::hosting;
use crate::kubeconfig::Kubeconfig;
use crate::output::{go_duration, kube_error, table};

/// One row.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub synced: String,
    pub ready: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub age: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Rows sorted by name; `now` fixes AGE.
pub fn rows(cps: &[ControlPlane], kc: &Kubeconfig, now: k8s_openapi::jiff::Timestamp) -> Vec<Row> {
    let mut out: Vec<Row> = cps
        .iter()
        .map(|cp| {
            let name = cp.metadata.name.clone().unwrap_or_default();
            let cond = |t| {
                cpx::condition(cp, t)
                    .map(|c| c.0)
                    .unwrap_or_else(|| "Unknown".into())
            };
            let age = cp
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| {
                    let secs = now.as_second().saturating_sub(t.0.as_second()).max(0);
                    go_duration(std::time::Duration::from_secs(secs.unsigned_abs()))
                })
                .unwrap_or_default();
            let ann = |k: &str| {
                cp.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(k).cloned())
            };
            let context = kc
                .contexts
                .iter()
                .filter(|c| hosting::controlplane_of(c).as_deref() == Some(name.as_str()))
                .map(|c| c.name.clone())
                .min();
            Row {
                synced: cond(ConditionType::SYNCED),
                ready: cond(ConditionType::READY),
                type_: cp.spec.type_.to_string(),
                age,
                source: cpx::git_source(cp),
                path: ann(cpx::ANNOTATION_PATH),
                commit: ann(cpx::ANNOTATION_COMMIT).map(|c| c.chars().take(7).collect()),
                context,
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The human table.
pub fn render(rows: &[Row], wide: bool) -> String {
    if rows.is_empty() {
        return "No control planes found.\n".into();
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut header = vec!["NAME", "SYNCED", "READY", "TYPE", "AGE"];
    if wide {
        header.extend(["SOURCE", "PATH", "COMMIT", "CONTEXT"]);
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![
                r.name.clone(),
                r.synced.clone(),
                r.ready.clone(),
                r.type_.clone(),
                r.age.clone(),
            ];
            if wide {
                v.extend([
                    dash(&r.source),
                    dash(&r.path),
                    dash(&r.commit),
                    dash(&r.context),
                ]);
            }
            v
        })
        .collect();
    table(&header, &body)
}

pub async fn run(app: &App, a: ListArgs) -> anyhow::Result<()> {
    let (_, mut kc) = app.load()?;
    let hosting = app.hosting(&mut kc).await?;
    let list = api(&hosting.client)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            anyhow!(
                "listing control planes on {}: {}",
                hosting.context,
                kube_error(&e)
            )
        })?;
    let rows = rows(&list.items, &kc, k8s_openapi::jiff::Timestamp::now());
    match a.output {
        None => print!("{}", render(&rows, false)),
        Some(ListFormat::Wide) => print!("{}", render(&rows, true)),
        Some(ListFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": rows}))?
        ),
        Some(ListFormat::Yaml) => print!(
            "{}",
            serde_saphyr::to_string(&serde_json::json!({"items": rows}))?
        ),
    }
    Ok(())
}
