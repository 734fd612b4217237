//! Requests on API objects: each verb handed to [`Api`], `get` and `list`
//! rendered as a Table or PartialObjectMetadata when the client asks, watches
//! as chunked streams, and the `scale` subresource as autoscaling/v1 Scale.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::access::{review, token_request};
use super::protobuf;
use super::{AppState, Body, full, header, json_response, read_body};
use crate::api::{self, Api, Params, Target, Writer};
use crate::auth::User;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::table;
use crate::watch::{self, WatchRequest};

/// A request body as JSON, whichever of JSON, YAML or protobuf it came in.
fn body_value(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if protobuf::is_protobuf(content_type) {
        protobuf::decode(body)
    } else {
        api::parse_body(body, content_type.contains("yaml"))
    }
}

pub(super) async fn object_request(
    state: &AppState,
    user: &User,
    target: Target,
    verb: &str,
    params: Params,
    accept: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let api = &state.api;
    let content_type = header(&req, "content-type").to_string();
    let writer = writer_for(&params, header(&req, "user-agent"));
    let how = rendering(accept);
    if target.rt.verbs == ["create"] {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let body = body_value(&read_body(req.into_body()).await?, &content_type)?;
        return Ok(json_response(201, &review(state, user, &target, body)?));
    }
    if let Some(sub) = target.subresource.as_deref()
        && sub != "status"
    {
        return match (target.rt.plural.as_str(), sub, verb) {
            ("serviceaccounts", "token", "create") => {
                let body = body_value(&read_body(req.into_body()).await?, &content_type)?;
                Ok(json_response(201, &token_request(state, &target, body)?))
            }
            (
                "deployments" | "statefulsets" | "replicasets",
                "scale",
                "get" | "update" | "patch",
            ) => {
                let body = read_body(req.into_body()).await?;
                Ok(json_response(
                    200,
                    &scale(api, &target, verb, &body, &content_type, &params, &writer)?,
                ))
            }
            ("namespaces", "finalize", "update") => {
                let body = body_value(&read_body(req.into_body()).await?, &content_type)?;
                let t = Target {
                    subresource: None,
                    ..target
                };
                let (code, obj) = api.update(&t, body, &params, &writer)?;
                Ok(json_response(code, &obj))
            }
            _ => Err(ApiError::unknown_path()),
        };
    }
    let (code, value) = match verb {
        "get" => (200, api.get(&target)?),
        "list" if how == Rendering::Plain => {
            let body = api.list_json(&target, &params)?;
            let mut r = Response::new(full(body));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return Ok(r);
        }
        "list" => (200, api.list(&target, &params)?),
        "watch" => return watch_response(state, target, &params, &how),
        "create" => {
            if target.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let body = body_value(&read_body(req.into_body()).await?, &content_type)?;
            api.create(&target, body, &params, &writer)?
        }
        "update" => {
            let body = body_value(&read_body(req.into_body()).await?, &content_type)?;
            api.update(&target, body, &params, &writer)?
        }
        "patch" => {
            let body = read_body(req.into_body()).await?;
            api.patch(&target, &body, &content_type, &params, &writer)?
        }
        "delete" => {
            let body = read_body(req.into_body()).await?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                body_value(&body, &content_type)?
            };
            api.delete(&target, &options, &params)?
        }
        "deletecollection" => {
            let body = read_body(req.into_body()).await?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                body_value(&body, &content_type)?
            };
            api.delete_collection(&target, &options, &params)?
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let value = if matches!(verb, "get" | "list") {
        render(&target, value, &how, &params)
    } else {
        value
    };
    Ok(json_response(code, &value))
}

/// The field manager of a non-apply write: `fieldManager`, else the
/// User-Agent's program name, as kube-apiserver derives it.
fn writer_for(params: &Params, user_agent: &str) -> Writer {
    let manager = params
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .map(String::from)
        .unwrap_or_else(|| {
            let prefix = user_agent.split('/').next().unwrap_or_default();
            if prefix.is_empty() {
                "unknown".into()
            } else {
                prefix.chars().take(128).collect()
            }
        });
    Writer { manager }
}

#[derive(PartialEq)]
pub(super) enum Rendering {
    Plain,
    Table,
    Metadata,
}

