//! `ddb watch`: the event source mapping, locally. Reads a table's stream (every shard, closed
//! parents before their children, new shards as they appear), turns the records into Lambda's
//! event JSON, applies the template's filter, batches, invokes the function in-process and honours
//! its answer as Lambda does (`batching`), writing given-up ranges to a failures file (`failures`).
//!
//! A library API so that tests and the soak can drive it: [`Trigger::drain`] reads until every
//! shard is caught up (`--once`), [`Trigger::run_until`] follows the stream until a future
//! completes (Ctrl-C in the CLI). The function is anything that implements [`Function`]; [`App`]
//! runs the real handler. The trigger keeps its place between runs, so `drain` can be called in a
//! loop. Message text is never logged: only sequence numbers, counts and errors.

use super::batching::{Answer, FailedRange, Pending, RetryPolicy, Settled, ShardQueue};
use super::failures::{self, FailuresFileError, Origin};
use super::lambda_record::{self, RecordError};
use super::stream::{self, Position, Shard, StreamError};
use crate::filter::EventFilter;
use crate::handler::{self, App};
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where reading starts on the shards that are open when the trigger first looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still in the stream (the template's choice).
    TrimHorizon,
    /// Only records written from now on.
    Latest,
}

/// The event source mapping's settings, and the local loop's timings.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub from: StartingPosition,
    /// Most records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long to gather records for a batch (`MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// Split a batch in two on an invocation error (`BisectBatchOnFunctionError`).
    pub bisect: bool,
    /// Retries before a failing range is given up (`MaximumRetryAttempts`; `None` = -1, for ever).
    pub max_retries: Option<u32>,
    /// Where given-up ranges go (the on-failure destination); `None`: only logged.
    pub failures_file: Option<PathBuf>,
    /// An invocation longer than this is an invocation error (the function's `Timeout`).
    pub timeout: Duration,
    /// Pause before retrying a failed batch.
    pub retry_delay: Duration,
    /// Pause after an empty GetRecords page (Lambda polls a shard about four times a second).
    pub poll_interval: Duration,
    /// Consecutive empty pages on a shard that mean "drained" for [`Trigger::drain`]: one empty
    /// page is not enough, DynamoDB Streams may return one before the end of an open shard.
    pub drained_after: u32,
    /// How often to look for new shards while following the stream.
    pub discovery_interval: Duration,
}

impl Default for WatchOptions {
    /// The template's event source mapping, and timings that suit DynamoDB Local.
    fn default() -> Self {
        Self {
            from: StartingPosition::TrimHorizon,
            batch_size: 100,
            batching_window: Duration::from_secs(1),
            bisect: true,
            max_retries: Some(5),
            failures_file: None,
            timeout: Duration::from_secs(90),
            retry_delay: Duration::from_millis(200),
            poll_interval: Duration::from_millis(250),
            drained_after: 3,
            discovery_interval: Duration::from_secs(10),
        }
    }
}

/// An invocation error: the function did not return a response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FunctionError(pub String);

/// What the trigger invokes with each batch: the Lambda event JSON in, the batch response out.
pub trait Function: Send + Sync {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>>;
}

/// The real handler, in-process, exactly as the Lambda runtime calls it.
impl Function for App {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>> {
        let app = self.clone();
        Box::pin(async move {
            let event = lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default());
            handler::handle(&app, event)
                .await
                .map_err(|error| FunctionError(error.to_string()))
        })
    }
}

/// Why the trigger stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    FailuresFile(#[from] FailuresFileError),
}

