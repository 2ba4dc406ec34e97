//! The Lambda handler: one entry, [`handle`], from a batch's parsed records to its batch response
//! and summary.
//!
//! In steps, one function each: sort the records (skips counted and logged) and coalesce the
//! relevant ones per group (newest message, edits, removals); bring the groups up to date
//! concurrently (bounded by `GROUP_CONCURRENCY`) within the deadline, invalidating the cache after
//! each; fold each group's result into the summary; log one summary line; answer with the earliest
//! failed record's sequence number. Message text never reaches a log line.
//!
//! The payload's adapters (JSON or raw, into records) are with the parsing, in [`crate::event`];
//! the metrics document is written around the handler ([`crate::metrics::Metrics::measure`]).

use crate::apply::{self, GroupError, GroupOutcome};
use crate::cache::{self, dynamo::DynamoCache, valkey::ValkeyCache, Cache};
use crate::config::Config;
use crate::event::{EventError, Parsed, RecordRef};
use crate::plan::{self, GroupUpdate};
use crate::response::{self, NoSequenceNumber};
use crate::store::Store;
// Callers (`ddb replay`, `ddb redrive`, the bench) name it `handler::Summary`.
pub use crate::summary::Summary;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What every invocation shares: built once at start-up.
#[derive(Debug, Clone)]
pub struct App {
    pub store: Store,
    pub config: Config,
    /// One EMF document per invocation, written around the handler
    /// ([`crate::metrics::Metrics::measure`]); off unless set with [`App::with_metrics`].
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
    /// `CACHE_TABLE_NAME` set, the cache in that table shares the client; with `VALKEY_ENDPOINT`, the
    /// Valkey cache signs its IAM tokens with the client's credentials and region.
    pub async fn from_config(config: Config) -> Self {
        let sdk = crate::aws::sdk_config(&config).await;
        let valkey = config.valkey.as_ref().map(|settings| {
            ValkeyCache::with_iam(
                settings,
                sdk.credentials_provider(),
                sdk.region().map(ToString::to_string),
            )
        });
        let client = aws_sdk_dynamodb::Client::from_conf(crate::aws::dynamodb_config(&sdk).build());
        let app = Self::on_client(client, config);
        match valkey {
            Some(cache) => app.with_cache(Arc::new(cache)),
            None => app,
        }
    }

    /// [`App::from_config`] on a client already built (tests add interceptors to it), with the
    /// DynamoDB cache if `CACHE_TABLE_NAME` names one (the Valkey cache needs the SDK's credentials:
    /// [`App::from_config`] or [`App::with_cache`]).
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

/// An invocation error: Lambda retries the whole batch. Either the payload is not a stream event
/// (from [`crate::event`]'s adapters) or a failed record cannot be named ([`handle`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandlerError {
    #[error(transparent)]
    NotAStreamEvent(#[from] EventError),
    #[error(transparent)]
    NoSequenceNumber(#[from] NoSequenceNumber),
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

/// When an invocation stops starting work: its Lambda deadline less `margin`. `Context::default()`
/// has no deadline (0): tests and `ddb replay` run unbounded.
pub fn lambda_deadline(context: &lambda_runtime::Context, margin: Duration) -> Option<Instant> {
    (context.deadline > 0).then(|| {
        let left = context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Instant::now() + left.saturating_sub(margin)
    })
}

/// Processes one batch: brings every group its records touch up to date and answers with the
/// earliest failed record, if any. A group not done by `deadline` counts as failed, so the batch
/// response names its record before Lambda's timeout would throw the whole invocation away. (A
/// move cut short is atomic: it happened or it did not, and the retry finds out which.)
///
/// The one error: a failed record without a sequence number to retry from.
pub async fn handle(
    app: &App,
    records: Vec<Parsed>,
    deadline: Option<Instant>,
) -> Result<(DynamoDbEventResponse, Summary), NoSequenceNumber> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let updates = sort_and_coalesce(records, &mut summary);
    let results = schedule(app, &updates, deadline).await;
    let earliest_failed = fold(&mut summary, results);
    summary.counts.log_batch(
        earliest_failed.and_then(|r| r.sequence_number.as_deref()),
        started.elapsed().as_millis() as u64,
    );
    let response = response::batch_response(earliest_failed)?;
    Ok((response, summary))
}

/// Counts the records by kind (logging each skip, by id only) and coalesces the relevant ones
/// into one update per group.
fn sort_and_coalesce(records: Vec<Parsed>, summary: &mut Summary) -> Vec<GroupUpdate> {
    summary.counts.records = records.len();
    let mut messages = Vec::new();
    for record in records {
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
    updates
}

/// Brings the groups up to date, `GROUP_CONCURRENCY` at a time; a group still running at
/// `deadline` is cut short as [`GroupError::DeadlineReached`]. Results come in completion order.
async fn schedule<'u>(
    app: &App,
    updates: &'u [GroupUpdate],
    deadline: Option<Instant>,
) -> Vec<(&'u GroupUpdate, Result<GroupOutcome, GroupError>)> {
    // Collected first: with the closure's type inside the stream combinator, the compiler cannot
    // prove the handler's future `Send` in generic code (rust-lang/rust#102211).
    let groups: Vec<_> = updates
        .iter()
        .map(|update| async move {
            let result = match deadline {
                Some(at) => tokio::time::timeout_at(at.into(), apply_and_invalidate(app, update))
                    .await
                    .unwrap_or_else(|_| {
                        Err(GroupError::DeadlineReached {
                            group: update.group_uuid.clone(),
                        })
                    }),
                None => apply_and_invalidate(app, update).await,
            };
            (update, result)
        })
        .collect();
    futures::stream::iter(groups)
        .buffer_unordered(app.config.group_concurrency)
        .collect()
        .await
}

/// Adds each group's result to the summary (logging each failure) and returns the earliest
/// failed record in batch order: where Lambda retries from.
fn fold<'u>(
    summary: &mut Summary,
    results: Vec<(&'u GroupUpdate, Result<GroupOutcome, GroupError>)>,
) -> Option<&'u RecordRef> {
    let mut earliest_failed: Option<&RecordRef> = None;
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
                if earliest_failed.is_none_or(|earliest| record.position < earliest.position) {
                    earliest_failed = Some(record);
                }
            }
        }
    }
    earliest_failed
}

