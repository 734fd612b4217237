//! The read verbs: get, and list with label and field selectors and
//! `limit`/`continue` paging. A continue token carries the position and the
//! list's resourceVersion, so a later page is served only while the store
//! still holds that history (410 Expired otherwise, as Kubernetes answers).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Api, ListPage, Params, Target, storage_key_of, with_type};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

impl Api {
    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let name = t.name.as_deref().unwrap_or_default();
        self.store
            .get(&storage_key_of(&t.rt), &t.namespace, name)
            .map(|o| with_type(&t.rt, &o))
            .ok_or_else(|| ApiError::not_found(&t.rt, name))
    }

    /// A list, honouring selectors and `limit`/`continue`.
    pub fn list(&self, t: &Target, p: &Params) -> Result<Value, ApiError> {
        let page = self.list_page(t, p)?;
        let items: Vec<Value> = page.items.iter().map(|o| with_type(&t.rt, o)).collect();
        Ok(json!({
            "kind": t.rt.list_kind(),
            "apiVersion": t.rt.api_version(),
            "metadata": page.metadata,
            "items": items,
        }))
    }

    /// The list as JSON bytes, written straight from the stored objects
    /// (no copy of each object, which matters for lists of thousands).
    pub fn list_json(&self, t: &Target, p: &Params) -> Result<Vec<u8>, ApiError> {
        let page = self.list_page(t, p)?;
        let mut out = Vec::with_capacity(page.items.len() * 1024 + 256);
        out.extend_from_slice(
            format!(
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(t.rt.list_kind()),
                json!(t.rt.api_version()),
                page.metadata
            )
            .as_bytes(),
        );
        let av = t.rt.api_version();
        for (i, obj) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let typed = obj["apiVersion"].as_str() == Some(av.as_str())
                && obj["kind"].as_str() == Some(t.rt.kind.as_str());
            let written = if typed {
                serde_json::to_writer(&mut out, &**obj)
            } else {
                serde_json::to_writer(&mut out, &with_type(&t.rt, obj))
            };
            written.map_err(|e| ApiError::internal(e.to_string()))?;
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The objects of one list page and the list's metadata.
    pub fn list_page(&self, t: &Target, p: &Params) -> Result<ListPage, ApiError> {
        let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(p.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let limit = p
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let (start, token_rv) = match p.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (key, rv) = decode_continue(token)?;
                if rv < self.store.history_floor() {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (Some(key), Some(rv))
            }
            None => (None, None),
        };
        let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
        let (all, current_rv) = self.store.list(&storage_key_of(&t.rt), ns, start.as_ref());
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        for obj in all {
            if !(labels.matches(&obj) && fields.matches(&obj)) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            next = Some((
                obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
            items.push(obj);
        }
        let rv = token_rv.unwrap_or(current_rv);
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if remaining > 0
            && let Some(key) = next
        {
            metadata["continue"] = json!(encode_continue(&key, rv));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(ListPage { items, metadata })
    }
}

fn encode_continue(key: &(String, String), rv: u64) -> String {
    URL_SAFE_NO_PAD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": key.0, "n": key.1}).to_string())
}

fn decode_continue(token: &str) -> Result<((String, String), u64), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    Ok((
        (
            v["ns"].as_str().unwrap_or_default().to_string(),
            v["n"].as_str().unwrap_or_default().to_string(),
        ),
        rv,
    ))
}
