//! The Lambda handler: one batch of stream records in, one batch response out.
//!
//! Parse every record on its own, coalesce per group (newest message, edits, removals), bring the
//! groups up to date concurrently (bounded by `GROUP_CONCURRENCY`), log one summary line, and answer with the
//! earliest failed record's sequence number. Message text never reaches a log line.

use crate::apply::{self, GroupError, GroupOutcome};
use crate::cache::{self, dynamo::DynamoCache, Cache};
use crate::config::Config;
use crate::event::{self, EventError, Parsed, RawEvent};
use crate::plan;
use crate::response::{self, NoSequenceNumber};
use crate::store::Store;
// Callers (`ddb replay`, `ddb redrive`, the bench) name it `handler::Summary`.
pub use crate::summary::Summary;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What every invocation shares: built once at start-up.
#[derive(Debug, Clone)]
pub struct App {
    pub store: Store,
    pub config: Config,
    /// One EMF document per invocation; off unless set with [`App::with_metrics`].
    pub metrics: crate::metrics::Metrics,
    /// The read-path cache whose lists a processed group invalidates; `None`: the cache is off.
    pub cache: Option<Arc<dyn Cache>>,
}

impl App {
    pub fn new(store: Store, config: Config) -> Self {
        Self {
            store,
            config,
            metrics: crate::metrics::Metrics::off(),
            cache: None,
        }
    }

    /// Emits each invocation's metrics through `metrics`.
    pub fn with_metrics(self, metrics: crate::metrics::Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// The same app, invalidating `cache` after each group.
    pub fn with_cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Builds the DynamoDB client from `config` and the standard AWS environment; with
    /// `CACHE_TABLE_NAME` set, the cache in that table shares the client.
    pub async fn from_config(config: Config) -> Self {
        Self::on_client(crate::aws::dynamodb_client(&config).await, config)
    }

    /// [`App::from_config`] on a client already built (tests add interceptors to it).
    pub fn on_client(client: aws_sdk_dynamodb::Client, config: Config) -> Self {
        let cache = config
            .cache_table_name
            .clone()
            .map(|table| DynamoCache::new(client.clone(), table));
        let app = Self::new(Store::new(client, &config), config);
        match cache {
            Some(cache) => app.with_cache(Arc::new(cache)),
            None => app,
        }
    }
}

/// An invocation error: Lambda retries the whole batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandlerError {
    #[error(transparent)]
    NotAStreamEvent(#[from] EventError),
    #[error(transparent)]
    NoSequenceNumber(#[from] NoSequenceNumber),
}

/// The Lambda entry point, callable from tests with `LambdaEvent::new(event, Context::default())`.
pub async fn handle(
    app: &App,
    event: LambdaEvent<Value>,
) -> Result<DynamoDbEventResponse, HandlerError> {
    let deadline = deadline(app, &event.context);
    process_until(app, &event.payload, deadline)
        .await
        .map(|(response, _)| response)
}

/// The entry point of the Lambda binary: the same as [`handle`], but the records stay JSON text
/// until each is parsed, which keeps a large batch's memory near its JSON size.
pub async fn handle_raw(
    app: &App,
    event: LambdaEvent<RawEvent>,
) -> Result<DynamoDbEventResponse, HandlerError> {
    let parsed = event::parse_raw_event(&event.payload)?;
    let deadline = deadline(app, &event.context);
    drop(event);
    process_parsed(app, parsed, deadline)
        .await
        .map(|(response, _)| response)
}

/// When to stop starting work: the invocation's deadline less the margin. `Context::default()` has
/// no deadline (0): tests and `ddb replay` run unbounded.
fn deadline(app: &App, context: &lambda_runtime::Context) -> Option<Instant> {
    (context.deadline > 0)
        .then(|| context.deadline())
        .map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left.saturating_sub(app.config.deadline_margin)
        })
}

/// Processes one batch with no deadline; returns the response and the counts it logged.
pub async fn process(
    app: &App,
    payload: &Value,
) -> Result<(DynamoDbEventResponse, Summary), HandlerError> {
    process_until(app, payload, None).await
}

/// Processes one batch; a group not done by `deadline` counts as failed, so the batch response
/// names its record before Lambda's timeout would throw the whole invocation away. (A move cut
/// short is atomic: it happened or it did not, and the retry finds out which.)
pub async fn process_until(
    app: &App,
    payload: &Value,
    deadline: Option<Instant>,
) -> Result<(DynamoDbEventResponse, Summary), HandlerError> {
    process_parsed(app, event::parse_event(payload)?, deadline).await
}

