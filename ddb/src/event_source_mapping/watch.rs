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
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use messaging_stream::event;
use messaging_stream::handler::{self, App, HandlerError};
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
    /// How often to look for new shards (and for a re-created table) while following the stream.
    pub discovery_interval: Duration,
    /// Records older than this (by ApproximateCreationDateTime) are given up without invoking
    /// (`MaximumRecordAgeInSeconds`; `None` = -1, for ever).
    pub max_record_age: Option<Duration>,
    /// Batches of one shard invoked at once (`ParallelizationFactor`, 1 to 10); records of one
    /// partition key always go to the same one, in order.
    pub parallelization: usize,
    /// Where each shard's position is kept, so that a restart resumes after what was
    /// acknowledged (`None`: every run starts at `from`).
    pub checkpoint: Option<PathBuf>,
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
            max_record_age: Some(Duration::from_secs(3600)),
            parallelization: 1,
            checkpoint: None,
        }
    }
}

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

/// Why the trigger stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    FailuresFile(#[from] FailuresFileError),
    #[error(transparent)]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The progress line, every count but `iterator_age_ms` (DynamoDB Local's minute-rounded
    /// creation times make it up to a minute high locally; `--json` has it):
    /// `read 98  filtered 8  invoked 2 (failed 0)  given up 0 (ranges 0)  pending 0  lag 1.2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {}  filtered {}  invoked {} (failed {})  given up {} (ranges {})  pending {}  lag {:.1}s",
            self.records_read,
            self.records_filtered_out,
            self.invocations,
            self.failed_invocations,
            self.records_given_up,
            self.ranges_given_up,
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
    table: String,
    /// The stream followed now; a re-created table has a new one.
    stream_arn: Mutex<String>,
    options: WatchOptions,
    filter: Option<EventFilter>,
    observer: Option<Observer>,
    stats: Arc<Stats>,
    shards: Mutex<Shards>,
    /// Bumped when the table's stream changes: readers of the old one stop.
    generation: AtomicU64,
    /// Each shard's acknowledged position, for the checkpoint file.
    positions: Mutex<HashMap<String, Position>>,
}

