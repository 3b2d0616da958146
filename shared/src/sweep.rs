//! The scheduled refresh: find the connections falling due through the due
//! index, refresh them with bounded concurrency, stop starting new ones when
//! the Lambda deadline is near, and report.
//!
//! Window and schedule: DocuSign access tokens live 8 hours. The schedule
//! runs every hour (`infra`), and a connection is due when its access token
//! expires within [`REFRESH_WINDOW_HOURS`] (4 hours). A token is therefore
//! refreshed when 3–4 hours of it are left: even if three consecutive runs
//! fail or are missed, it has not expired. Each refresh (with the `extended`
//! scope) gives a new refresh token with a fresh 30 days, so in normal
//! operation a refresh token is never older than about 5 hours, far from its
//! 30 days. A connection whose refreshes fail transiently stays due and is
//! tried again at every run.

use std::time::Duration as StdDuration;

use chrono::Duration;
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::app::App;
use crate::error::chain;
use crate::refresh::{ensure_fresh, Need, RefreshError, Refreshed};
use crate::store::StoreError;

pub const REFRESH_WINDOW_HOURS: i64 = 4;
/// Refreshes in flight at once (DocuSign's token endpoint, KMS and DynamoDB
/// calls of one tenant are sequential; tenants overlap up to this).
pub const CONCURRENCY: usize = 16;
/// No refresh starts with less than this left before the Lambda deadline:
/// the refresh's own deadline is [`FINISH_MARGIN`] earlier, and it presents a
/// token only with [`crate::refresh::PRESENT_MIN_LEFT`] (DocuSign's timeout
/// plus the write) still left; the rest is for the lease, reads and decrypt.
pub const START_MARGIN: StdDuration = StdDuration::from_secs(25);
/// Kept back from the Lambda deadline after the last refresh's write
/// attempts, for the sweep to count, log and answer.
pub const FINISH_MARGIN: StdDuration = StdDuration::from_secs(8);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Connections the due index returned.
    pub due: usize,
    pub refreshed: usize,
    pub reauth_required: usize,
    /// Transient failures (DocuSign 5xx/429/timeouts, AWS errors); still active.
    pub failed: usize,
    /// Due when listed, but another caller refreshed or disconnected meanwhile.
    pub skipped: usize,
    /// Not started because the deadline was near; they stay due for the next run.
    pub left: usize,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the due index could not be queried")]
    DueQuery(#[source] StoreError),
}

impl From<SweepError> for Diagnostic {
    fn from(e: SweepError) -> Self {
        Diagnostic {
            error_type: match e {
                SweepError::DueQuery(_) => "DueQueryFailed".to_owned(),
            },
            error_message: chain(&e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Refreshed,
    ReauthRequired,
    Failed,
    Skipped,
    Left,
}

/// The Lambda handler: any EventBridge scheduled event.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, SweepError> {
    let remaining = crate::remaining_time(&event.context).unwrap_or(StdDuration::from_secs(300));
    let summary = sweep(app, Instant::now() + remaining).await?;
    Ok(json!(summary))
}

/// One run over every due connection.
pub async fn sweep(app: &App, deadline: Instant) -> Result<Summary, SweepError> {
    let started = Instant::now();
    let window = Duration::hours(REFRESH_WINDOW_HOURS);
    let tenants = app.store.due_tenants(app.clock.now() + window).await.map_err(SweepError::DueQuery)?;
    let need = Need::Due { window };
    let outcomes: Vec<Outcome> = stream::iter(tenants.iter())
        .map(|tenant| {
            let need = &need;
            async move {
                if Instant::now() + START_MARGIN >= deadline {
                    tracing::info!(tenant = %tenant, outcome = "left", "deadline near; left for the next run");
                    return Outcome::Left;
                }
                let result = ensure_fresh(app, tenant, need, deadline - FINISH_MARGIN).await;
                let outcome = match &result {
                    Ok(Refreshed::Fresh { refreshed_here: true, .. }) => Outcome::Refreshed,
                    Ok(Refreshed::Fresh { .. }) | Ok(Refreshed::NotConnected) => Outcome::Skipped,
                    Ok(Refreshed::ReauthRequired) => Outcome::ReauthRequired,
                    Err(RefreshError::Store(StoreError::Conflict)) => Outcome::Skipped,
                    // Nothing was presented; still due next run.
                    Err(RefreshError::DeadlineNear) => Outcome::Left,
                    Err(_) => Outcome::Failed,
                };
                match &result {
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, outcome = outcome.name(), error = %chain(e), "refresh outcome")
                    }
                    Ok(_) => tracing::info!(tenant = %tenant, outcome = outcome.name(), "refresh outcome"),
                }
                outcome
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let summary = Summary {
        due: tenants.len(),
        refreshed: count(Outcome::Refreshed),
        reauth_required: count(Outcome::ReauthRequired),
        failed: count(Outcome::Failed),
        skipped: count(Outcome::Skipped),
        left: count(Outcome::Left),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    emit_metrics(&summary, app.clock.now().timestamp_millis());
    tracing::info!(
        due = summary.due,
        refreshed = summary.refreshed,
        reauth_required = summary.reauth_required,
        failed = summary.failed,
        skipped = summary.skipped,
        left = summary.left,
        duration_ms = summary.duration_ms,
        "sweep finished"
    );
    Ok(summary)
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Refreshed => "refreshed",
            Self::ReauthRequired => "reauth_required",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Left => "left",
        }
    }
}

/// CloudWatch embedded metric format: one JSON line on stdout that
/// CloudWatch turns into metrics, no API call.
pub fn metrics_line(summary: &Summary, timestamp_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "DocuSignConnector",
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "refreshed", "Unit": "Count"},
                    {"Name": "reauth_required", "Unit": "Count"},
                    {"Name": "failed", "Unit": "Count"},
                    {"Name": "left", "Unit": "Count"},
                    {"Name": "duration", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Function": "token-refresh",
        "refreshed": summary.refreshed,
        "reauth_required": summary.reauth_required,
        "failed": summary.failed,
        "left": summary.left,
        "duration": summary.duration_ms,
    })
}

fn emit_metrics(summary: &Summary, timestamp_ms: i64) {
    println!("{}", metrics_line(summary, timestamp_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_the_embedded_metric_format() {
        let s = Summary { due: 3, refreshed: 2, failed: 1, duration_ms: 40, ..Summary::default() };
        let line = metrics_line(&s, 1_700_000_000_000);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line.get(*name).is_some(), "metric {name} has a value");
        }
        assert_eq!(line["refreshed"], 2);
        assert_eq!(line["Function"], "token-refresh");
    }

    #[test]
    fn a_refresh_started_at_the_margin_has_time_to_present_and_store() {
        let spare = START_MARGIN.checked_sub(FINISH_MARGIN + crate::refresh::PRESENT_MIN_LEFT);
        assert!(spare.is_some_and(|s| s >= StdDuration::from_secs(3)), "{spare:?} for the lease, reads and decrypt");
    }

    #[test]
    fn the_window_outlasts_the_hourly_schedule_with_room_for_missed_runs() {
        let access_hours = 8;
        let schedule_hours = 1;
        assert!(REFRESH_WINDOW_HOURS > 3 * schedule_hours);
        assert!(REFRESH_WINDOW_HOURS < access_hours);
    }
}