pub(super) fn rendering(accept: &str) -> Rendering {
    let first_supported = accept.split(',').find(|part| {
        let p = part.replace(' ', "");
        p.starts_with("application/json") || p.starts_with("*/*") || p.is_empty()
    });
    match first_supported {
        Some(p) if p.contains("as=Table") => Rendering::Table,
        Some(p) if p.contains("as=PartialObjectMetadata") => Rendering::Metadata,
        _ => Rendering::Plain,
    }
}

fn metadata_only(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

fn render(target: &Target, value: Value, how: &Rendering, params: &Params) -> Value {
    let is_list = value.get("items").is_some() && target.name.is_none();
    match how {
        Rendering::Plain => value,
        Rendering::Metadata if is_list => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": value["metadata"],
            "items": value["items"].as_array().map(|a| a.iter().map(metadata_only).collect::<Vec<_>>()).unwrap_or_default(),
        }),
        Rendering::Metadata => metadata_only(&value),
        Rendering::Table => {
            let objects: Vec<Value> = if is_list {
                value["items"].as_array().cloned().unwrap_or_default()
            } else {
                vec![value.clone()]
            };
            let include = params.get("includeObject").unwrap_or("Metadata");
            let list_meta = if is_list {
                value["metadata"].clone()
            } else {
                json!({"resourceVersion": value["metadata"]["resourceVersion"]})
            };
            match &target.rt.crd_version {
                Some(version) => {
                    table::build_table(&table::crd_columns(version), &objects, list_meta, include)
                }
                None => table::build_builtin_table(
                    &target.rt.group,
                    &target.rt.kind,
                    &objects,
                    list_meta,
                    include,
                    std::time::SystemTime::now(),
                ),
            }
        }
    }
}

fn watch_response(
    state: &AppState,
    target: Target,
    params: &Params,
    how: &Rendering,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let mut fields = FieldSelector::parse(params.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    if let Some(name) = &target.name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(ApiError::bad_request)?;
    }
    let resource_version = match params.get("resourceVersion").unwrap_or_default() {
        "" | "0" => None,
        rv => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let send_initial_events = params.flag("sendInitialEvents");
    let bookmarks = params.flag("allowWatchBookmarks");
    if send_initial_events && !bookmarks {
        return Err(ApiError::invalid(
            &target.rt,
            "",
            vec![(
                "FieldValueForbidden".into(),
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true".into(),
                "allowWatchBookmarks".into(),
            )],
        ));
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        // Kubernetes picks a random 30-60 min when the client sets none.
        .unwrap_or(Duration::from_secs(1800));
    let rx = watch::start(
        &state.api.store,
        WatchRequest {
            namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
            rt: target.rt,
            labels,
            fields,
            resource_version,
            send_initial_events,
            bookmarks,
            timeout,
            metadata_only: *how == Rendering::Metadata,
        },
    );
    let stream = StreamExt::map(tokio_stream_from(rx), |b| {
        Ok::<_, Infallible>(Frame::data(b))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        hyper::header::TRANSFER_ENCODING,
        hyper::header::HeaderValue::from_static("chunked"),
    );
    Ok(r)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The `scale` subresource (autoscaling/v1 Scale) of workloads.
fn scale(
    api: &Api,
    target: &Target,
    verb: &str,
    body: &[u8],
    content_type: &str,
    params: &Params,
    writer: &Writer,
) -> Result<Value, ApiError> {
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let as_scale = |obj: &Value| {
        let selector = obj["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        })
    };
    let current = api.get(&main)?;
    if verb == "get" {
        return Ok(as_scale(&current));
    }
    let mut desired = as_scale(&current);
    if verb == "update" {
        desired = body_value(body, content_type)?;
    } else {
        let doc = api::parse_body(body, content_type.contains("yaml"))?;
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => crate::patch::json_patch(&mut desired, &doc)
                .map_err(|e| ApiError::new(e.http_code(), e.reason(), e.to_string()))?,
            _ => crate::patch::merge_patch(&mut desired, &doc),
        }
    }
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("Scale spec.replicas must be an integer"))?;
    let patch = json!({"spec": {"replicas": replicas}});
    let (_, updated) = api.patch(
        &main,
        patch.to_string().as_bytes(),
        "application/merge-patch+json",
        params,
        writer,
    )?;
    Ok(as_scale(&updated))
}