/// Brings one group up to date, then, when the app has a cache, invalidates the lists it made stale:
/// the group's messages and the conversations of every owner in `changed_owners` (rows written, or
/// already showing the batch's change: a retry after a failed invalidation must invalidate again),
/// in one request per 25 keys. An invalidation that still fails fails the group, so Lambda
/// retries it.
async fn apply_and_invalidate(app: &App, update: &GroupUpdate) -> Result<GroupOutcome, GroupError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IgnoreReason, MessageChange, MessageText};

    fn record(position: usize) -> RecordRef {
        RecordRef {
            position,
            event_id: Some(format!("e{position}")),
            sequence_number: Some(format!("{}", 100 + position)),
        }
    }

    fn write(position: usize, group: &str, created_at: &str) -> Parsed {
        Parsed::Relevant(MessageChange::write(
            record(position),
            group,
            created_at,
            MessageText::new("hi"),
        ))
    }

    #[test]
    fn the_lambda_deadline_is_the_contexts_less_the_margin() {
        let none = lambda_runtime::Context::default();
        assert_eq!(lambda_deadline(&none, Duration::from_secs(1)), None);

        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut context = lambda_runtime::Context::default();
        context.deadline = now_ms + 10_000;
        let at = lambda_deadline(&context, Duration::from_secs(2)).unwrap();
        let left = at.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_millis(7_500) && left <= Duration::from_secs(8),
            "{left:?}"
        );

        // Already within the margin: stop starting work now.
        context.deadline = now_ms + 1_000;
        let at = lambda_deadline(&context, Duration::from_secs(2)).unwrap();
        assert!(at <= Instant::now());
    }

    #[test]
    fn sorting_counts_each_kind_and_coalesces_one_update_per_group() {
        let records = vec![
            write(0, "g1", "2026-01-01T00:00:01Z"),
            Parsed::Ignored {
                record: record(1),
                reason: IgnoreReason::NotAMessage,
            },
            write(2, "g2", "2026-01-01T00:00:02Z"),
            Parsed::Malformed {
                record: record(3),
                reason: "no keys".to_owned(),
            },
            write(4, "g1", "2026-01-01T00:00:03Z"),
        ];
        let mut summary = Summary::default();
        let updates = sort_and_coalesce(records, &mut summary);

        let counts = summary.counts;
        assert_eq!(
            (
                counts.records,
                counts.relevant,
                counts.ignored,
                counts.malformed,
                counts.groups
            ),
            (5, 3, 1, 1, 2)
        );
        let mut groups: Vec<_> = updates
            .iter()
            .map(|u| (u.group_uuid.as_str(), u.first_record.position))
            .collect();
        groups.sort();
        assert_eq!(groups, vec![("g1", 0), ("g2", 2)]);
    }

    #[test]
    fn folding_answers_the_earliest_failed_record_in_batch_order() {
        let updates = plan::coalesce([(0, "g1"), (1, "g2"), (2, "g3")].map(|(position, group)| {
            MessageChange::write(
                record(position),
                group,
                "2026-01-01T00:00:01Z",
                MessageText::new("hi"),
            )
        }));
        let by_group = |group: &str| updates.iter().find(|u| u.group_uuid == group).unwrap();
        let failed = |group: &str| {
            Err(GroupError::DeadlineReached {
                group: group.to_owned(),
            })
        };
        // Completion order: g3 failed first, then g1 succeeded, then g2 failed.
        let results = vec![
            (by_group("g3"), failed("g3")),
            (by_group("g1"), Ok(GroupOutcome::default())),
            (by_group("g2"), failed("g2")),
        ];
        let mut summary = Summary::default();

        let earliest = fold(&mut summary, results).unwrap();

        assert_eq!(earliest.position, 1);
        assert_eq!(summary.counts.failed_groups, 2);
        assert_eq!(summary.failed_group_ids, vec!["g3", "g2"]);
        let response = response::batch_response(Some(earliest)).unwrap();
        assert_eq!(
            response.batch_item_failures[0].item_identifier.as_deref(),
            Some("101")
        );
    }

    #[test]
    fn folding_nothing_failed_answers_nothing() {
        let updates = plan::coalesce([MessageChange::remove(record(0), "g", "t")]);
        let mut summary = Summary::default();
        assert_eq!(
            fold(
                &mut summary,
                vec![(&updates[0], Ok(GroupOutcome::default()))]
            ),
            None
        );
        assert_eq!(summary.counts.failed_groups, 0);
    }
}