/// Running counts, shared with whoever prints progress (see [`Trigger::stats`]).
#[derive(Debug, Default)]
pub struct Stats {
    records_read: AtomicU64,
    records_filtered_out: AtomicU64,
    invocations: AtomicU64,
    failed_invocations: AtomicU64,
    ranges_given_up: AtomicU64,
    records_given_up: AtomicU64,
    pending: AtomicU64,
    lag_ms: AtomicU64,
    iterator_age_ms: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Records read from the stream.
    pub records_read: u64,
    /// Records the template's filter dropped (the function's own writes, REMOVEs...).
    pub records_filtered_out: u64,
    pub invocations: u64,
    /// Invocations that reported an item failure or failed as a whole.
    pub failed_invocations: u64,
    /// Ranges written to the failures file after their retries.
    pub ranges_given_up: u64,
    pub records_given_up: u64,
    /// Records read and passed by the filter, not yet checkpointed.
    pub pending: u64,
    /// How long the last invoked batch's first record waited between being read from the stream
    /// and that invocation (batching window, retries, a busy shard), by the trigger's clock.
    pub lag_ms: u64,
    /// Age of the last record invoked, from its ApproximateCreationDateTime (Lambda's
    /// IteratorAge). DynamoDB Local rounds that time down to the minute, so locally it can be up
    /// to a minute too high: the progress line shows `lag_ms` instead.
    pub iterator_age_ms: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            records_read: get(&self.records_read),
            records_filtered_out: get(&self.records_filtered_out),
            invocations: get(&self.invocations),
            failed_invocations: get(&self.failed_invocations),
            ranges_given_up: get(&self.ranges_given_up),
            records_given_up: get(&self.records_given_up),
            pending: get(&self.pending),
            lag_ms: get(&self.lag_ms),
            iterator_age_ms: get(&self.iterator_age_ms),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

impl fmt::Display for StatsSnapshot {
    /// The progress line: `read 98  filtered 8  invoked 2 (failed 0)  given up 0  pending 0  lag 1.2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {}  filtered {}  invoked {} (failed {})  given up {}  pending {}  lag {:.1}s",
            self.records_read,
            self.records_filtered_out,
            self.invocations,
            self.failed_invocations,
            self.records_given_up,
            self.pending,
            self.lag_ms as f64 / 1000.0
        )
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

type Observer = Box<dyn Fn(&Invocation) + Send + Sync>;

/// Where a shard's reading resumes between runs.
#[derive(Debug, Clone)]
struct ShardState {
    position: Position,
    iterator: Option<String>,
    finished: bool,
}

#[derive(Debug, Default)]
struct Shards {
    discovered: bool,
    states: HashMap<String, ShardState>,
}

/// How a shard's reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardEnd {
    /// A closed shard, read to its end and all checkpointed: its children may start.
    Closed,
    /// Caught up (`drain`): several empty pages in a row and nothing pending.
    Drained,
    Stopped,
}

/// The local event source mapping of one table's stream to one function.
pub struct Trigger {
    streams: aws_sdk_dynamodbstreams::Client,
    function: Arc<dyn Function>,
    stream_arn: String,
    options: WatchOptions,
    filter: Option<EventFilter>,
    observer: Option<Observer>,
    stats: Arc<Stats>,
    shards: Mutex<Shards>,
}

impl Trigger {
    /// Finds `table`'s stream; reading starts at the first [`Trigger::drain`] or [`Trigger::run_until`].
    pub async fn new(
        streams: aws_sdk_dynamodbstreams::Client,
        function: impl Function + 'static,
        table: &str,
        options: WatchOptions,
    ) -> Result<Self, WatchError> {
        let stream_arn = stream::stream_arn(&streams, table).await?;
        Ok(Self {
            streams,
            function: Arc::new(function),
            stream_arn,
            options,
            filter: None,
            observer: None,
            stats: Arc::default(),
            shards: Mutex::default(),
        })
    }

