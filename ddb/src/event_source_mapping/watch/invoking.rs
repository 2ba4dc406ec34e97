//! Invoking the function with one batch, as Lambda's poller does: the [`Function`] it calls (the
//! handler in-process for [`App`]), records older than MaximumRecordAgeInSeconds given up without a
//! call, the batch's event JSON, the call bounded by the function's Timeout, its answer settled by
//! `batching`'s rules (retry from the reported item, bisect, give up) with the function's reasons,
//! given-up ranges written to the on-failure destination (`failures`), and each invocation told to
//! the observer. Which lane invokes when is the loop's; the queues are `batching`'s.

use super::options::WatchOptions;
use super::stats::Stats;
use super::WatchError;
use crate::event_source_mapping::batching::{Answer, FailedRange, Pending, Settled, ShardQueue};
use crate::event_source_mapping::failures::{self, Origin};
use crate::event_source_mapping::stream::Shard;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::future::BoxFuture;
use messaging_stream::event;
use messaging_stream::handler::{self, App, HandlerError};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An invocation error: the function did not return a response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FunctionError(pub String);

/// A batch response, and the function's reason for each group it reported failed.
#[derive(Debug, Clone, Default)]
pub struct Invoked {
    pub response: DynamoDbEventResponse,
    /// `Kind: group <id>: ...` (the handler's [`handler::Summary::group_errors`]); empty when the
    /// function cannot say (Lambda itself sends no reason with a batch response).
    pub reasons: Vec<String>,
}

/// What the trigger invokes with each batch: the Lambda event JSON in, the batch response out.
pub trait Function: Send + Sync {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>>;

    /// [`Function::invoke`] with the reasons the function gave, which the failures file keeps; by
    /// default none.
    fn invoke_with_reasons(&self, event: Value) -> BoxFuture<'_, Result<Invoked, FunctionError>> {
        Box::pin(async move {
            let response = self.invoke(event).await?;
            Ok(Invoked {
                response,
                reasons: Vec::new(),
            })
        })
    }
}

/// The real handler, in-process, exactly as the Lambda runtime calls it.
impl Function for App {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>> {
        Box::pin(async move {
            self.invoke_with_reasons(event)
                .await
                .map(|invoked| invoked.response)
        })
    }

    /// The same call (no deadline, as a default Lambda context has none), keeping the summary's
    /// reasons.
    fn invoke_with_reasons(&self, event: Value) -> BoxFuture<'_, Result<Invoked, FunctionError>> {
        let app = self.clone();
        Box::pin(async move {
            let handled = async {
                let records = event::parse_event(&event)?;
                Ok::<_, HandlerError>(
                    app.metrics
                        .measure(handler::handle(&app, records, None))
                        .await?,
                )
            };
            let (response, summary) = handled
                .await
                .map_err(|error| FunctionError(error.to_string()))?;
            Ok(Invoked {
                response,
                reasons: summary.group_errors,
            })
        })
    }
}

/// `settled` with the function's reasons after its error (`the function reported itemIdentifier N:
/// Kind: group G: ...`), so the log line and the failures file say why, not only where.
fn with_reasons(settled: Settled, reasons: &[String]) -> Settled {
    if reasons.is_empty() {
        return settled;
    }
    let explain = |error: String| format!("{error}: {}", reasons.join("; "));
    match settled {
        Settled::Retry {
            from,
            attempt,
            error,
        } => Settled::Retry {
            from,
            attempt,
            error: explain(error),
        },
        Settled::Bisected { size, error } => Settled::Bisected {
            size,
            error: explain(error),
        },
        Settled::GaveUp(mut range) => {
            range.error = explain(range.error);
            Settled::GaveUp(range)
        }
        done @ Settled::Done { .. } => done,
    }
}

/// One invocation, for observers (tests, the soak).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub shard_id: String,
    pub first_sequence_number: String,
    pub last_sequence_number: String,
    pub records: usize,
    /// Failed invocations of this batch's first record before this one (0 = first try).
    pub retries_before: u32,
    pub outcome: Outcome,
}

