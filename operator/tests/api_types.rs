//! KubeFlex manifests deserialize into our types and serialize back with no
//! field lost or renamed.

use kubeflex_operator::api::{ControlPlane, ControlPlaneType, PostCreateHook};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned>(
    yaml: &str,
) -> (T, serde_json::Value, serde_json::Value) {
    let original: serde_json::Value = serde_saphyr::from_str(yaml).expect("fixture is YAML");
    let typed: T = serde_saphyr::from_str(yaml).expect("fixture fits the type");
    let back = serde_json::to_value(&typed).expect("serializes");
    (typed, original, back)
}

#[test]
fn controlplane_with_every_field_round_trips() {
    let (cp, original, back) =
        round_trip::<ControlPlane>(include_str!("fixtures/controlplane-full.yaml"));
    assert_eq!(original, back);
    assert_eq!(cp.spec.type_, ControlPlaneType::K8s);
    let hooks = cp.spec.post_create_hooks.as_deref().unwrap_or_default();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].hook_name, "hello");
    assert_eq!(cp.spec.global_vars.unwrap()["TEAM"], "platform");
    let status = cp.status.unwrap();
    assert_eq!(status.observed_generation, 3);
    assert_eq!(
        status.secret_ref.unwrap().in_cluster_key,
        "kubeconfig-incluster"
    );
}

#[test]
fn kubeflex_samples_round_trip() {
    let (_, original, back) = round_trip::<ControlPlane>(include_str!(
        "../../config/samples/tenancy_v1alpha1_controlplane.yaml"
    ));
    assert_eq!(original, back);
    let (hook, original, back) = round_trip::<PostCreateHook>(include_str!(
        "../../config/samples/postcreate-hooks/hello.yaml"
    ));
    assert_eq!(original, back);
    assert_eq!(
        hook.spec.default_vars.unwrap()[0].value,
        "Hello from Defaults"
    );
}

#[test]
fn postcreatehook_with_two_templates_round_trips() {
    let (hook, original, back) =
        round_trip::<PostCreateHook>(include_str!("fixtures/postcreatehook-two-templates.yaml"));
    assert_eq!(original, back);
    let templates = hook.spec.templates.unwrap();
    assert_eq!(templates.len(), 2);
    assert_eq!(
        templates[1]["spec"]["template"]["spec"]["containers"][0]["args"][3],
        "{{.Namespace}}"
    );
}

#[test]
fn every_type_spelling_is_kubeflex_s() {
    for (text, ty) in [
        ("k8s", ControlPlaneType::K8s),
        ("k3s", ControlPlaneType::K3s),
        ("vcluster", ControlPlaneType::Vcluster),
        ("host", ControlPlaneType::Host),
        ("external", ControlPlaneType::External),
        ("ocm", ControlPlaneType::Ocm),
    ] {
        let yaml = format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {{name: x}}\nspec: {{type: {text}}}\n"
        );
        let cp: ControlPlane = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(cp.spec.type_, ty);
        assert_eq!(ty.as_str(), text);
    }
    let bad = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {name: x}\nspec: {type: k9s}\n";
    assert!(serde_saphyr::from_str::<ControlPlane>(bad).is_err());
}
