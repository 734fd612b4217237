//! `policy/v1` PodDisruptionBudgets through the real kubectl: discovered
//! (`kubectl api-resources`, the `pdb` short name), applied, read back, and
//! refused with kube-apiserver's text when both bounds are set.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod support;

use support::Cluster;

const PDB: &str = "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: web
";

#[test]
fn kubectl_applies_reads_and_validates_a_pod_disruption_budget() {
    let c = Cluster::start();
    let resources = c.ok(&["api-resources", "--api-group=policy"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("poddisruptionbudgets")
                && l.contains("pdb")
                && l.contains("policy/v1")),
        "{resources}"
    );
    c.apply(PDB, &[]);
    let min = c.ok(&["get", "pdb", "web", "-o", "jsonpath={.spec.minAvailable}"]);
    assert_eq!(min, "1");
    // kube-apiserver's printer columns (no disruption controller runs, so
    // no disruption is allowed yet).
    let table = c.ok(&["get", "pdb", "web"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "NAME",
                "MIN",
                "AVAILABLE",
                "MAX",
                "UNAVAILABLE",
                "ALLOWED",
                "DISRUPTIONS",
                "AGE"
            ],
            vec![
                "web",
                "1",
                "N/A",
                "0",
                rows[1].last().copied().unwrap_or("")
            ],
        ],
        "{table}"
    );
    let both = PDB.replace("minAvailable: 1", "minAvailable: 1\n  maxUnavailable: 1");
    let out = c.with_stdin(&["apply", "-f", "-"], &both);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("The PodDisruptionBudget \"web\" is invalid: spec: Invalid value: ")
            && err.contains("minAvailable and maxUnavailable cannot be both set"),
        "{err}"
    );
    let negative = PDB.replace("minAvailable: 1", "maxUnavailable: -1");
    let out = c.with_stdin(&["create", "-f", "-", "--dry-run=server"], &negative);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    c.ok(&["delete", "pdb", "web"]);
    assert!(c.fails(&["get", "pdb", "web"]).contains("NotFound"));
}
