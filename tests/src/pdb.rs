//! `policy/v1` PodDisruptionBudget: stored and listed in discovery like any
//! built-in kind, with kube-apiserver's spec checks
//! (pkg/apis/policy/validation). No disruption controller runs: nothing
//! evicts pods here, so `status` stays what clients write.

use serde_json::Value;

use crate::defaults::Cause;
use crate::resources::{ALL_VERBS, ResourceType};

/// The resource as kube-apiserver 1.33 serves it.
pub fn resource_type() -> ResourceType {
    ResourceType {
        group: "policy".into(),
        version: "v1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
        singular: "poddisruptionbudget".into(),
        namespaced: true,
        short_names: vec!["pdb".into()],
        categories: Vec::new(),
        status_subresource: true,
        verbs: ALL_VERBS.to_vec(),
        extra_subresources: Vec::new(),
        crd_version: None,
    }
}

const POLICIES: [&str; 2] = ["IfHealthyBudget", "AlwaysAllow"];

/// kube-apiserver's checks of `spec`: `minAvailable` and `maxUnavailable`
/// exclusive, each a non-negative integer or a percentage up to 100%, and
/// a known `unhealthyPodEvictionPolicy`. Empty when valid.
pub fn validate(obj: &Value) -> Vec<Cause> {
    let spec = &obj["spec"];
    let mut causes = Vec::new();
    let invalid = |field: &str, value: &Value, message: &str| -> Cause {
        (
            "FieldValueInvalid".into(),
            format!("Invalid value: {value}: {message}"),
            field.into(),
        )
    };
    for field in ["minAvailable", "maxUnavailable"] {
        let value = &spec[field];
        if let Some(message) = int_or_percent_problem(value) {
            causes.push(invalid(&format!("spec.{field}"), value, message));
        }
    }
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        causes.push(invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    let policy = &spec["unhealthyPodEvictionPolicy"];
    if let Some(p) = policy.as_str()
        && !POLICIES.contains(&p)
    {
        causes.push((
            "FieldValueNotSupported".into(),
            format!(
                "Unsupported value: {policy}: supported values: \"{}\"",
                POLICIES.join("\", \"")
            ),
            "spec.unhealthyPodEvictionPolicy".into(),
        ));
    }
    causes
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
fn int_or_percent_problem(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Number(n) => match n.as_i64() {
            Some(i) if i >= 0 => None,
            _ => Some("must be greater than or equal to 0"),
        },
        Value::String(s) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if (0..=100).contains(&p) => None,
            Some(Ok(p)) if p > 100 => Some("must not be greater than 100%"),
            Some(Ok(_)) => Some("must be greater than or equal to 0"),
            _ => Some("a valid percent string must be a numeric string followed by an ending '%'"),
        },
        _ => Some("must be an integer or percentage (e.g '5%')"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(spec: Value) -> Vec<(String, String)> {
        validate(&json!({"spec": spec}))
            .into_iter()
            .map(|(_, message, field)| (field, message))
            .collect()
    }

    #[test]
    fn a_budget_of_one_or_the_other_is_valid() {
        assert!(fields(json!({"minAvailable": 1, "selector": {}})).is_empty());
        assert!(fields(json!({"maxUnavailable": "25%"})).is_empty());
        assert!(
            fields(json!({"minAvailable": "100%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}))
                .is_empty()
        );
    }

    #[test]
    fn both_bounds_negative_numbers_and_bad_percentages_are_refused() {
        let both = fields(json!({"minAvailable": 1, "maxUnavailable": 1}));
        assert_eq!(both.len(), 1, "{both:?}");
        assert_eq!(both[0].0, "spec");
        assert!(
            both[0]
                .1
                .ends_with("minAvailable and maxUnavailable cannot be both set")
        );
        assert_eq!(
            fields(json!({"minAvailable": -1})),
            [(
                "spec.minAvailable".to_owned(),
                "Invalid value: -1: must be greater than or equal to 0".to_owned()
            )]
        );
        assert_eq!(
            fields(json!({"maxUnavailable": "150%"}))[0].1,
            "Invalid value: \"150%\": must not be greater than 100%"
        );
        assert_eq!(
            fields(json!({"maxUnavailable": "half"}))[0].0,
            "spec.maxUnavailable"
        );
        assert_eq!(
            fields(json!({"unhealthyPodEvictionPolicy": "Never"}))[0].1,
            "Unsupported value: \"Never\": supported values: \"IfHealthyBudget\", \"AlwaysAllow\""
        );
    }
}
