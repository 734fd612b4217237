//! Every name the operator writes or reads that other tools depend on:
//! finalizer, field manager, label and annotation keys, Secret names and keys.
//!
//! Names marked "KubeFlex's" must not change: consumers (the `kflex` CLI,
//! PostCreateHooks mounting kubeconfig Secrets, scripts) rely on them.

/// Finalizer on every ControlPlane (KubeFlex's).
pub const FINALIZER: &str = "kflex.kubestellar.org/finalizer";

/// The one server-side-apply field manager for every object the operator owns.
pub const FIELD_MANAGER: &str = "kubeflex-operator";

/// Suffix of a control plane's hosting namespace: `<cp>-system` (KubeFlex's).
pub const NAMESPACE_SUFFIX: &str = "-system";

/// Namespace of the operator and of the shared PostgreSQL (KubeFlex's).
pub const SYSTEM_NAMESPACE: &str = "kubeflex-system";

/// The hosting namespace of a control plane.
pub fn namespace_of(cp_name: &str) -> String {
    format!("{cp_name}{NAMESPACE_SUFFIX}")
}

// ---- labels (our own, on every object we create; stable so re-applies are no-ops)

/// `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "kubeflex-operator";
/// Standard key naming the tool that manages an object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Names the owning ControlPlane (also on cluster-scoped objects, which
/// cannot carry a namespaced owner's cleanup).
pub const LABEL_CONTROL_PLANE: &str = "kflex.kubestellar.org/control-plane";
/// Names the PostCreateHook that created an object (with
/// [`LABEL_CONTROL_PLANE`]: deletion finds a hook's cluster-scoped objects).
pub const LABEL_POST_CREATE_HOOK: &str = "kflex.kubestellar.org/post-create-hook";
/// The component inside a control plane (`kube-apiserver`, `postgres`, ...).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

// ---- annotations

/// Set to `"true"` on a ControlPlane to let deletion proceed without dropping
/// its PostgreSQL database and role (when the database is gone for good).
pub const ANNOTATION_SKIP_DATABASE_TEARDOWN: &str = "kflex.kubestellar.org/skip-database-teardown";
/// ingress-nginx: pass TLS through so the tenant API server terminates it.
pub const ANNOTATION_SSL_PASSTHROUGH: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";
/// OpenShift: ask the router to generate the Route's host (KubeFlex's).
pub const ANNOTATION_ROUTE_HOST_GENERATED: &str = "openshift.io/host.generated";
/// Hash of the inputs of a pod template (certificates, kubeconfigs): a
/// change rolls the pods, which read these files only at start.
pub const ANNOTATION_CONFIG_HASH: &str = "kflex.kubestellar.org/config-hash";

/// `"true"` on a PostCreateHook: re-render and re-apply it for the control
/// planes that use it when its rendered objects change (default: once only).
pub const ANNOTATION_RERENDER: &str = "kflex.kubestellar.org/rerender";
/// On a ControlPlane: JSON map of hook name to the hash of its rendered
/// objects as last applied (notices a changed template).
pub const ANNOTATION_HOOK_HASHES: &str = "kflex.kubestellar.org/post-create-hook-hashes";
/// On a ControlPlane: the name of its PostgreSQL database and role, recorded
/// when first provisioned and always used after (new tenants get a prefixed
/// name; tenants made before keep theirs).
pub const ANNOTATION_DATABASE: &str = "kflex.kubestellar.org/database";
/// Field manager of what hooks write on the ControlPlane itself (the hook's
/// labels, the hash annotation), apart from the GitOps reconciler's and ours.
pub const FIELD_MANAGER_HOOKS: &str = "kubeflex-operator-hooks";

// ---- Secrets and their keys (KubeFlex's)

/// PKI of a `k8s` control plane.
pub const SECRET_K8S_CERTS: &str = "k8s-certs";
/// Admin kubeconfigs of `k8s`, `host` and `external`.
pub const SECRET_ADMIN_KUBECONFIG: &str = "admin-kubeconfig";
/// Controller-manager kubeconfig of `k8s`.
pub const SECRET_CM_KUBECONFIG: &str = "cm-kubeconfig";
/// Off-cluster key of `admin-kubeconfig` / `cm-kubeconfig`.
pub const KEY_KUBECONFIG: &str = "kubeconfig";
/// In-cluster key of `admin-kubeconfig`.
pub const KEY_KUBECONFIG_INCLUSTER: &str = "kubeconfig-incluster";
/// Kubeconfigs and join token of `k3s`.
pub const SECRET_K3S_CONFIG: &str = "k3s-config";
/// Off-cluster key of `k3s-config` and `vc-vcluster`.
pub const KEY_CONFIG: &str = "config";
/// In-cluster key of `k3s-config` and `vc-vcluster`.
pub const KEY_CONFIG_INCLUSTER: &str = "config-incluster";
/// k3s join token key of `k3s-config`.
pub const KEY_TOKEN: &str = "token";
/// Kubeconfig Secret written by the vcluster syncer.
pub const SECRET_VC_VCLUSTER: &str = "vc-vcluster";
/// Shared PostgreSQL's admin Secret and its key (KubeFlex's).
pub const SECRET_POSTGRES: &str = "postgres-postgresql";
/// Key of the admin password in [`SECRET_POSTGRES`].
pub const KEY_POSTGRES_PASSWORD: &str = "postgres-password";

