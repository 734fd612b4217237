//! Writes the kubeconfig that reaches a testenv server: context `testenv`,
//! the server's CA, and a client certificate. The file holds a private key,
//! so it is written atomically with mode 0600.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::pki::CertPair;

/// The kubeconfig YAML for `server` (an `https://` URL).
pub fn render(server: &str, ca_pem: &str, client: &CertPair) -> String {
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: testenv-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: testenv
  context:
    cluster: testenv
    user: testenv-admin
current-context: testenv
preferences: {{}}
",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    )
}

/// A kubeconfig whose cluster, user and context all carry `name` (as
/// vcluster and k3s name theirs).
pub fn render_named(server: &str, ca_pem: &str, client: &CertPair, name: &str) -> String {
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {name}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
current-context: {name}
preferences: {{}}
",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    )
}

/// Writes `contents` to `path` atomically (temp file in the same directory,
/// mode 0600, fsync, rename), so a reader never sees half a kubeconfig.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