/// What an invocation led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed; the next batch starts at `from` (the reported item, or the batch's first record).
    Retry {
        from: String,
        error: String,
    },
    /// Failed as a whole; the next batch is its first `size` records.
    Bisected {
        size: usize,
        error: String,
    },
    /// Failed, retries exhausted: the range went to the failures file.
    GaveUp {
        start: String,
        end: String,
        error: String,
    },
}

pub(super) type Observer = Box<dyn Fn(&Invocation) + Send + Sync>;

/// Calls the function with batches, settles its answers and gives up what is due.
pub(super) struct Invoker {
    function: Arc<dyn Function>,
    observer: Option<Observer>,
    /// The function's Timeout: a longer invocation is an invocation error.
    timeout: Duration,
    /// MaximumRecordAgeInSeconds (`None`: for ever).
    max_record_age: Option<Duration>,
    /// The on-failure destination (`None`: given-up ranges are only logged).
    failures_file: Option<PathBuf>,
    stats: Arc<Stats>,
}

/// The function's answer to one call.
struct Answered {
    answer: Answer,
    /// The function returned no response (an error or a timeout), as the failures file says.
    invocation_error: bool,
    reasons: Vec<String>,
}

impl Invoker {
    pub(super) fn new(
        function: Arc<dyn Function>,
        options: &WatchOptions,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            function,
            observer: None,
            timeout: options.timeout,
            max_record_age: options.max_record_age,
            failures_file: options.failures_file.clone(),
            stats,
        }
    }

    /// Calls `observer` after every invocation.
    pub(super) fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Invokes the function on the queue's next batch and settles it; true if a retry is due.
    pub(super) async fn invoke(
        &self,
        shard: &Shard,
        stream_arn: &str,
        queue: &mut ShardQueue,
    ) -> Result<bool, WatchError> {
        if self.expire(shard, stream_arn, queue).await? && queue.is_empty() {
            return Ok(false);
        }
        let batch: Vec<&Pending> = queue.batch().collect();
        let len = batch.len();
        let first = batch[0].sequence_number.clone();
        let last = batch[len - 1].sequence_number.clone();
        let event = json!({"Records": batch.iter().map(|p| &p.record).collect::<Vec<_>>()});
        if let Some(age) = age_ms(&batch[len - 1].record, now_ms()) {
            Stats::set(&self.stats.iterator_age_ms, age.max(0.0) as u64);
        }
        let lag = queue.head_waited().unwrap_or_default();
        Stats::set(&self.stats.lag_ms, lag.as_millis() as u64);
        let retries_before = queue.attempts();
        Stats::add(&self.stats.invocations, 1);
        let answered = self.call(event).await;
        let before = queue.len();
        let settled = with_reasons(queue.settle(len, answered.answer), &answered.reasons);
        Stats::sub(&self.stats.pending, (before - queue.len()) as u64);
        if !matches!(settled, Settled::Done { .. }) {
            Stats::add(&self.stats.failed_invocations, 1);
        }
        let retry = matches!(settled, Settled::Retry { .. } | Settled::Bisected { .. });
        let outcome = self
            .outcome(
                shard,
                stream_arn,
                &first,
                settled,
                answered.invocation_error,
            )
            .await?;
        self.observe(Invocation {
            shard_id: shard.id.clone(),
            first_sequence_number: first,
            last_sequence_number: last,
            records: len,
            retries_before,
            outcome,
        });
        Ok(retry)
    }

    /// Gives up the queue's head records older than MaximumRecordAgeInSeconds without invoking;
    /// true if there were any.
    async fn expire(
        &self,
        shard: &Shard,
        stream_arn: &str,
        queue: &mut ShardQueue,
    ) -> Result<bool, WatchError> {
        let Some(max_age) = self.max_record_age else {
            return Ok(false);
        };
        let now = now_ms();
        let expired = queue.expire(
            |pending| {
                age_ms(&pending.record, now).is_some_and(|age| age > max_age.as_millis() as f64)
            },
            format!(
                "older than MaximumRecordAgeInSeconds ({} s): discarded without invoking",
                max_age.as_secs()
            ),
        );
        let Some(range) = expired else {
            return Ok(false);
        };
        Stats::sub(&self.stats.pending, range.records.len() as u64);
        let outcome = self.give_up(shard, stream_arn, range, false).await?;
        if let Outcome::GaveUp { start, end, .. } = &outcome {
            self.observe(Invocation {
                shard_id: shard.id.clone(),
                first_sequence_number: start.clone(),
                last_sequence_number: end.clone(),
                records: 0,
                retries_before: 0,
                outcome: outcome.clone(),
            });
        }
        Ok(true)
    }

    /// One call under the function's Timeout, and what it answered.
    async fn call(&self, event: Value) -> Answered {
        let invoked =
            tokio::time::timeout(self.timeout, self.function.invoke_with_reasons(event)).await;
        match invoked {
            Err(_) => Answered {
                answer: Answer::Error(format!("invocation timed out after {:?}", self.timeout)),
                invocation_error: true,
                reasons: Vec::new(),
            },
            Ok(Err(error)) => Answered {
                answer: Answer::Error(error.0),
                invocation_error: true,
                reasons: Vec::new(),
            },
            Ok(Ok(Invoked { response, reasons })) => Answered {
                answer: Answer::Response(
                    response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                ),
                invocation_error: false,
                reasons,
            },
        }
    }

    /// What a settled batch led to: logs a failure, gives up a range whose retries are over.
    async fn outcome(
        &self,
        shard: &Shard,
        stream_arn: &str,
        first: &str,
        settled: Settled,
        invocation_error: bool,
    ) -> Result<Outcome, WatchError> {
        Ok(match settled {
            Settled::Done { .. } => Outcome::Succeeded,
            Settled::Retry {
                from,
                attempt,
                error,
            } => {
                tracing::warn!(shard = %shard.id, retry_from = %from, attempt, error = %error, "invocation failed; retrying");
                Outcome::Retry { from, error }
            }
            Settled::Bisected { size, error } => {
                tracing::warn!(shard = %shard.id, first = %first, size, error = %error, "invocation failed; bisecting the batch");
                Outcome::Bisected { size, error }
            }
            Settled::GaveUp(range) => {
                self.give_up(shard, stream_arn, range, invocation_error)
                    .await?
            }
        })
    }

    /// Counts, logs and (with a failures file) writes a range whose retries are over.
    async fn give_up(
        &self,
        shard: &Shard,
        stream_arn: &str,
        range: FailedRange,
        invocation_error: bool,
    ) -> Result<Outcome, WatchError> {
        let start = range.records[0].sequence_number.clone();
        let end = range.records[range.records.len() - 1]
            .sequence_number
            .clone();
        Stats::add(&self.stats.ranges_given_up, 1);
        Stats::add(&self.stats.records_given_up, range.records.len() as u64);
        tracing::error!(
            shard = %shard.id,
            start = %start,
            end = %end,
            records = range.records.len(),
            attempts = range.attempts,
            error = %range.error,
            failures_file = ?self.failures_file,
            "retries exhausted; giving the range up"
        );
        if let Some(path) = &self.failures_file {
            let origin = Origin {
                stream_arn,
                shard_id: &shard.id,
                invocation_error,
            };
            let record = failures::on_failure_record(&range, origin, chrono::Utc::now());
            failures::append(path, &record).await?;
        }
        Ok(Outcome::GaveUp {
            start,
            end,
            error: range.error,
        })
    }

    fn observe(&self, invocation: Invocation) {
        if let Some(observer) = &self.observer {
            observer(&invocation);
        }
    }
}

/// How long before `now_ms` a Lambda record was written (its ApproximateCreationDateTime, in
/// seconds), in milliseconds; `None` if it has no such time.
fn age_ms(record: &Value, now_ms: f64) -> Option<f64> {
    record
        .pointer("/dynamodb/ApproximateCreationDateTime")
        .and_then(Value::as_f64)
        .map(|created| now_ms - created * 1000.0)
}

fn now_ms() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64
}