// ---- Secrets and keys of our own (not in KubeFlex)

/// Off-cluster key the operator adds to `vc-vcluster` with
/// `--external-address`: the syncer's `config` names `<cp>.<domain>`, which
/// needs DNS; this one names the address, with `tls-server-name`.
pub const KEY_CONFIG_EXTERNAL: &str = "config-external";

/// CAs the operator provides to k3s, so that it can write `k3s-config`
/// itself (see `builders::k3s`).
pub const SECRET_K3S_CA: &str = "k3s-ca";
/// Per-control-plane database credentials read by kine through `secretKeyRef`.
pub const SECRET_DATABASE: &str = "kine-database";
/// Keys of [`SECRET_DATABASE`].
pub const KEY_DB_USER: &str = "username";
/// Password of the control plane's own role.
pub const KEY_DB_PASSWORD: &str = "password";
/// The full kine endpoint (`postgres://...`), so the password is never in a pod spec.
pub const KEY_DB_ENDPOINT: &str = "endpoint";
/// Admin Secret of a dedicated PostgreSQL instance in `<cp>-system`.
pub const SECRET_DEDICATED_POSTGRES: &str = "postgres";

// ---- k8s-certs keys (KubeFlex's, plus `front-proxy-ca.key`)

/// Cluster CA certificate.
pub const CERT_CA_CRT: &str = "ca.crt";
/// Cluster CA key.
pub const CERT_CA_KEY: &str = "ca.key";
/// API server serving certificate.
pub const CERT_APISERVER_CRT: &str = "apiserver.crt";
/// API server serving key.
pub const CERT_APISERVER_KEY: &str = "apiserver.key";
/// API server to kubelet client certificate.
pub const CERT_KUBELET_CLIENT_CRT: &str = "apiserver-kubelet-client.crt";
/// API server to kubelet client key.
pub const CERT_KUBELET_CLIENT_KEY: &str = "apiserver-kubelet-client.key";
/// Front-proxy CA certificate (a separate CA, unlike KubeFlex's).
pub const CERT_FRONT_PROXY_CA_CRT: &str = "front-proxy-ca.crt";
/// Front-proxy CA key (new: KubeFlex has no separate front-proxy CA).
pub const CERT_FRONT_PROXY_CA_KEY: &str = "front-proxy-ca.key";
/// Front-proxy client certificate.
pub const CERT_FRONT_PROXY_CLIENT_CRT: &str = "front-proxy-client.crt";
/// Front-proxy client key.
pub const CERT_FRONT_PROXY_CLIENT_KEY: &str = "front-proxy-client.key";
/// Service-account signing key.
pub const CERT_SA_KEY: &str = "sa.key";
/// Service-account verification key (PKIX `PUBLIC KEY`).
pub const CERT_SA_PUB: &str = "sa.pub";

// ---- workloads and services (KubeFlex's)

/// `k8s` API server Deployment.
pub const DEPLOYMENT_APISERVER: &str = "kube-apiserver";
/// `k8s` controller-manager Deployment.
pub const DEPLOYMENT_CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// `k3s` server StatefulSet.
pub const STATEFULSET_K3S: &str = "k3s-server";
/// `k3s` Service.
pub const SERVICE_K3S: &str = "k3s";
/// `vcluster` StatefulSet and Service (the chart's release name).
pub const VCLUSTER_RELEASE: &str = "vcluster";
/// Shared PostgreSQL StatefulSet and Service (KubeFlex's Helm release `postgres`).
pub const POSTGRES_SHARED: &str = "postgres-postgresql";
/// Dedicated PostgreSQL StatefulSet and Service in `<cp>-system`.
pub const POSTGRES_DEDICATED: &str = "postgres";
/// Ingress class KubeFlex's ingress-nginx serves.
pub const INGRESS_CLASS_NGINX: &str = "nginx";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_name_plus_system() {
        assert_eq!(namespace_of("cp1"), "cp1-system");
    }
}