/// Processes the batch and emits its metrics document (src/metrics.rs) from its summary.
async fn process_parsed(
    app: &App,
    parsed: Vec<Parsed>,
    deadline: Option<Instant>,
) -> Result<(DynamoDbEventResponse, Summary), HandlerError> {
    let started = Instant::now();
    let (result, requests) =
        crate::request_count::count_requests(process_batch(app, parsed, deadline)).await;
    if let Ok((response, summary)) = &result {
        app.metrics
            .emit(summary, response, started.elapsed(), requests);
    }
    result
}

/// Coalesces the parsed records, brings each group up to date, and builds the response.
async fn process_batch(
    app: &App,
    parsed: Vec<Parsed>,
    deadline: Option<Instant>,
) -> Result<(DynamoDbEventResponse, Summary), HandlerError> {
    let started = Instant::now();
    let mut summary = Summary::default();
    summary.counts.records = parsed.len();
    let mut messages = Vec::new();
    for record in parsed {
        match record {
            Parsed::Relevant(message) => messages.push(message),
            Parsed::Ignored { record, reason } => {
                summary.counts.ignored += 1;
                tracing::debug!(
                    position = record.position,
                    event_id = record.event_id.as_deref(),
                    reason = reason.as_str(),
                    "ignoring record"
                );
            }
            Parsed::Malformed { record, reason } => {
                summary.counts.malformed += 1;
                tracing::warn!(
                    position = record.position,
                    event_id = record.event_id.as_deref(),
                    sequence_number = record.sequence_number.as_deref(),
                    reason = %reason,
                    "skipping malformed record"
                );
            }
        }
    }
    summary.counts.relevant = messages.len();
    let updates = plan::coalesce(messages);
    summary.counts.groups = updates.len();

    // Collected first: with the closure's type inside the stream combinator, the compiler cannot
    // prove the handler's future `Send` in generic code (rust-lang/rust#102211).
    let groups: Vec<_> = updates
        .iter()
        .map(|update| async move {
            (
                update,
                match deadline {
                    Some(at) => {
                        tokio::time::timeout_at(at.into(), apply_and_invalidate(app, update))
                            .await
                            .unwrap_or_else(|_| {
                                Err(GroupError::DeadlineReached {
                                    group: update.group_uuid.clone(),
                                })
                            })
                    }
                    None => apply_and_invalidate(app, update).await,
                },
            )
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(groups)
        .buffer_unordered(app.config.group_concurrency)
        .collect()
        .await;

    let mut earliest_failed = None;
    for (update, result) in results {
        match result {
            Ok(outcome) => summary.add_group(outcome),
            Err(error) => {
                summary.add_failed_group(&update.group_uuid, &error);
                tracing::error!(
                    group = %update.group_uuid,
                    retry_from = update.first_record.sequence_number.as_deref(),
                    error = %error,
                    "group failed"
                );
                let record = &update.first_record;
                if earliest_failed.is_none_or(|earliest: &crate::event::RecordRef| {
                    record.position < earliest.position
                }) {
                    earliest_failed = Some(record);
                }
            }
        }
    }
    summary.counts.log_batch(
        earliest_failed.and_then(|r| r.sequence_number.as_deref()),
        started.elapsed().as_millis() as u64,
    );
    let response = response::batch_response(earliest_failed)?;
    Ok((response, summary))
}

/// Brings one group up to date, then, when the app has a cache, invalidates the lists it made stale:
/// the group's messages and the conversations of every owner in `changed_owners` (rows written, or
/// already showing the batch's change: a retry after a failed invalidation must invalidate again),
/// in one request per 25 keys. An invalidation that still fails fails the group, so Lambda
/// retries it.
pub async fn apply_and_invalidate(
    app: &App,
    update: &plan::GroupUpdate,
) -> Result<GroupOutcome, GroupError> {
    let outcome = apply::apply_group(&app.store, &app.config, update).await?;
    if let Some(cache) = &app.cache {
        let keys = cache::invalidation_keys(&update.group_uuid, &outcome.changed_owners);
        cache
            .invalidate(&keys)
            .await
            .map_err(|source| GroupError::CacheInvalidation {
                group: update.group_uuid.clone(),
                source,
            })?;
        tracing::debug!(group = %update.group_uuid, keys = keys.len(), "cache invalidated");
    }
    Ok(outcome)
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::NotAStreamEvent(_) => "NotAStreamEvent",
            HandlerError::NoSequenceNumber(_) => "NoSequenceNumber",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}
