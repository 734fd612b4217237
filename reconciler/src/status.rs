//! The `Sync` object: where users see what the reconciler follows and why
//! it is not Ready. Conditions are computed purely ([`record_conditions`],
//! [`set_condition`]); the
//! [`StatusWriter`] writes them by server-side apply to the status
//! subresource, and only when something changed, so a quiet reconciler
//! makes no writes and `lastTransitionTime` moves only on a transition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kubeflex_operator::api::{
    GITOPS_API_VERSION, Sync, SyncConditionType, SyncFileError, SyncSpec, SyncStatus,
};

use crate::error::Error;
use crate::names::FIELD_MANAGER;
use crate::reconcile::Outcome;
use crate::validate::{Problem, Severity};

/// Sets condition `type_`; its `lastTransitionTime` changes only when its
/// status does. Returns whether anything changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &Time,
) -> bool {
    let status = if status { "True" } else { "False" };
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) if c.status == status && c.reason == reason && c.message == message => false,
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.clone();
            }
            c.status = status.to_owned();
            c.reason = reason.to_owned();
            c.message = message.to_owned();
            true
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now.clone(),
                observed_generation: None,
            });
            true
        }
    }
}

/// `Ready` and `Stalled` as a pass concluded them.
#[derive(Clone, Debug)]
pub struct Verdict {
    ready: bool,
    stalled: bool,
    reason: &'static str,
    message: String,
}

impl Verdict {
    pub fn of(outcome: &Outcome) -> Self {
        let (ready, stalled, reason, message) = if outcome.apply_failed > 0 {
            (false, false, "ApplyFailed", outcome.errors.join("; "))
        } else if let Some(blocked) = &outcome.prune_blocked {
            (false, true, "PruneBlocked", blocked.clone())
        } else if outcome.validation_errors > 0 {
            let message = format!(
                "{} errors in files; see status.errors",
                outcome.validation_errors
            );
            (false, true, "ValidationFailed", message)
        } else {
            let message = format!("applied revision {}", outcome.revision);
            (true, false, "Applied", message)
        };
        Self {
            ready,
            stalled,
            reason,
            message,
        }
    }
}

