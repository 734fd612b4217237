//! The job controller: pods per `parallelism` until `completions` succeed
//! (`Complete`), or more than `backoffLimit` fail (`Failed`,
//! `BackoffLimitExceeded`); retries start at once, without back-off.

use serde_json::{Map, Value, json};

use super::events::{Source, controller};
use super::util::{self, items};
use super::workloads::{create_pod, note, owned_pods, pod_from_template};
use super::{CONTROLLER_MANAGER, Ctx};

const JOBS: Source<'static> = controller("job-controller");

/// Where a Job stands, from its pods.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct JobCounts {
    pub active: usize,
    pub ready: usize,
    pub succeeded: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum JobStep {
    /// Start this many more pods.
    Run(usize),
    /// Enough pods succeeded.
    Complete,
    /// More failures than `backoffLimit` allows.
    Fail,
    /// Suspended: no pods run.
    Suspend,
}

pub(super) fn plan_job(spec: &Value, c: JobCounts) -> JobStep {
    let completions = spec["completions"].as_u64().map(|n| n as usize);
    let parallelism = spec["parallelism"].as_u64().unwrap_or(1) as usize;
    let backoff_limit = spec["backoffLimit"].as_u64().unwrap_or(6) as usize;
    if c.failed > backoff_limit {
        return JobStep::Fail;
    }
    let done = match completions {
        Some(n) => c.succeeded >= n,
        // A work queue: done once a pod succeeded and none still runs.
        None => c.succeeded > 0 && c.active == 0,
    };
    if done {
        return JobStep::Complete;
    }
    if spec["suspend"].as_bool() == Some(true) {
        return JobStep::Suspend;
    }
    let want = match completions {
        Some(n) => parallelism.min(n - c.succeeded),
        None if c.succeeded > 0 => 0,
        None => parallelism,
    };
    JobStep::Run(want.saturating_sub(c.active))
}

