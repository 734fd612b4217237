//! Tests of [`super`]: the pod IP pool and scheduling decisions.

use super::*;

fn pod() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "d", "uid": "u"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "ghcr.io/x/y:v1"}]},
        "status": {"phase": "Pending", "qosClass": "BestEffort"}
    })
}

#[test]
fn ip_pool_is_unique_reuses_and_recovers() {
    let mut pool = NodeState::default();
    let a = pool.assign("a", None).unwrap();
    let b = pool.assign("b", None).unwrap();
    assert_ne!(a, b);
    assert_eq!(pool.assign("a", None), Some(a));
    assert_eq!(a, Ipv4Addr::new(10, 244, 0, 2));
    // A restarted pod keeps its address when it is free...
    let kept = Ipv4Addr::new(10, 244, 3, 9);
    assert_eq!(pool.assign("c", Some(kept)), Some(kept));
    // ...and not when it is taken or out of range.
    let d = pool.assign("d", Some(kept)).unwrap();
    assert_ne!(d, kept);
    assert_ne!(pool.assign("e", Some(Ipv4Addr::new(192, 168, 0, 1))), None);
    assert_eq!(pool.release("a"), Some(a));
    assert_eq!(pool.release("a"), None);
}

#[test]
fn scheduling_honours_claims_and_node_selectors() {
    let nodes = vec![NodeInfo {
        name: "n0".into(),
        ip: Ipv4Addr::new(172, 18, 0, 2),
        labels: json!({"kubernetes.io/os": "linux"}),
    }];
    let none = |_: &str, _: &str| None;
    let mut p = pod();
    assert_eq!(schedule(&p, &none, &nodes, 3).unwrap(), "n0");
    p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    assert_eq!(
        schedule(&p, &none, &nodes, 0).unwrap_err(),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    let mut p = pod();
    p["spec"]["volumes"] = json!([{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]);
    assert_eq!(
        schedule(&p, &none, &nodes, 0).unwrap_err(),
        "0/1 nodes are available: persistentvolumeclaim \"c\" not found."
    );
}
