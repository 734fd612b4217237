#![allow(clippy::unwrap_used)]

use super::*;

const FOREIGN: &str = r#"apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: gke
  cluster:
    server: https://34.1.2.3
    certificate-authority-data: Q0EK
    proxy-url: socks5://localhost:1080
    tls-server-name: api.example.com
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: foo
- name: plain
  cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: true
users:
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      args: ["--flag", "x"]
      env:
      - name: FOO
        value: bar
      interactiveMode: IfAvailable
      provideClusterInfo: true
- name: oidc
  user:
    auth-provider:
      name: oidc
      config:
        client-id: kube
        id-token: SECRET-ID-TOKEN-123456
        idp-issuer-url: https://issuer
- name: token-user
  user:
    token: SECRET-TOKEN-abcdef
contexts:
- name: gke
  context:
    cluster: gke
    user: exec-user
    namespace: prod
    extensions:
    - name: other-tool
      extension:
        kind: Something
        spec: {a: 1, b: [1, 2]}
- name: plain
  context:
    cluster: plain
    user: token-user
current-context: gke
extensions:
- name: other-tool-global
  extension:
    whatever: [1, "two"]
x-unknown-root: keep me
"#;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn as_value(kc: &Kubeconfig) -> Value {
    serde_json::to_value(kc).unwrap()
}

fn raw(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

#[test]
fn round_trip_keeps_every_foreign_field_and_order() {
    let kc = Kubeconfig::parse(FOREIGN, Path::new("x")).unwrap();
    let yaml = kc.to_yaml(Path::new("x")).unwrap();
    // Same values, compared as plain data (formatting may differ).
    assert_eq!(raw(&yaml), raw(FOREIGN));
    let names: Vec<_> = kc.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["exec-user", "oidc", "token-user"]);
    // kube understands the superset: exec, auth-provider, tls-server-name, proxy-url.
    let k = kc.for_kube("gke").unwrap();
    let cluster = k.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.tls_server_name.as_deref(), Some("api.example.com"));
    assert_eq!(
        cluster.proxy_url.as_deref(),
        Some("socks5://localhost:1080")
    );
    let user = k.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(
        user.exec.as_ref().unwrap().command.as_deref(),
        Some("gke-gcloud-auth-plugin")
    );
    assert!(
        k.auth_infos[1]
            .auth_info
            .as_ref()
            .unwrap()
            .auth_provider
            .is_some()
    );
}

#[test]
fn debug_never_shows_credentials() {
    let kc = Kubeconfig::parse(FOREIGN, Path::new("x")).unwrap();
    let dbg = format!("{kc:?}");
    assert!(!dbg.contains("SECRET-TOKEN"), "{dbg}");
    assert!(!dbg.contains("SECRET-ID-TOKEN"), "{dbg}");
    assert!(dbg.contains("token"));
}

