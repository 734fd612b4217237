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

    /// Objects of `kind` that another source applied (labelled with a
    /// source other than `source`), by name, with that source. The server
    /// filters: normally nothing comes back.
    pub async fn foreign(
        &self,
        kind: Kind,
        source: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        let selector = format!("{LABEL_SOURCE},{LABEL_SOURCE}!={source}");
        let list = self
            .api(kind)
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::api("listing objects of other sources", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|m| {
                let owner = m.metadata.labels?.remove(LABEL_SOURCE)?;
                Some((m.metadata.name?, owner))
            })
            .collect())
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
