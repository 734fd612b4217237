//! Tests of [`super`]: how request paths route and which rendering an
//! `Accept` header selects.

use super::objects::Rendering;
use super::*;

#[test]
fn routes() {
    assert_eq!(route("/version"), Route::Version);
    assert_eq!(
        route("/apis/apps/v1"),
        Route::Resources("apps".into(), "v1".into())
    );
    assert_eq!(
        route("/api/v1/namespaces/d/configmaps/x"),
        Route::Object {
            group: "".into(),
            version: "v1".into(),
            namespace: Some("d".into()),
            plural: "configmaps".into(),
            name: Some("x".into()),
            sub: None
        }
    );
    assert_eq!(
        route("/api/v1/namespaces/d"),
        Route::Object {
            group: "".into(),
            version: "v1".into(),
            namespace: None,
            plural: "namespaces".into(),
            name: Some("d".into()),
            sub: None
        }
    );
    assert_eq!(
        route("/api/v1/namespaces/d/finalize"),
        Route::Object {
            group: "".into(),
            version: "v1".into(),
            namespace: None,
            plural: "namespaces".into(),
            name: Some("d".into()),
            sub: Some("finalize".into())
        }
    );
    assert_eq!(
        route("/apis/x.io/v1/widgets/w/status"),
        Route::Object {
            group: "x.io".into(),
            version: "v1".into(),
            namespace: None,
            plural: "widgets".into(),
            name: Some("w".into()),
            sub: Some("status".into())
        }
    );
    assert_eq!(route("/nope"), Route::Unknown);
}

#[test]
fn renderings() {
    assert!(
        rendering("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            == Rendering::Table
    );
    assert!(
        rendering("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
            == Rendering::Metadata
    );
    assert!(rendering("") == Rendering::Plain);
}