#[test]
fn parse_error_names_the_file_not_the_content() {
    let e = Kubeconfig::parse(
        "users: [ {name: a, user: \"SECRET-xyz\"} ]",
        Path::new("/k/cfg"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/k/cfg"), "{e}");
    assert!(!e.contains("SECRET-xyz"), "{e}");
}

#[test]
fn resolve_follows_kubectl() {
    let home = Path::new("/home/u");
    let f = KubeconfigFiles::resolve(None, None, Some(home)).unwrap();
    assert_eq!(f.paths, [home.join(".kube/config")]);
    let env = std::ffi::OsString::from("/a::/b:/a");
    let f = KubeconfigFiles::resolve(None, Some(&env), Some(home)).unwrap();
    assert_eq!(f.paths, [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert!(!f.explicit);
    let f = KubeconfigFiles::resolve(Some(Path::new("/c")), Some(&env), Some(home)).unwrap();
    assert_eq!(f.paths, [PathBuf::from("/c")]);
    assert!(f.explicit);
}

fn ctx(name: &str, cluster: &str) -> NamedContext {
    NamedContext {
        name: name.into(),
        context: Context {
            cluster: cluster.into(),
            user: cluster.into(),
            ..Context::default()
        },
    }
}

#[test]
fn multi_file_merge_and_write_back_like_kubectl() {
    let d = tmp();
    let a = d.path().join("a");
    let b = d.path().join("b");
    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: one\n  cluster: {server: https://1}\ncontexts:\n- name: one\n  context: {cluster: one, user: u1}\n",
    )
    .unwrap();
    std::fs::write(&b, FOREIGN).unwrap();
    let b_before = std::fs::read_to_string(&b).unwrap();
    let files = KubeconfigFiles {
        paths: vec![a.clone(), b.clone()],
        explicit: false,
    };
    let loaded = files.load().unwrap();
    let merged = loaded.config().clone();
    // current-context from the first file that sets it (b).
    assert_eq!(merged.current_context, "gke");
    assert_eq!(merged.contexts.len(), 3);

    // New entry and current-context: first existing file (a); b untouched.
    let mut new = merged.clone();
    new.upsert_context(ctx("cp1", "cp1-cluster"));
    new.current_context = "cp1".into();
    let written = loaded.save(&new).unwrap();
    assert_eq!(written, vec![a.clone()]);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), b_before);
    let a_doc = Kubeconfig::parse(&std::fs::read_to_string(&a).unwrap(), &a).unwrap();
    assert_eq!(a_doc.current_context, "cp1");
    assert!(a_doc.context("cp1").is_some());

    // A changed entry goes back to the file holding it (b), others equal.
    let loaded = files.load().unwrap();
    let mut new = loaded.config().clone();
    new.context_mut("plain").unwrap().context.namespace = Some("ns".into());
    assert_eq!(loaded.save(&new).unwrap(), vec![b.clone()]);
    let b_doc = Kubeconfig::parse(&std::fs::read_to_string(&b).unwrap(), &b).unwrap();
    let orig = Kubeconfig::parse(FOREIGN, &b).unwrap();
    assert_eq!(b_doc.users, orig.users);
    assert_eq!(b_doc.clusters, orig.clusters);
    assert_eq!(b_doc.extensions, orig.extensions);
    assert_eq!(b_doc.other, orig.other);
    assert_eq!(b_doc.contexts[0], orig.contexts[0]);
    assert_eq!(b_doc.contexts[1].context.namespace.as_deref(), Some("ns"));

    // Nothing changed: nothing written.
    let loaded = files.load().unwrap();
    assert!(loaded.save(&loaded.config().clone()).unwrap().is_empty());
}

#[test]
fn removal_clears_every_file_holding_the_name() {
    let d = tmp();
    let a = d.path().join("a");
    let b = d.path().join("b");
    let doc = "contexts:\n- name: cp\n  context: {cluster: cp-cluster, user: cp-admin}\n";
    std::fs::write(&a, doc).unwrap();
    std::fs::write(&b, doc).unwrap();
    let files = KubeconfigFiles {
        paths: vec![a.clone(), b.clone()],
        explicit: false,
    };
    let loaded = files.load().unwrap();
    let mut new = loaded.config().clone();
    assert!(new.remove_context("cp"));
    loaded.save(&new).unwrap();
    assert!(files.load().unwrap().config().context("cp").is_none());
}

#[test]
fn writes_are_0600_atomic_and_concurrent_writers_lose_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = tmp();
    let path = d.path().join("config");
    std::fs::write(&path, FOREIGN).unwrap();
    let files = KubeconfigFiles {
        paths: vec![path.clone()],
        explicit: true,
    };
    // Everyone loads first, then all save: each adds its own context.
    let loads: Vec<_> = (0..8).map(|_| files.load().unwrap()).collect();
    std::thread::scope(|s| {
        for (i, loaded) in loads.iter().enumerate() {
            s.spawn(move || {
                let mut new = loaded.config().clone();
                new.upsert_context(ctx(&format!("c{i}"), "x"));
                loaded.save(&new).unwrap();
            });
        }
    });
    let doc = files.load().unwrap();
    for i in 0..8 {
        assert!(
            doc.config().context(&format!("c{i}")).is_some(),
            "c{i} lost"
        );
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn failed_write_leaves_the_old_file() {
    let d = tmp();
    let path = d.path().join("config");
    std::fs::write(&path, FOREIGN).unwrap();
    // A directory where the temporary file would go cannot be replaced by rename.
    let target = d.path().join("dir-target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("x"), "x").unwrap();
    assert!(write_atomic(&target, b"new").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FOREIGN);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
}

#[test]
fn null_lists_parse_as_empty() {
    let kc = Kubeconfig::parse(
        "apiVersion: v1\nclusters: null\ncontexts:\nusers:\ncurrent-context: \"\"\n",
        Path::new("x"),
    )
    .unwrap();
    assert!(kc.clusters.is_empty() && kc.contexts.is_empty());
}

#[test]
fn raw_helper_sees_equal_values() {
    let kc = Kubeconfig::parse(FOREIGN, Path::new("x")).unwrap();
    assert_eq!(as_value(&kc)["x-unknown-root"], "keep me");
}
