//! `kflex ctx [NAME]` and `kflex ctx get|list|rename|delete` (§11.6, §11.7).

use std::io::BufRead as _;

use anyhow::{anyhow, bail};

use super::App;
use super::controlplane as cpx;
use crate::cli::{CtxArgs, CtxCommand};
use crate::hosting;
use crate::kubeconfig::{Kubeconfig, NamedCluster, NamedContext, NamedUser};
use crate::output::table;

pub async fn run(app: &App, a: CtxArgs) -> anyhow::Result<()> {
    match a.command {
        Some(CtxCommand::Get) => get(app),
        Some(CtxCommand::List) => list(app),
        Some(CtxCommand::Rename { old, new, switch }) => rename(app, &old, &new, switch),
        Some(CtxCommand::Delete { name, force }) => delete(app, &name, force),
        None => match a.name {
            None => bare(app, a.set_current_for_hosting).await,
            Some(name) => {
                switch(
                    app,
                    &name,
                    a.overwrite_existing_context,
                    a.set_current_for_hosting,
                )
                .await
            }
        },
    }
}

/// No name: go to the hosting context (or stay when the current one is it).
async fn bare(app: &App, set_current: bool) -> anyhow::Result<()> {
    let (loaded, mut kc) = app.load()?;
    let r = hosting::resolve(&mut kc, set_current).await?;
    app.out.say(r.note);
    app.save(&loaded, &kc, true)
}

async fn switch(app: &App, name: &str, overwrite: bool, set_current: bool) -> anyhow::Result<()> {
    let (loaded, mut kc) = app.load()?;
    if set_current {
        let current = kc.current_context.clone();
        hosting::set(&mut kc, &current)?;
    }
    if overwrite {
        app.out
            .say("Overwriting existing context for control plane");
        if !cpx::remove_local(&mut kc, name) {
            app.out.detail(&format!("no context {name} to overwrite"));
        }
    }
    if kc.context(name).is_some() {
        kc.current_context = name.to_string();
        app.save(&loaded, &kc, true)?;
        app.out.say(&format!("Switched to context {name}"));
        return Ok(());
    }
    app.out.detail(&format!(
        "kubeconfig context {name} not found, loading it from the server"
    ));
    let (hosting_ctx, client, cp) = hosting::read_stored(&kc, name).await?;
    let cp = cp.ok_or_else(|| {
        anyhow!("no context {name} in the kubeconfig and no control plane {name} on the hosting cluster ({hosting_ctx}); see `kflex list`")
    })?;
    let note = cpx::merge_from_server(&mut kc, &client, &cp, &hosting_ctx).await?;
    app.out.detail(&note);
    kc.current_context = name.to_string();
    app.save(&loaded, &kc, true)?;
    app.out.say(&format!(
        "Switched to context {name} (loaded from the server)"
    ));
    Ok(())
}

fn get(app: &App) -> anyhow::Result<()> {
    let (_, kc) = app.load()?;
    if kc.current_context.is_empty() {
        bail!("no current context is set");
    }
    println!("{}", kc.current_context);
    Ok(())
}

/// `ctx list` rows: sorted by name.
pub fn list_rows(kc: &Kubeconfig) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = kc
        .contexts
        .iter()
        .map(|c| {
            let cp = hosting::controlplane_of(c);
            let current = if c.name == kc.current_context {
                "*"
            } else {
                ""
            };
            vec![
                current.to_string(),
                c.name.clone(),
                if cp.is_some() { "yes" } else { "" }.to_string(),
                cp.unwrap_or_default(),
            ]
        })
        .collect();
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    rows
}

fn list(app: &App) -> anyhow::Result<()> {
    let (_, kc) = app.load()?;
    if kc.contexts.is_empty() {
        println!("No contexts found.");
        return Ok(());
    }
    print!(
        "{}",
        table(
            &["CURRENT", "CONTEXT", "MANAGED BY KFLEX", "CONTROLPLANE"],
            &list_rows(&kc)
        )
    );
    Ok(())
}

fn rename(app: &App, old: &str, new: &str, switch: bool) -> anyhow::Result<()> {
    let (loaded, mut kc) = app.load()?;
    let ctx = kc
        .context(old)
        .cloned()
        .ok_or_else(|| anyhow!("no context '{old}' is found in the kubeconfig"))?;
    if kc.context(new).is_some() {
        bail!("context '{new}' already exists; delete it first with `kflex ctx delete {new}`");
    }
    let mut c = NamedContext {
        name: new.into(),
        context: ctx.context.clone(),
    };
    // Keep the namespace and the extensions (KubeFlex drops the namespace).
    if let Some(cl) = kc.cluster(&format!("{old}-cluster")).cloned() {
        app.out.say(&format!("renaming cluster to {new}-cluster"));
        kc.upsert_cluster(NamedCluster {
            name: format!("{new}-cluster"),
            cluster: cl.cluster,
        });
        c.context.cluster = format!("{new}-cluster");
        kc.remove_cluster(&format!("{old}-cluster"));
    }
    if let Some(u) = kc.user(&format!("{old}-admin")).cloned() {
        app.out.say(&format!("renaming user to {new}-admin"));
        kc.upsert_user(NamedUser {
            name: format!("{new}-admin"),
            user: u.user,
        });
        c.context.user = format!("{new}-admin");
        kc.remove_user(&format!("{old}-admin"));
    }
    app.out
        .say(&format!("renaming context from {old} to {new}"));
    kc.upsert_context(c);
    kc.remove_context(old);
    // The hosting record follows its context (KubeFlex leaves it stale).
    if hosting::stored(&kc).as_deref() == Some(old) {
        hosting::set(&mut kc, new)?;
    }
    app.out.say(&format!("context {old} is deleted"));
    if switch {
        app.out.say(&format!("switching context to {new}"));
        kc.current_context = new.into();
    } else if kc.current_context == old {
        match hosting::check_stored(&kc) {
            Ok(h) => {
                app.out.say("switching to hosting cluster context");
                kc.current_context = h;
            }
            Err(_) => kc.current_context = new.into(),
        }
    }
    app.save(&loaded, &kc, true)
}

fn delete(app: &App, name: &str, force: bool) -> anyhow::Result<()> {
    let (loaded, mut kc) = app.load()?;
    let ctx = kc
        .context(name)
        .cloned()
        .ok_or_else(|| anyhow!("no context '{name}' is found in the kubeconfig"))?;
    if !force && !hosting::is_managed(&ctx) {
        eprintln!("Warning: Context '{name}' is not managed by KubeFlex.");
        eprint!("Are you sure you want to delete this context? (y/N): ");
        let mut answer = String::new();
        // EOF (a non-interactive shell) means "no", not an error.
        let _ = std::io::stdin().lock().read_line(&mut answer);
        let a = answer.trim().to_ascii_lowercase();
        if a != "y" && a != "yes" {
            println!("Deletion cancelled.");
            return Ok(());
        }
    }
    let was_current = kc.current_context == name;
    cpx::remove_local(&mut kc, name);
    if was_current {
        if let Ok(h) = hosting::check_stored(&kc) {
            app.out.say("switching to hosting cluster context");
            kc.current_context = h;
        } else {
            kc.current_context.clear();
        }
    }
    app.save(&loaded, &kc, true)?;
    app.out.say(&format!("context {name} deleted"));
    Ok(())
}
