//! The committed CRDs are exactly what the types generate, are structural,
//! and carry KubeFlex's names, columns and our validation rules.

use kubeflex_operator::crdgen::{crd_files, crds};
use serde_json::Value;

#[test]
fn committed_crds_match_the_types() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/crd/bases");
    for (file, yaml) in crd_files().unwrap() {
        let path = format!("{dir}/{file}");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{path} is out of date: run `cargo run -p kubeflex-operator -- crds --write config/crd/bases`"
        );
    }
}

/// Every schema node says its type, unless it explicitly keeps unknown
/// fields or is int-or-string (the structural-schema rule of apiextensions).
fn assert_structural(node: &Value, at: &str) {
    let obj = node
        .as_object()
        .unwrap_or_else(|| panic!("{at}: schema is not an object"));
    for banned in ["anyOf", "oneOf", "allOf", "not", "$ref"] {
        assert!(
            !obj.contains_key(banned),
            "{at}: {banned} is not allowed at this level"
        );
    }
    let open = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    assert!(open || obj.contains_key("type"), "{at}: missing `type`");
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            assert_structural(child, &format!("{at}.{name}"));
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(items, &format!("{at}[]"));
    }
    if let Some(extra @ Value::Object(_)) = obj.get("additionalProperties") {
        assert_structural(extra, &format!("{at}{{*}}"));
    }
}

#[test]
fn crds_are_structural_with_kubeflex_identity() {
    let crds = crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "controlplanes.tenancy.kflex.kubestellar.org",
            "postcreatehooks.tenancy.kflex.kubestellar.org",
            "syncs.gitops.kflex.kubestellar.org"
        ]
    );
    for crd in &crds[..2] {
        assert_eq!(crd.spec.scope, "Cluster");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("SYNCED", ".status.conditions[?(@.type=='Synced')].status"),
                ("READY", ".status.conditions[?(@.type=='Ready')].status"),
                ("TYPE", ".spec.type"),
                ("AGE", ".metadata.creationTimestamp"),
            ]
        );
        let schema =
            serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
        assert_structural(&schema, crd.spec.names.kind.as_str());
    }
    assert_eq!(
        crds[0].spec.names.short_names.as_deref().unwrap(),
        ["cp", "cps"]
    );
    assert_eq!(
        crds[1].spec.names.short_names.as_deref().unwrap(),
        ["pch", "pchs"]
    );
}

/// The reconciler's `Sync`: cluster-scoped, a status subresource, the
/// columns `kubectl get syncs` shows, and the status fields users read.
#[test]
fn sync_crd_has_gitops_identity_and_columns() {
    let crd = &crds()[2];
    assert_eq!(crd.spec.group, "gitops.kflex.kubestellar.org");
    assert_eq!(crd.spec.names.kind, "Sync");
    assert_eq!(crd.spec.scope, "Cluster");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("URL", ".status.url"),
            ("REVISION", ".status.lastAppliedCommit"),
            ("READY", ".status.conditions[?(@.type=='Ready')].status"),
            ("AGE", ".metadata.creationTimestamp"),
        ]
    );
    let schema =
        serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
    assert_structural(&schema, "Sync");
    let status = schema["properties"]["status"]["properties"]
        .as_object()
        .unwrap();
    for field in [
        "url",
        "ref",
        "lastFetchedCommit",
        "lastAppliedCommit",
        "lastSyncTime",
        "conditions",
        "counts",
        "errors",
        "pruneBlocked",
    ] {
        assert!(status.contains_key(field), "status.{field} is missing");
    }
    let condition = &status["conditions"]["items"]["properties"];
    assert_eq!(condition["lastTransitionTime"]["format"], "date-time");
    let counts = status["counts"]["properties"].as_object().unwrap();
    let names: Vec<_> = counts.keys().map(String::as_str).collect();
    assert_eq!(names, ["applied", "failed", "pruned", "unchanged"]);
}

#[test]
fn controlplane_schema_validates_type_and_defaults() {
    let crd = &crds()[0];
    let schema = serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap();
    let spec = &schema["properties"]["spec"];
    let ty = &spec["properties"]["type"];
    assert_eq!(
        ty["enum"],
        serde_json::json!(["k8s", "ocm", "vcluster", "host", "external", "k3s"])
    );
    assert_eq!(ty["x-kubernetes-validations"][0]["rule"], "self == oldSelf");
    assert_eq!(spec["required"], serde_json::json!(["type"]));
    assert_eq!(
        spec["x-kubernetes-validations"][0]["message"],
        "backend is immutable"
    );
    assert_eq!(
        spec["properties"]["backend"]["enum"],
        serde_json::json!(["shared", "dedicated"])
    );
    assert_eq!(
        spec["properties"]["tokenExpirationSeconds"]["default"],
        31536000
    );
    assert_eq!(
        spec["properties"]["waitForPostCreateHooks"]["default"],
        false
    );
    let status = &schema["properties"]["status"];
    assert_eq!(
        status["required"],
        serde_json::json!(["conditions", "observedGeneration"])
    );

    let hook = &crds()[1];
    let schema = serde_json::to_value(
        &hook.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap();
    let item = &schema["properties"]["spec"]["properties"]["templates"]["items"];
    assert_eq!(item["x-kubernetes-embedded-resource"], true);
    assert_eq!(item["x-kubernetes-preserve-unknown-fields"], true);
}
