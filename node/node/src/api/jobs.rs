//! `GET /api/v1/jobs`, `/jobs/{id}`, `/jobs/{id}/events`, `/jobs/{id}/results`,
//! `/jobs/{id}/logs`.

use axum::Json;
use axum::extract::State;

use super::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shoal_api::{EventRecord, JobDetail, JobId, JobList, JobView, Logs, WatchCheck};
use shoal_chain::{Address, JobState};

use super::{ApiError, ApiResult, CAR_MIME, Shared};
use crate::compute::inputs::load_spec;
use crate::node::Node;

#[derive(Debug, Deserialize)]
pub(super) struct JobsQuery {
    state: Option<String>,
    creator: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(super) async fn list_jobs(
    State(inner): State<Shared>,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<JobList>> {
    let state = q
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(
                e.to_string(),
                "filter with ?state=Posted (or Running, Verified, …)",
            )
        })?;
    let creator = q
        .creator
        .as_deref()
        .map(str::parse::<Address>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("creator: {e}"), "pass a 0x… address"))?;
    let mut jobs: Vec<JobView> = inner
        .db
        .jobs()
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|j| state.is_none_or(|s| j.state == s) && creator.is_none_or(|c| j.creator == c))
        .collect();
    jobs.reverse();
    let total = jobs.len();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).min(500);
    let jobs = jobs.into_iter().skip(offset).take(limit).collect();
    Ok(Json(JobList {
        total,
        offset,
        jobs,
    }))
}

pub(super) fn parse_id(id: &str) -> ApiResult<JobId> {
    id.parse::<JobId>()
        .map_err(|e| ApiError::bad_request(e.to_string(), "job ids are decimal numbers from 1"))
}

fn load_job(inner: &Node, id: JobId) -> ApiResult<JobView> {
    inner.db.job(id).map_err(ApiError::internal)?.ok_or_else(|| {
        ApiError::not_found(
            format!("job {id} is not known to this node"),
            "the node may still be catching up with the chain; retry in a moment, or check the job id",
        )
    })
}

pub(super) async fn get_job(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobDetail>> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    let spec = match shoal_store::parse_cid(&job.params.spec_cid) {
        Ok(cid) if inner.content.has_dag(&cid) => load_spec(&inner.content, &job)
            .await
            .ok()
            .and_then(|s| serde_json::to_value(s).ok()),
        _ => None,
    };
    let decision = inner.db.decision(id).map_err(ApiError::internal)?;
    let execution = inner
        .db
        .execution(id)
        .map_err(ApiError::internal)?
        .map(|e| e.view(job.state.is_final()));
    // A watcher's own result stays private until the job is final, like an execution's.
    let watch = inner
        .db
        .watch(id)
        .map_err(ApiError::internal)?
        .map(|w| WatchCheck {
            result_hash: w.result_hash.filter(|_| job.state.is_final()),
            ..w
        });
    Ok(Json(JobDetail {
        job,
        spec,
        decision,
        execution,
        watch,
        node: inner.chain.operator,
    }))
}

pub(super) async fn job_events(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<EventRecord>>> {
    let id = parse_id(&id)?;
    load_job(&inner, id)?;
    Ok(Json(inner.db.events(id).map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize)]
pub(super) struct ResultsQuery {
    /// A file inside the results folder (`stdout`, `outputs/report.txt`) instead of the CAR.
    file: Option<String>,
}

pub(super) async fn job_results(
    State(inner): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    let cid = match (job.state, &job.result_cid) {
        (JobState::Verified, Some(c)) => shoal_store::parse_cid(c).map_err(ApiError::internal)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("job {id} is {} and has no verified results", job.state),
                "results are published only once the job is Verified; poll GET /api/v1/jobs/{id}",
            ));
        }
    };
    inner.content.ensure(&cid).await.map_err(|e| {
        ApiError::not_found(
            e.to_string(),
            "the operators publish results right after verification; retry shortly",
        )
    })?;
    let content = inner.content.clone();
    let (bytes, mime) =
        tokio::task::spawn_blocking(move || -> crate::Result<(Vec<u8>, &'static str)> {
            match q.file {
                Some(path) => {
                    let target = shoal_store::export::resolve(&content.store, &cid, &path)?;
                    Ok((content.read_file(&target)?, "application/octet-stream"))
                }
                None => Ok((content.car(&cid)?, CAR_MIME)),
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::not_found(
                e.to_string(),
                "the results folder has stdout, stderr, exitCode and one folder per output",
            )
        })?;
    let mut resp = ([(header::CONTENT_TYPE, mime)], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&cid.to_string()) {
        resp.headers_mut().insert("x-shoal-result-cid", v);
    }
    Ok(resp)
}

pub(super) async fn job_logs(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Logs>> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    if !job.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} is {}", job.state),
            "logs stay private until the job is verified or has ended",
        ));
    }
    let exec = inner.db.execution(id).map_err(ApiError::internal)?;
    let Some(dir) = exec.as_ref().and_then(|e| e.results_dir.clone()) else {
        return Err(ApiError::not_found(
            format!("this node did not run job {id}"),
            "ask a node that ran it (see the job's deals)",
        ));
    };
    let read = |name: &str| {
        std::fs::read(std::path::Path::new(&dir).join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(Json(Logs {
        stdout: read("stdout"),
        stderr: read("stderr"),
        exit_code: exec.and_then(|e| e.exit_code),
    }))
}

#[cfg(test)]
mod tests {
    use shoal_api::{ApiErrorBody, EventRecord, JobDetail, JobList};
    use shoal_chain::JobState;

    use crate::testkit::{Kit, SOLO_DEAL};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_read_back_as_the_api_model() {
        let kit = Kit::start(|c| c.bid.enabled = false).await;
        let id = kit.post_hello(SOLO_DEAL).await;
        kit.wait(id, "the posted job", |j, _| j.state == JobState::Posted)
            .await;
        let api = kit.node.api_url();
        let http = reqwest::Client::new();
        let get = |path: String| http.get(format!("{api}{path}")).send();
        let detail: JobDetail = get(format!("/api/v1/jobs/{id}"))
            .await
            .expect("GET job")
            .json()
            .await
            .expect("a JobDetail");
        assert_eq!((detail.id, detail.state), (id, JobState::Posted));
        assert!(detail.spec.is_some() && detail.decision.is_none());
        let list: JobList = get("/api/v1/jobs?state=posted".into())
            .await
            .expect("GET jobs")
            .json()
            .await
            .expect("a JobList");
        assert_eq!(list.total, 1);
        let events: Vec<EventRecord> = get(format!("/api/v1/jobs/{id}/events"))
            .await
            .expect("GET events")
            .json()
            .await
            .expect("events");
        assert_eq!(events.len(), 1);
        let bad = get("/api/v1/jobs/0x1".into()).await.expect("GET");
        assert_eq!(bad.status(), 400);
        let body: ApiErrorBody = bad.json().await.expect("an error body");
        assert!(body.error.contains("not a job id") && body.hint.is_some());
        let bad = get("/api/v1/jobs?state=sleeping".into())
            .await
            .expect("GET");
        assert_eq!(bad.status(), 400);
        kit.stop().await;
    }
}