    /// Only records the filter passes reach the function (as with the template's FilterCriteria).
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Calls `observer` after every invocation.
    pub fn with_observer(mut self, observer: impl Fn(&Invocation) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The running counts (cumulative over runs), e.g. for a progress line.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Reads every shard until it is caught up, invoking the function on what is there; then returns.
    pub async fn drain(&self) -> Result<StatsSnapshot, WatchError> {
        let (_keep, stop) = watch::channel(false);
        self.run(true, stop).await
    }

    /// Follows the stream until `stop` completes, then finishes the invocation in flight and returns.
    pub async fn run_until(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Result<StatsSnapshot, WatchError> {
        let (stopping, stopped) = watch::channel(false);
        let run = self.run(false, stopped);
        tokio::pin!(run, stop);
        tokio::select! {
            result = &mut run => return result,
            () = &mut stop => {}
        }
        stopping.send_replace(true);
        run.await
    }

    async fn run(
        &self,
        once: bool,
        stop: watch::Receiver<bool>,
    ) -> Result<StatsSnapshot, WatchError> {
        let mut readers = FuturesUnordered::new();
        let mut reading: HashSet<String> = HashSet::new();
        let mut caught_up: HashSet<String> = HashSet::new();
        let mut pause = stop.clone();
        loop {
            let stopping = *stop.borrow();
            if !stopping {
                for shard in self.discover(once).await? {
                    if !caught_up.contains(&shard.id) && reading.insert(shard.id.clone()) {
                        readers.push(self.read_shard(shard, once, stop.clone()));
                    }
                }
            }
            if readers.is_empty() {
                if once || stopping {
                    return Ok(self.stats.snapshot());
                }
                // No shard yet (DynamoDB may create one at the first write): look again later.
                tokio::select! {
                    () = tokio::time::sleep(self.options.discovery_interval) => {}
                    _ = pause.wait_for(|stopped| *stopped) => {}
                }
                continue;
            }
            tokio::select! {
                Some((shard_id, end)) = readers.next() => {
                    reading.remove(&shard_id);
                    if end? == ShardEnd::Drained {
                        caught_up.insert(shard_id);
                    }
                }
                () = tokio::time::sleep(self.options.discovery_interval), if !once && !stopping => {}
            }
        }
    }

    /// Lists the shards and returns those to read now: not finished, and whose parent is finished
    /// or gone from the stream (trimmed).
    async fn discover(&self, once: bool) -> Result<Vec<Shard>, WatchError> {
        let listed = match stream::shards(&self.streams, &self.stream_arn).await {
            Ok(listed) => listed,
            Err(error) if !once => {
                tracing::warn!(error = %error, "listing the stream's shards failed; will try again");
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        };
        let mut shards = self.shards.lock().expect("shard states lock");
        let first_look = !std::mem::replace(&mut shards.discovered, true);
        for shard in &listed {
            shards.states.entry(shard.id.clone()).or_insert_with(|| {
                // LATEST applies to the shards open at the first look; closed ones are history, and
                // shards that appear later are read from their start.
                let (position, finished) = match (first_look, self.options.from) {
                    (true, StartingPosition::Latest) => (Position::Latest, shard.closed),
                    _ => (Position::TrimHorizon, false),
                };
                ShardState {
                    position,
                    iterator: None,
                    finished,
                }
            });
        }
        Ok(readable(&listed, |id| {
            shards.states.get(id).is_some_and(|s| s.finished)
        }))
    }

    /// Reads one shard until it ends, is caught up (`once`), or the trigger stops; saves its place.
    async fn read_shard(
        &self,
        shard: Shard,
        once: bool,
        mut stop: watch::Receiver<bool>,
    ) -> (String, Result<ShardEnd, WatchError>) {
        let state = self
            .shards
            .lock()
            .expect("shard states lock")
            .states
            .get(&shard.id)
            .cloned()
            .expect("discovered shards have a state");
        let mut reader = ShardReader {
            queue: ShardQueue::new(RetryPolicy {
                batch_size: self.options.batch_size,
                bisect: self.options.bisect,
                max_retries: self.options.max_retries,
            }),
            position: state.position,
            iterator: state.iterator,
            exhausted: false,
        };
        let end = self.follow(&shard, &mut reader, once, &mut stop).await;
        // Records read but not checkpointed are read again next time, from the first of them.
        Stats::sub(&self.stats.pending, reader.queue.len() as u64);
        if let Some(head) = reader.queue.head() {
            reader.position = Position::At(head.sequence_number.clone());
            reader.iterator = None;
        }
        let saved = ShardState {
            position: reader.position,
            iterator: reader.iterator,
            finished: matches!(end, Ok(ShardEnd::Closed)),
        };
        self.shards
            .lock()
            .expect("shard states lock")
            .states
            .insert(shard.id.clone(), saved);
        (shard.id, end)
    }

    async fn follow(
        &self,
        shard: &Shard,
        reader: &mut ShardReader,
        once: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<ShardEnd, WatchError> {
        let options = &self.options;
        let mut empty_pages = 0u32;
        let mut window_start: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                return Ok(ShardEnd::Stopped);
            }
            let mut caught_up = false;
            if !reader.exhausted && reader.queue.len() < options.batch_size {
                match self.read_page(&shard.id, reader).await {
                    Ok(0) => {
                        empty_pages += 1;
                        caught_up = true;
                    }
                    Ok(_) => empty_pages = 0,
                    Err(WatchError::Stream(error)) if !once => {
                        tracing::warn!(shard = %shard.id, error = %error, "reading the shard failed; will try again");
                        pause(stop, options.poll_interval.max(Duration::from_secs(1))).await;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                if reader.queue.is_empty() {
                    window_start = None;
                } else {
                    window_start.get_or_insert_with(Instant::now);
                }
            }
            let queue = &reader.queue;
            let window_over = window_start.is_some_and(|t| t.elapsed() >= options.batching_window);
            let ready = !queue.is_empty()
                && (retry_at.is_some()
                    || queue.is_full()
                    || window_over
                    || reader.exhausted
                    || (once && caught_up));
            if ready {
                if let Some(at) = retry_at.take() {
                    pause(stop, at.saturating_duration_since(Instant::now())).await;
                    if *stop.borrow() {
                        return Ok(ShardEnd::Stopped);
                    }
                }
                if self.invoke(shard, &mut reader.queue).await? {
                    retry_at = Some(Instant::now() + options.retry_delay);
                }
                if reader.queue.is_empty() {
                    window_start = None;
                }
                continue;
            }
            if queue.is_empty() {
                if reader.exhausted {
                    return Ok(ShardEnd::Closed);
                }
                if once && empty_pages >= options.drained_after {
                    return Ok(ShardEnd::Drained);
                }
            }
            if caught_up || reader.exhausted {
                let window_left = window_start
                    .map(|t| options.batching_window.saturating_sub(t.elapsed()))
                    .unwrap_or(options.poll_interval);
                pause(stop, options.poll_interval.min(window_left)).await;
            }
        }
    }

    /// Reads one page into the queue; returns how many records the stream gave.
    async fn read_page(
        &self,
        shard_id: &str,
        reader: &mut ShardReader,
    ) -> Result<usize, WatchError> {
        let iterator = match reader.iterator.take() {
            Some(iterator) => iterator,
            None => {
                match stream::iterator(&self.streams, &self.stream_arn, shard_id, &reader.position)
                    .await?
                {
                    Some(iterator) => iterator,
                    None => {
                        reader.exhausted = true;
                        return Ok(0);
                    }
                }
            }
        };
        let page = match stream::records(&self.streams, &iterator).await {
            Ok(page) => page,
            Err(StreamError::ExpiredIterator) => {
                // A fresh iterator from where we are: nothing is skipped or read twice.
                let fresh =
                    stream::iterator(&self.streams, &self.stream_arn, shard_id, &reader.position)
                        .await?;
                let Some(fresh) = fresh else {
                    reader.exhausted = true;
                    return Ok(0);
                };
                stream::records(&self.streams, &fresh).await?
            }
            Err(error) => {
                reader.iterator = Some(iterator);
                return Err(error.into());
            }
        };
        for record in &page.records {
            let sequence_number = lambda_record::sequence_number(record)?.to_owned();
            let event_record = lambda_record::lambda_record(record, &self.stream_arn)?;
            Stats::add(&self.stats.records_read, 1);
            reader.position = Position::After(sequence_number.clone());
            if self
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(&event_record))
            {
                reader.queue.push(Pending {
                    sequence_number,
                    record: event_record,
                });
                Stats::add(&self.stats.pending, 1);
            } else {
                Stats::add(&self.stats.records_filtered_out, 1);
            }
        }
        reader.iterator = page.next_iterator;
        reader.exhausted = reader.iterator.is_none();
        Ok(page.records.len())
    }

    /// Invokes the function on the queue's next batch and settles it; true if a retry is due.
    async fn invoke(&self, shard: &Shard, queue: &mut ShardQueue) -> Result<bool, WatchError> {
        let batch: Vec<&Pending> = queue.batch().collect();
        let len = batch.len();
        let first = batch[0].sequence_number.clone();
        let last = batch[len - 1].sequence_number.clone();
        let event = json!({"Records": batch.iter().map(|p| &p.record).collect::<Vec<_>>()});
        if let Some(age) = batch[len - 1]
            .record
            .pointer("/dynamodb/ApproximateCreationDateTime")
            .and_then(Value::as_f64)
            .map(|created| chrono::Utc::now().timestamp_millis() as f64 - created * 1000.0)
        {
            self.stats
                .iterator_age_ms
                .store(age.max(0.0) as u64, Ordering::Relaxed);
        }
        let lag = queue.head_waited().unwrap_or_default();
        self.stats
            .lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        let retries_before = queue.attempts();
        Stats::add(&self.stats.invocations, 1);
        let invoked = tokio::time::timeout(self.options.timeout, self.function.invoke(event)).await;
        let (answer, invocation_error) = match invoked {
            Err(_) => (
                Answer::Error(format!(
                    "invocation timed out after {:?}",
                    self.options.timeout
                )),
                true,
            ),
            Ok(Err(error)) => (Answer::Error(error.0), true),
            Ok(Ok(response)) => (
                Answer::Response(
                    response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                ),
                false,
            ),
        };
        let before = queue.len();
        let settled = queue.settle(len, answer);
        Stats::sub(&self.stats.pending, (before - queue.len()) as u64);
        if !matches!(settled, Settled::Done { .. }) {
            Stats::add(&self.stats.failed_invocations, 1);
        }
        let retry = matches!(settled, Settled::Retry { .. } | Settled::Bisected { .. });
        let outcome = match settled {
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
            Settled::GaveUp(range) => self.give_up(shard, range, invocation_error).await?,
        };
        if let Some(observer) = &self.observer {
            observer(&Invocation {
                shard_id: shard.id.clone(),
                first_sequence_number: first,
                last_sequence_number: last,
                records: len,
                retries_before,
                outcome,
            });
        }
        Ok(retry)
    }

    async fn give_up(
        &self,
        shard: &Shard,
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
            failures_file = ?self.options.failures_file,
            "retries exhausted; giving the range up"
        );
        if let Some(path) = &self.options.failures_file {
            let origin = Origin {
                stream_arn: &self.stream_arn,
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
}

/// The shards to read now: not finished, and whose parent is finished or gone from the stream
/// (trimmed), so that a key's records are always read in order across a split.
fn readable(listed: &[Shard], finished: impl Fn(&str) -> bool) -> Vec<Shard> {
    let ids: HashSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    listed
        .iter()
        .filter(|shard| !finished(&shard.id))
        .filter(|shard| {
            shard
                .parent_id
                .as_deref()
                .is_none_or(|parent| !ids.contains(parent) || finished(parent))
        })
        .cloned()
        .collect()
}

/// One shard's place and queue while it is read.
struct ShardReader {
    queue: ShardQueue,
    /// Where a new iterator starts: after the last record read.
    position: Position,
    iterator: Option<String>,
    /// A closed shard read to its end.
    exhausted: bool,
}

/// Sleeps for `duration`, or less if the trigger is stopped meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard {
            id: id.to_owned(),
            parent_id: parent.map(str::to_owned),
            closed: false,
        }
    }

    fn ids(shards: Vec<Shard>) -> Vec<String> {
        shards.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn children_wait_for_their_parent_and_orphans_do_not() {
        let listed = [
            shard("parent", None),
            shard("child-a", Some("parent")),
            shard("child-b", Some("parent")),
            shard("orphan", Some("trimmed-away")),
        ];
        assert_eq!(ids(readable(&listed, |_| false)), ["parent", "orphan"]);
        assert_eq!(
            ids(readable(&listed, |id| id == "parent")),
            ["child-a", "child-b", "orphan"]
        );
        assert!(readable(&listed, |_| true).is_empty());
    }

    #[test]
    fn the_progress_line_names_every_count() {
        let stats = StatsSnapshot {
            records_read: 98,
            records_filtered_out: 8,
            invocations: 2,
            failed_invocations: 1,
            ranges_given_up: 1,
            records_given_up: 3,
            pending: 4,
            lag_ms: 1250,
            iterator_age_ms: 60_000,
        };
        assert_eq!(
            stats.to_string(),
            "read 98  filtered 8  invoked 2 (failed 1)  given up 3  pending 4  lag 1.2s"
        );
    }
}