/// Job status as the job controller writes it after `step`.
pub(super) fn job_status(job: &Value, c: JobCounts, step: JobStep, now: &str) -> Value {
    let prev = &job["status"]["conditions"];
    let times = ["lastProbeTime"];
    let mut conditions: Vec<Value> = Vec::new();
    let both = |first: &str, second: &str, reason: &str, message: &str| {
        [first, second]
            .map(|t| util::condition(prev, t, "True", Some(reason), Some(message), now, &times))
    };
    match step {
        JobStep::Complete => conditions.extend(both(
            "SuccessCriteriaMet",
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        )),
        JobStep::Fail => conditions.extend(both(
            "FailureTarget",
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )),
        JobStep::Suspend => conditions.push(util::condition(
            prev,
            "Suspended",
            "True",
            Some("JobSuspended"),
            Some("Job suspended"),
            now,
            &times,
        )),
        JobStep::Run(_) => {
            if items(job, "/status/conditions")
                .iter()
                .any(|c| c["type"] == "Suspended")
            {
                conditions.push(util::condition(
                    prev,
                    "Suspended",
                    "False",
                    Some("JobResumed"),
                    Some("Job resumed"),
                    now,
                    &times,
                ));
            }
        }
    }
    let mut status = Map::new();
    let start = &job["status"]["startTime"];
    if start.is_string() {
        status.insert("startTime".into(), start.clone());
    } else if step != JobStep::Suspend {
        status.insert("startTime".into(), json!(now));
    }
    for (field, n) in [
        ("active", c.active),
        ("succeeded", c.succeeded),
        ("failed", c.failed),
    ] {
        if n > 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert("ready".into(), json!(c.ready));
    status.insert("terminating".into(), json!(0));
    status.insert("uncountedTerminatedPods".into(), json!({}));
    if step == JobStep::Complete {
        let done = &job["status"]["completionTime"];
        status.insert(
            "completionTime".into(),
            if done.is_string() {
                done.clone()
            } else {
                json!(now)
            },
        );
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(status)
}

pub(super) fn sync_job(ctx: &Ctx, ns: &str, name: &str) {
    let Some(job) = ctx.api.store.get("batch/jobs", ns, name) else {
        return;
    };
    if util::deleting(&job)
        || util::condition_true(&job, "Complete")
        || util::condition_true(&job, "Failed")
    {
        return;
    }
    let (active, finished) = owned_pods(ctx, &job);
    let mut counts = JobCounts {
        active: active.len(),
        ready: active.iter().filter(|p| util::pod_ready(p)).count(),
        succeeded: finished
            .iter()
            .filter(|p| util::phase(p) == "Succeeded")
            .count(),
        failed: finished
            .iter()
            .filter(|p| util::phase(p) == "Failed")
            .count(),
    };
    let step = plan_job(&job["spec"], counts);
    match step {
        JobStep::Run(n) => {
            for _ in 0..n {
                let pod = pod_from_template(&job, &[], None, Some(&format!("{name}-")));
                if let Some(pod_name) = create_pod(ctx, &job, pod) {
                    counts.active += 1;
                    ctx.recorder.record(
                        ctx,
                        JOBS,
                        note(
                            &job,
                            false,
                            "SuccessfulCreate",
                            format!("Created pod: {pod_name}"),
                        ),
                    );
                }
            }
        }
        JobStep::Complete | JobStep::Fail | JobStep::Suspend => {
            for p in &active {
                if ctx.delete("", "pods", ns, util::name_of(p)) {
                    ctx.recorder.record(
                        ctx,
                        JOBS,
                        note(
                            &job,
                            false,
                            "SuccessfulDelete",
                            format!("Deleted pod: {}", util::name_of(p)),
                        ),
                    );
                }
            }
            counts.active = 0;
            counts.ready = 0;
        }
    }
    let status = job_status(&job, counts, step, &crate::meta::now());
    if let Err(e) = ctx.put_status("batch", "jobs", &job, status, CONTROLLER_MANAGER) {
        tracing::debug!(job = name, error = %e.message, "job status write failed");
        return;
    }
    // Finishing is recorded once: a finished Job is not synced again.
    match step {
        JobStep::Complete => ctx.recorder.record(
            ctx,
            JOBS,
            note(&job, false, "Completed", "Job completed".into()),
        ),
        JobStep::Fail => ctx.recorder.record(
            ctx,
            JOBS,
            note(
                &job,
                true,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_complete_and_fail() {
        let spec = json!({"completions": 2, "parallelism": 1, "backoffLimit": 1});
        let c = |active, succeeded, failed| JobCounts {
            active,
            ready: 0,
            succeeded,
            failed,
        };
        assert_eq!(plan_job(&spec, c(0, 0, 0)), JobStep::Run(1));
        assert_eq!(plan_job(&spec, c(1, 0, 0)), JobStep::Run(0));
        assert_eq!(plan_job(&spec, c(0, 1, 1)), JobStep::Run(1));
        assert_eq!(plan_job(&spec, c(0, 2, 0)), JobStep::Complete);
        assert_eq!(plan_job(&spec, c(0, 0, 2)), JobStep::Fail);
        let queue = json!({"parallelism": 3});
        assert_eq!(plan_job(&queue, c(0, 0, 0)), JobStep::Run(3));
        assert_eq!(plan_job(&queue, c(2, 1, 0)), JobStep::Run(0));
        assert_eq!(plan_job(&queue, c(0, 1, 0)), JobStep::Complete);
        let job = json!({"metadata": {"name": "j"}, "status": {"startTime": "t0"}});
        let done = job_status(&job, c(0, 2, 0), JobStep::Complete, "t1");
        assert_eq!(done["succeeded"], 2);
        assert_eq!(done["completionTime"], "t1");
        assert_eq!(done["startTime"], "t0");
        let types: Vec<_> = items(&done, "/conditions")
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, [json!("SuccessCriteriaMet"), json!("Complete")]);
        let failed = job_status(&job, c(0, 0, 2), JobStep::Fail, "t1");
        assert_eq!(failed["failed"], 2);
        assert_eq!(failed["conditions"][1]["type"], "Failed");
        assert_eq!(failed["conditions"][1]["reason"], "BackoffLimitExceeded");
        assert!(failed.get("completionTime").is_none());
    }
}
