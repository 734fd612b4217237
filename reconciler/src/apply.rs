//! Writes to managed objects: server-side apply (manager
//! `kubeflex-reconciler`, forced, so Git wins conflicts), removal of fields
//! other managers added to `spec` (see [`crate::drift`]), and pruning.
//!
//! Contract: [`Cluster::delete`] deletes only the object the inventory saw
//! (a UID precondition), so an object recreated by someone else in between
//! is never removed.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kubeflex_operator::api::{ControlPlane, PostCreateHook};

use crate::drift::{SpecDiff, removal_patch};
use crate::error::Error;
use crate::inventory::LiveObject;
use crate::names::{FIELD_MANAGER, LABEL_SOURCE};
use crate::plan::DesiredObject;
use crate::validate::{Kind, ObjectKey};

/// Up to this many objects to create are checked one GET each.
const ONE_BY_ONE: usize = 32;
/// Page size when listing what other sources manage.
const PAGE: u32 = 500;

/// What one write did.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub live: LiveObject,
    /// API writes made (0, 1 or 2).
    pub writes: usize,
}

/// The two kinds' APIs.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    control_planes: Api<DynamicObject>,
    hooks: Api<DynamicObject>,
}

impl Cluster {
    pub fn new(client: kube::Client) -> Self {
        let cp = ApiResource::erase::<ControlPlane>(&());
        let hook = ApiResource::erase::<PostCreateHook>(&());
        Self {
            control_planes: Api::all_with(client.clone(), &cp),
            hooks: Api::all_with(client.clone(), &hook),
            client,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn api(&self, kind: Kind) -> &Api<DynamicObject> {
        match kind {
            Kind::ControlPlane => &self.control_planes,
            Kind::PostCreateHook => &self.hooks,
        }
    }

    /// Puts an object in the state Git says. `diff` is how the live object
    /// differs (`None`: it does not exist, or is not known): fields added by
    /// other managers are removed first, then the object is applied unless
    /// only such fields differed.
    pub async fn apply(
        &self,
        desired: &DesiredObject,
        diff: Option<&SpecDiff>,
        commit: &str,
    ) -> Result<Written, Error> {
        let key = &desired.key;
        let api = self.api(key.kind);
        let mut writes = 0;
        let mut last = None;
        if let Some(diff) = diff.filter(|d| !d.foreign.is_empty()) {
            let paths: Vec<_> = diff.foreign.iter().map(|(p, _)| p.clone()).collect();
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            let obj = api
                .patch(&key.name, &params, &Patch::Merge(removal_patch(&paths)))
                .await
                .map_err(|e| Error::object("removing foreign fields of", key, e))?;
            writes += 1;
            last = Some(obj);
        }
        if diff.is_none_or(SpecDiff::needs_apply) {
            let obj = api
                .patch(
                    &key.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(desired.body_at(commit)),
                )
                .await
                .map_err(|e| Error::object("applying", key, e))?;
            writes += 1;
            last = Some(obj);
        }
        let live = match last {
            Some(obj) => LiveObject::from_dynamic(key.kind, &obj),
            None => None,
        };
        let live = live.ok_or_else(|| Error::Config(format!("{key}: the API returned no name")))?;
        Ok(Written { live, writes })
    }

    /// Deletes a pruned object (background propagation). Already gone is fine.
    pub async fn delete(&self, live: &LiveObject) -> Result<(), Error> {
        let params = DeleteParams {
            preconditions: live.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self
            .api(live.key.kind)
            .delete(&live.key.name, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::object("pruning", &live.key, e)),
        }
    }

    /// Names of every PostCreateHook in the cluster (a metadata-only list).
    pub async fn hook_names(&self) -> Result<BTreeSet<String>, Error> {
        let list = self
            .hooks
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| Error::api("listing PostCreateHooks", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .collect())
    }

    /// Which of `names` (objects of `kind`) another source applied: those
    /// labelled with a source other than `source`, with that source. A few
    /// names are read one by one; many (an initial sync) through a
    /// server-filtered list read page by page, so memory stays bounded
    /// however many objects other sources manage.
    pub async fn owned_by_others(
        &self,
        kind: Kind,
        source: &str,
        names: &BTreeSet<&str>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let foreign = |labels: Option<BTreeMap<String, String>>| {
            labels
                .and_then(|mut l| l.remove(LABEL_SOURCE))
                .filter(|owner| owner != source)
        };
        let api = self.api(kind);
        let mut out = BTreeMap::new();
        if names.len() <= ONE_BY_ONE {
            for name in names {
                let meta = api
                    .get_metadata_opt(name)
                    .await
                    .map_err(|e| Error::api("reading an object to create", e))?;
                if let Some(owner) = meta.and_then(|m| foreign(m.metadata.labels)) {
                    out.insert((*name).to_owned(), owner);
                }
            }
            return Ok(out);
        }
        let selector = format!("{LABEL_SOURCE},{LABEL_SOURCE}!={source}");
        let mut params = ListParams::default().labels(&selector).limit(PAGE);
        loop {
            let page = api
                .list_metadata(&params)
                .await
                .map_err(|e| Error::api("listing objects of other sources", e))?;
            for m in page.items {
                if let Some(name) = m.metadata.name.filter(|n| names.contains(n.as_str()))
                    && let Some(owner) = foreign(m.metadata.labels)
                {
                    out.insert(name, owner);
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(out),
            }
        }
    }

    /// The live object, if it exists.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<LiveObject>, Error> {
        let obj = self
            .api(key.kind)
            .get_opt(&key.name)
            .await
            .map_err(|e| Error::object("reading", key, e))?;
        Ok(obj.and_then(|o| LiveObject::from_dynamic(key.kind, &o)))
    }
}