impl Trigger {
    /// Finds `table`'s stream; reading starts at the first [`Trigger::drain`] or [`Trigger::run_until`].
    /// With a checkpoint file of the same stream, each shard resumes where it was acknowledged.
    pub async fn new(
        streams: aws_sdk_dynamodbstreams::Client,
        function: impl Function + 'static,
        table: &str,
        options: WatchOptions,
    ) -> Result<Self, WatchError> {
        let stream_arn = stream::stream_arn(&streams, table).await?;
        let mut shards = Shards::default();
        let mut positions = HashMap::new();
        if let Some(path) = &options.checkpoint {
            if let Some(saved) = super::checkpoint::load(path)? {
                if saved.stream_arn == stream_arn {
                    shards.discovered = true;
                    for (id, position) in saved.shards {
                        let finished = position.is_none();
                        shards.states.insert(
                            id.clone(),
                            ShardState {
                                position: position.clone().unwrap_or(Position::TrimHorizon),
                                iterator: None,
                                finished,
                            },
                        );
                        positions.insert(id, position.unwrap_or(Position::TrimHorizon));
                    }
                } else {
                    tracing::warn!(checkpoint = %path.display(), saved = %saved.stream_arn, now = %stream_arn, "the checkpoint is of another stream (the table was re-created): starting afresh");
                }
            }
        }
        Ok(Self {
            streams,
            function: Arc::new(function),
            table: table.to_owned(),
            stream_arn: Mutex::new(stream_arn),
            options,
            filter: None,
            observer: None,
            stats: Arc::default(),
            shards: Mutex::new(shards),
            generation: AtomicU64::new(0),
            positions: Mutex::new(positions),
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

    /// The stream followed now.
    pub fn stream_arn(&self) -> String {
        self.stream_arn.lock().expect("stream arn lock").clone()
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

    /// Follows a re-created table: when the table's newest stream is not the one followed, says so
    /// and starts on the new one from its trim horizon (the old stream's readers stop).
    async fn follow_new_stream(&self) -> Result<(), WatchError> {
        let newest = match stream::stream_arn(&self.streams, &self.table).await {
            Ok(arn) => arn,
            // Dropped and not (yet) re-created: keep trying the old stream until it is.
            Err(StreamError::NoStream { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let old = {
            let mut current = self.stream_arn.lock().expect("stream arn lock");
            if *current == newest {
                return Ok(());
            }
            std::mem::replace(&mut *current, newest.clone())
        };
        tracing::warn!(table = %self.table, old = %old, new = %newest, "the table was re-created: following its new stream from the trim horizon");
        eprintln!(
            "ddb watch: table {} was re-created: following its new stream {newest} from its trim horizon",
            self.table
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
        {
            let mut shards = self.shards.lock().expect("shard states lock");
            shards.states.clear();
            // Not a first look: the new stream is read from its trim horizon even with LATEST.
            shards.discovered = true;
        }
        self.positions.lock().expect("positions lock").clear();
        self.save_checkpoint()?;
        Ok(())
    }

    /// Lists the shards and returns those to read now: not finished, and whose parent is finished
    /// or gone from the stream (trimmed).
    async fn discover(&self, once: bool) -> Result<Vec<Shard>, WatchError> {
        if !once {
            if let Err(error) = self.follow_new_stream().await {
                tracing::warn!(error = %error, "looking for the table's stream failed; will try again");
            }
        }
        let arn = self.stream_arn();
        let listed = match stream::shards(&self.streams, &arn).await {
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
            .unwrap_or(ShardState {
                position: Position::TrimHorizon,
                iterator: None,
                finished: false,
            });
        let policy = RetryPolicy {
            batch_size: self.options.batch_size,
            bisect: self.options.bisect,
            max_retries: self.options.max_retries,
        };
        let lanes = self.options.parallelization.clamp(1, 10);
        let mut reader = ShardReader {
            queues: (0..lanes).map(|_| ShardQueue::new(policy)).collect(),
            retry_at: vec![None; lanes],
            position: state.position,
            iterator: state.iterator,
            exhausted: false,
            stream_arn: self.stream_arn(),
            generation: self.generation.load(Ordering::SeqCst),
        };
        let mut end = self.follow(&shard, &mut reader, once, &mut stop).await;
        // Records read but not checkpointed are read again next time, from the first of them.
        Stats::sub(&self.stats.pending, reader.pending() as u64);
        if reader.pending() > 0 {
            reader.position = reader.acknowledged();
            reader.iterator = None;
        }
        let finished = matches!(end, Ok(ShardEnd::Closed));
        if reader.generation == self.generation.load(Ordering::SeqCst) {
            let saved = ShardState {
                position: reader.position.clone(),
                iterator: reader.iterator.clone(),
                finished,
            };
            self.shards
                .lock()
                .expect("shard states lock")
                .states
                .insert(shard.id.clone(), saved);
            if let Err(error) = self.acknowledge(&shard.id, reader.position.clone(), finished) {
                end = end.and(Err(error));
            }
        }
        (shard.id, end)
    }

    /// Records a shard's acknowledged position and writes the checkpoint file, if there is one.
    fn acknowledge(
        &self,
        shard_id: &str,
        position: Position,
        finished: bool,
    ) -> Result<(), WatchError> {
        if self.options.checkpoint.is_none() {
            return Ok(());
        }
        {
            let mut positions = self.positions.lock().expect("positions lock");
            if finished {
                positions.remove(shard_id);
            } else {
                positions.insert(shard_id.to_owned(), position);
            }
        }
        if finished {
            self.shards
                .lock()
                .expect("shard states lock")
                .states
                .entry(shard_id.to_owned())
                .and_modify(|s| s.finished = true);
        }
        self.save_checkpoint()
    }

    fn save_checkpoint(&self) -> Result<(), WatchError> {
        let Some(path) = &self.options.checkpoint else {
            return Ok(());
        };
        let positions = self.positions.lock().expect("positions lock").clone();
        let finished: Vec<String> = self
            .shards
            .lock()
            .expect("shard states lock")
            .states
            .iter()
            .filter(|(_, s)| s.finished)
            .map(|(id, _)| id.clone())
            .collect();
        let mut shards: HashMap<String, Option<Position>> =
            positions.into_iter().map(|(id, p)| (id, Some(p))).collect();
        for id in finished {
            shards.insert(id, None);
        }
        super::checkpoint::save(
            path,
            &super::checkpoint::Checkpoint {
                stream_arn: self.stream_arn(),
                shards,
            },
        )?;
        Ok(())
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
        loop {
            if *stop.borrow() || reader.generation != self.generation.load(Ordering::SeqCst) {
                return Ok(ShardEnd::Stopped);
            }
            let mut caught_up = false;
            let room = options.batch_size * reader.queues.len();
            if !reader.exhausted && reader.pending() < room {
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
                if reader.pending() == 0 {
                    window_start = None;
                } else {
                    window_start.get_or_insert_with(Instant::now);
                }
            }
            let window_over = window_start.is_some_and(|t| t.elapsed() >= options.batching_window);
            let ready: Vec<usize> = (0..reader.queues.len())
                .filter(|&i| {
                    let queue = &reader.queues[i];
                    !queue.is_empty()
                        && (reader.retry_at[i].is_some()
                            || queue.is_full()
                            || window_over
                            || reader.exhausted
                            || (once && caught_up))
                })
                .collect();
            if !ready.is_empty() {
                // Lanes waiting out a retry delay wait; if every ready lane does, wait for the first.
                let now = Instant::now();
                let due: Vec<usize> = ready
                    .iter()
                    .copied()
                    .filter(|&i| reader.retry_at[i].is_none_or(|at| at <= now))
                    .collect();
                if due.is_empty() {
                    let first = ready
                        .iter()
                        .filter_map(|&i| reader.retry_at[i])
                        .min()
                        .unwrap_or(now);
                    pause(stop, first.saturating_duration_since(now)).await;
                    continue;
                }
                let mut lanes: Vec<(usize, &mut ShardQueue)> = reader
                    .queues
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| due.contains(i))
                    .collect();
                let arn = reader.stream_arn.clone();
                let results = futures::future::join_all(
                    lanes
                        .iter_mut()
                        .map(|(_, queue)| self.invoke(shard, &arn, queue)),
                )
                .await;
                let lane_ids: Vec<usize> = lanes.iter().map(|(i, _)| *i).collect();
                for (i, result) in lane_ids.into_iter().zip(results) {
                    reader.retry_at[i] = if result? {
                        Some(Instant::now() + options.retry_delay)
                    } else {
                        None
                    };
                }
                if reader.pending() == 0 {
                    window_start = None;
                }
                if reader.generation == self.generation.load(Ordering::SeqCst) {
                    self.acknowledge(&shard.id, reader.acknowledged(), false)?;
                }
                continue;
            }
            if reader.pending() == 0 {
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

    /// Reads one page into the queues; returns how many records the stream gave.
    async fn read_page(
        &self,
        shard_id: &str,
        reader: &mut ShardReader,
    ) -> Result<usize, WatchError> {
        let arn = reader.stream_arn.clone();
        let iterator = match reader.iterator.take() {
            Some(iterator) => iterator,
            None => {
                match stream::iterator(&self.streams, &arn, shard_id, &reader.position).await? {
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
                    stream::iterator(&self.streams, &arn, shard_id, &reader.position).await?;
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
        let lanes = reader.queues.len();
        for record in &page.records {
            let sequence_number = lambda_record::sequence_number(record)?.to_owned();
            let event_record = lambda_record::lambda_record(record, &arn)?;
            Stats::add(&self.stats.records_read, 1);
            reader.position = Position::After(sequence_number.clone());
            if self
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(&event_record))
            {
                let lane = lane_of(&event_record, lanes);
                reader.queues[lane].push(Pending {
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
    async fn invoke(
        &self,
        shard: &Shard,
        stream_arn: &str,
        queue: &mut ShardQueue,
    ) -> Result<bool, WatchError> {
        if let Some(max_age) = self.options.max_record_age {
            let now_ms = chrono::Utc::now().timestamp_millis() as f64;
            let expired = queue.expire(
                |pending| {
                    pending
                        .record
                        .pointer("/dynamodb/ApproximateCreationDateTime")
                        .and_then(Value::as_f64)
                        .is_some_and(|created| {
                            now_ms - created * 1000.0 > max_age.as_millis() as f64
                        })
                },
                format!(
                    "older than MaximumRecordAgeInSeconds ({} s): discarded without invoking",
                    max_age.as_secs()
                ),
            );
            if let Some(range) = expired {
                Stats::sub(&self.stats.pending, range.records.len() as u64);
                let outcome = self.give_up(shard, stream_arn, range, false).await?;
                if let Some(observer) = &self.observer {
                    if let Outcome::GaveUp { start, end, .. } = &outcome {
                        observer(&Invocation {
                            shard_id: shard.id.clone(),
                            first_sequence_number: start.clone(),
                            last_sequence_number: end.clone(),
                            records: 0,
                            retries_before: 0,
                            outcome: outcome.clone(),
                        });
                    }
                }
                if queue.is_empty() {
                    return Ok(false);
                }
            }
        }
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
        let invoked = tokio::time::timeout(
            self.options.timeout,
            self.function.invoke_with_reasons(event),
        )
        .await;
        let mut reasons = Vec::new();
        let (answer, invocation_error) = match invoked {
            Err(_) => (
                Answer::Error(format!(
                    "invocation timed out after {:?}",
                    self.options.timeout
                )),
                true,
            ),
            Ok(Err(error)) => (Answer::Error(error.0), true),
            Ok(Ok(Invoked {
                response,
                reasons: said,
            })) => {
                reasons = said;
                (
                    Answer::Response(
                        response
                            .batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier)
                            .collect(),
                    ),
                    false,
                )
            }
        };
        let before = queue.len();
        let settled = with_reasons(queue.settle(len, answer), &reasons);
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
            Settled::GaveUp(range) => {
                self.give_up(shard, stream_arn, range, invocation_error)
                    .await?
            }
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
            failures_file = ?self.options.failures_file,
            "retries exhausted; giving the range up"
        );
        if let Some(path) = &self.options.failures_file {
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
}

/// The lane (of `lanes`) of a record: by its partition key, so one key's records stay in order.
fn lane_of(record: &Value, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record
        .pointer("/dynamodb/Keys/pk")
        .map(Value::to_string)
        .unwrap_or_default()
        .hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
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

/// One shard's place and queues while it is read.
struct ShardReader {
    /// One queue per lane (ParallelizationFactor); a key's records are all in one.
    queues: Vec<ShardQueue>,
    /// When each lane may retry its failed batch.
    retry_at: Vec<Option<Instant>>,
    /// Where a new iterator starts: after the last record read.
    position: Position,
    iterator: Option<String>,
    /// A closed shard read to its end.
    exhausted: bool,
    /// The stream this reader reads, and the trigger's generation when it started.
    stream_arn: String,
    generation: u64,
}

impl ShardReader {
    fn pending(&self) -> usize {
        self.queues.iter().map(ShardQueue::len).sum()
    }

    /// Where reading resumes with nothing acknowledged lost: the earliest record still pending
    /// in any lane, or after the last record read when none is.
    fn acknowledged(&self) -> Position {
        let earliest = self
            .queues
            .iter()
            .filter_map(|q| q.head())
            .map(|p| &p.sequence_number)
            .min_by(|a, b| (a.len(), a.as_str()).cmp(&(b.len(), b.as_str())));
        match earliest {
            Some(sequence_number) => Position::At(sequence_number.clone()),
            None => self.position.clone(),
        }
    }
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
            ranges_given_up: 5,
            records_given_up: 3,
            pending: 4,
            lag_ms: 1250,
            iterator_age_ms: 60_000,
        };
        assert_eq!(
            stats.to_string(),
            "read 98  filtered 8  invoked 2 (failed 1)  given up 3 (ranges 5)  pending 4  lag 1.2s"
        );
        // Every field of the snapshot, as serde lists them (so a count added later is covered):
        // changing it alone changes the line, but for the iterator age, which the line leaves to
        // `--json` on purpose.
        let serde_json::Value::Object(fields) = serde_json::to_value(stats).unwrap() else {
            panic!("a snapshot serialises as an object");
        };
        assert_eq!(fields.len(), 9);
        for (name, value) in &fields {
            let mut changed = fields.clone();
            changed[name] = (value.as_u64().unwrap() * 10 + 7).into();
            let changed: StatsSnapshot =
                serde_json::from_value(serde_json::Value::Object(changed)).unwrap();
            let shown = changed.to_string() != stats.to_string();
            assert_eq!(
                shown,
                name != "iterator_age_ms",
                "{name} in the progress line"
            );
        }
    }
}
