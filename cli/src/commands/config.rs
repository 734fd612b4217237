//! `kflex config set-hosting CTX` and `kflex config diagnose` (§11.11),
//! the latter with live checks of the hosting context and of every
//! kflex-managed context's control plane.

use serde_json::{Value, json};

use super::App;
use super::controlplane::{self as cpx, api};
use crate::cli::{ConfigCommand, DiagnoseFormat};
use crate::hosting;
use crate::kubeconfig::Kubeconfig;
use kubeflex_operator::api::ConditionType;

pub async fn run(app: &App, c: ConfigCommand) -> anyhow::Result<()> {
    match c {
        ConfigCommand::SetHosting { ctx_name: context } => {
            let (loaded, mut kc) = app.load()?;
            let file = app.files.default_file().display().to_string();
            app.out.say(&format!(
                "setting hosting cluster context name to '{context}' in {file}"
            ));
            hosting::set(&mut kc, &context)?;
            app.save(&loaded, &kc, false)
        }
        ConfigCommand::Diagnose { output } => {
            let (_, kc) = app.load()?;
            let report = diagnose(&kc).await;
            match output {
                DiagnoseFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                DiagnoseFormat::Text => print!("{}", text(&report)),
            }
            Ok(())
        }
    }
}

/// The global record (KubeFlex's three cases), then live checks.
pub async fn diagnose(kc: &Kubeconfig) -> Value {
    let data = hosting::ext_data(&kc.extensions);
    let (status, message) = match &data {
        None => (
            "critical",
            "Global kubeflex extension is not present in kubeconfig",
        ),
        Some(d) if d.is_empty() => ("warning", "Global kubeflex extension is present but empty"),
        Some(_) => (
            "ok",
            "Global kubeflex extension is present and properly configured",
        ),
    };
    let mut checks = Vec::new();
    let flagged = kc
        .contexts
        .iter()
        .filter(|c| {
            hosting::ext_data(&c.context.extensions)
                .is_some_and(|d| d.get(hosting::KEY_IS_HOSTING).is_some_and(|v| v == "true"))
        })
        .count();
    checks.push(match flagged {
        0 => json!({"check": "hosting-flag", "status": "critical", "message": "no context is flagged as the hosting context"}),
        1 => json!({"check": "hosting-flag", "status": "ok", "message": "one context is flagged as the hosting context"}),
        n => json!({"check": "hosting-flag", "status": "warning", "message": format!("{n} contexts are flagged as the hosting context")}),
    });
    let client = match hosting::connect_stored(kc).await {
        Ok((ctx, client)) => {
            checks.push(json!({"check": "hosting-context", "status": "ok", "message": format!("hosting context '{ctx}' answers and serves the ControlPlane API")}));
            Some(client)
        }
        Err(e) => {
            checks.push(
                json!({"check": "hosting-context", "status": "critical", "message": e.to_string()}),
            );
            None
        }
    };
    let mut managed: Vec<_> = kc
        .contexts
        .iter()
        .filter_map(|c| hosting::controlplane_of(c).map(|cp| (c.name.clone(), cp)))
        .collect();
    managed.sort();
    for (ctx, cp) in managed {
        let Some(client) = &client else { break };
        let (st, msg) = match api(client).get_opt(&cp).await {
            Ok(Some(obj)) => match cpx::condition(&obj, ConditionType::READY) {
                Some((s, _, _)) if s == "True" => (
                    "ok",
                    format!("context '{ctx}': control plane {cp} is Ready"),
                ),
                Some((_, r, m)) => (
                    "warning",
                    format!("context '{ctx}': control plane {cp} is not Ready ({r}: {m})"),
                ),
                None => (
                    "warning",
                    format!("context '{ctx}': control plane {cp} has no Ready condition yet"),
                ),
            },
            Ok(None) => (
                "critical",
                format!(
                    "context '{ctx}': control plane {cp} does not exist on the hosting cluster; remove the context with `kflex ctx delete {ctx}`"
                ),
            ),
            Err(e) => (
                "critical",
                format!("context '{ctx}': {}", crate::output::kube_error(&e)),
            ),
        };
        checks.push(json!({"check": "controlplane", "status": st, "message": msg}));
    }
    let mut v = json!({"status": status, "message": message, "checks": checks});
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        v["data"] = json!({hosting::KEY_HOSTING: d.get(hosting::KEY_HOSTING)});
    }
    v
}

fn text(v: &Value) -> String {
    let mut out = format!(
        "{}: {}\n",
        v["status"].as_str().unwrap_or_default(),
        v["message"].as_str().unwrap_or_default()
    );
    for c in v["checks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {}\n",
            c["status"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ));
    }
    out
}