/// Sets `Fetching`, `Ready` and `Stalled` from a pass's result: a failed
/// read (the error), or what the last pass that did work concluded (`None`
/// before any has).
pub fn record_conditions(
    conditions: &mut Vec<Condition>,
    result: Result<Option<&Verdict>, &Error>,
    now: &Time,
) {
    match result {
        Ok(verdict) => {
            set_condition(
                conditions,
                SyncConditionType::FETCHING,
                false,
                "Fetched",
                "",
                now,
            );
            if let Some(v) = verdict {
                set_condition(
                    conditions,
                    SyncConditionType::READY,
                    v.ready,
                    v.reason,
                    &v.message,
                    now,
                );
                let (reason, message) = if v.stalled {
                    (v.reason, v.message.as_str())
                } else {
                    ("Progressing", "")
                };
                set_condition(
                    conditions,
                    SyncConditionType::STALLED,
                    v.stalled,
                    reason,
                    message,
                    now,
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            // Only a failed fetch is a fetch failure: an API server that
            // cannot be reached says so under its own reason.
            let reason = match e {
                Error::Source(s) if s.is_timeout() => "FetchTimeout",
                Error::Source(crate::source::SourceError::TooMuch { .. }) => "SourceTooLarge",
                Error::Source(_) => "FetchFailed",
                Error::Object { .. } | Error::Api { .. } => "ApiFailed",
                _ => "PassFailed",
            };
            if matches!(e, Error::Source(_)) {
                set_condition(
                    conditions,
                    SyncConditionType::FETCHING,
                    true,
                    reason,
                    &message,
                    now,
                );
            }
            set_condition(
                conditions,
                SyncConditionType::READY,
                false,
                reason,
                &message,
                now,
            );
            let stalled = !e.is_transient();
            set_condition(
                conditions,
                SyncConditionType::STALLED,
                stalled,
                if stalled { e.category() } else { "Retrying" },
                if stalled { &message } else { "" },
                now,
            );
        }
    }
}

/// The status form of validation problems (errors only; warnings are
/// logged). Capped so the object stays far below etcd's size limit.
pub fn file_errors<'a>(problems: impl IntoIterator<Item = &'a Problem>) -> Vec<SyncFileError> {
    const MAX_ERRORS: usize = 100;
    problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .take(MAX_ERRORS)
        .map(|p| SyncFileError {
            path: p.path.clone(),
            line: i64::from(p.pos.line),
            column: i64::from(p.pos.column),
            message: p.to_string(),
        })
        .collect()
}

/// The current time as the API wants it (whole seconds, like the server).
pub fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Writes one `Sync` object.
pub struct StatusWriter {
    api: Api<Sync>,
    name: String,
    last: Option<SyncStatus>,
}

impl StatusWriter {
    pub fn new(client: kube::Client, name: &str) -> Self {
        Self {
            api: Api::all(client),
            name: name.to_owned(),
            last: None,
        }
    }

    /// Creates or updates the object's spec (what the reconciler was started
    /// with) and returns the spec it held before (`None` for a new object)
    /// and the status it holds, to continue from.
    pub async fn ensure(
        &mut self,
        spec: SyncSpec,
    ) -> Result<(Option<SyncSpec>, SyncStatus), Error> {
        let old = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::api("reading the Sync object", e))?
            .map(|o| o.spec);
        let body = serde_json::json!({
            "apiVersion": GITOPS_API_VERSION,
            "kind": "Sync",
            "metadata": { "name": self.name },
            "spec": spec,
        });
        let obj = self
            .api
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| Error::api("applying the Sync object", e))?;
        let status = obj.status.unwrap_or_default();
        self.last = Some(status.clone());
        Ok((old, status))
    }

    /// Writes `status` unless it is what was last written. Returns whether
    /// it wrote.
    pub async fn write(&mut self, status: &SyncStatus) -> Result<bool, Error> {
        if self.last.as_ref() == Some(status) {
            return Ok(false);
        }
        let body = serde_json::json!({
            "apiVersion": GITOPS_API_VERSION,
            "kind": "Sync",
            "metadata": { "name": self.name },
            "status": status,
        });
        self.api
            .patch_status(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| Error::api("writing the Sync status", e))?;
        self.last = Some(status.clone());
        Ok(true)
    }

    /// A reference to the object, for Events.
    pub async fn reference(&self) -> Result<k8s_openapi::api::core::v1::ObjectReference, Error> {
        use kube::Resource;
        let obj = self
            .api
            .get(&self.name)
            .await
            .map_err(|e| Error::api("reading the Sync object", e))?;
        Ok(obj.object_ref(&()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap())
    }

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let mut conditions = Vec::new();
        assert!(set_condition(
            &mut conditions,
            "Ready",
            true,
            "Applied",
            "",
            &at(1)
        ));
        assert!(!set_condition(
            &mut conditions,
            "Ready",
            true,
            "Applied",
            "",
            &at(2)
        ));
        assert_eq!(conditions[0].last_transition_time, at(1));
        // Same status, new message: written, but no transition.
        assert!(set_condition(
            &mut conditions,
            "Ready",
            true,
            "Applied",
            "rev b",
            &at(3)
        ));
        assert_eq!(conditions[0].last_transition_time, at(1));
        assert!(set_condition(
            &mut conditions,
            "Ready",
            false,
            "FetchFailed",
            "x",
            &at(4)
        ));
        assert_eq!(conditions[0].last_transition_time, at(4));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn file_errors_keep_position_and_message() {
        let problem = Problem {
            severity: Severity::Error,
            kind: crate::validate::ProblemKind::Syntax,
            path: "cps/a.yaml".into(),
            pos: crate::document::Pos { line: 3, column: 7 },
            object: None,
            field: None,
            message: "bad".into(),
        };
        let mut warning = problem.clone();
        warning.severity = Severity::Warning;
        let errors = file_errors([&problem, &warning]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "cps/a.yaml:3:7: bad");
        assert_eq!((errors[0].line, errors[0].column), (3, 7));
    }

    fn condition<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_failed_fetch_is_not_ready_and_a_transient_one_not_stalled() {
        let mut conditions = Vec::new();
        let error = Error::Source(crate::source::SourceError::Git {
            context: "fetching from git://h/r".into(),
            cause: "connection refused".into(),
        });
        record_conditions(&mut conditions, Err(&error), &at(1));
        assert_eq!(condition(&conditions, "Fetching").status, "True");
        let ready = condition(&conditions, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "FetchFailed")
        );
        assert!(ready.message.contains("connection refused"));
        assert_eq!(condition(&conditions, "Stalled").reason, "Retrying");

        // The fault clears: the last verdict stands again.
        let verdict = Verdict {
            ready: true,
            stalled: false,
            reason: "Applied",
            message: "applied revision abc".into(),
        };
        record_conditions(&mut conditions, Ok(Some(&verdict)), &at(2));
        assert_eq!(condition(&conditions, "Fetching").status, "False");
        assert_eq!(condition(&conditions, "Ready").status, "True");
        assert_eq!(condition(&conditions, "Stalled").status, "False");
    }

    #[test]
    fn an_api_error_is_not_a_fetch_failure_and_a_timeout_says_so() {
        let mut conditions = Vec::new();
        let error = Error::api(
            "listing PostCreateHooks",
            kube::Error::Api(Box::new(
                kube::core::Status::failure("unavailable", "ServiceUnavailable").with_code(503),
            )),
        );
        record_conditions(&mut conditions, Err(&error), &at(1));
        assert_eq!(condition(&conditions, "Ready").reason, "ApiFailed");
        assert!(conditions.iter().all(|c| c.type_ != "Fetching"));
        let timeout = Error::Source(crate::source::SourceError::Timeout {
            url: "git://h/r".into(),
            after: std::time::Duration::from_secs(60),
        });
        record_conditions(&mut conditions, Err(&timeout), &at(2));
        let ready = condition(&conditions, "Ready");
        assert_eq!(ready.reason, "FetchTimeout");
        assert!(
            ready.message.contains("timed out after 60s"),
            "{}",
            ready.message
        );
    }
}
