//! `ddb watch`: the event source mapping, locally. Reads a table's stream (every shard, closed
//! parents before their children, new shards as they appear), turns the records into Lambda's
//! event JSON, applies the template's filter, batches, invokes the function in-process and honours
//! its answer as Lambda does (`batching`), writing given-up ranges to a failures file (`failures`).
//!
//! A library API so that tests and the soak can drive it: [`Trigger::drain`] reads until every
//! shard is caught up (`--once`), [`Trigger::run_until`] follows the stream until a future
//! completes (Ctrl-C in the CLI). The function is anything that implements [`Function`];
//! [`App`](messaging_stream::handler::App) runs the real handler. The trigger keeps its place
//! between runs, so `drain` can be called in a loop. Message text is never logged: only sequence
//! numbers, counts and errors.
//!
//! Its parts: `options` (the settings and timings), `shards` (which shards of which stream, from
//! where: lineage, a re-created table, the checkpoint), `reader` (one shard's iterator, pages,
//! filter and lanes), `invoking` (a batch to the function, its answer settled, ranges given up)
//! and `stats` (the counts `ddb watch` prints). This module is the loop that ties them: one
//! reader per readable shard, each alternating reading and invoking its ready lanes.

mod invoking;
mod options;
mod reader;
mod shards;
mod stats;

pub use invoking::{Function, FunctionError, Invocation, Invoked, Outcome};
pub use options::WatchOptions;
pub use stats::{Stats, StatsSnapshot};

use super::batching::{RetryPolicy, ShardQueue};
use super::checkpoint::CheckpointError;
use super::failures::FailuresFileError;
use super::lambda_record::RecordError;
use super::stream::{Shard, StreamError};
use crate::filter::EventFilter;
use futures::stream::{FuturesUnordered, StreamExt};
use invoking::Invoker;
use reader::{ShardReader, Source};
use shards::Shards;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    Checkpoint(#[from] CheckpointError),
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
    shards: Shards,
    invoker: Invoker,
    options: WatchOptions,
    filter: Option<EventFilter>,
    stats: Arc<Stats>,
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
        let shards = Shards::open(
            streams.clone(),
            table,
            options.from,
            options.checkpoint.clone(),
        )
        .await?;
        let stats = Arc::<Stats>::default();
        Ok(Self {
            streams,
            shards,
            invoker: Invoker::new(Arc::new(function), &options, Arc::clone(&stats)),
            options,
            filter: None,
            stats,
        })
    }

    /// Only records the filter passes reach the function (as with the template's FilterCriteria).
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Calls `observer` after every invocation.
    pub fn with_observer(mut self, observer: impl Fn(&Invocation) + Send + Sync + 'static) -> Self {
        self.invoker.set_observer(Box::new(observer));
        self
    }

    /// The stream followed now.
    pub fn stream_arn(&self) -> String {
        self.shards.stream_arn()
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

    /// Starts a reader on each shard as it becomes readable, until all are caught up (`once`) or
    /// the trigger stops; following the stream, looks for new shards every discovery interval.
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
                for shard in self.shards.discover(once).await? {
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

    /// Reads one shard until it ends, is caught up (`once`), or the trigger stops; saves its place.
    async fn read_shard(
        &self,
        shard: Shard,
        once: bool,
        mut stop: watch::Receiver<bool>,
    ) -> (String, Result<ShardEnd, WatchError>) {
        let policy = RetryPolicy {
            batch_size: self.options.batch_size,
            bisect: self.options.bisect,
            max_retries: self.options.max_retries,
        };
        let mut reader = ShardReader::new(
            self.shards.state(&shard.id),
            policy,
            self.options.parallelization.clamp(1, 10),
            self.shards.stream_arn(),
            self.shards.generation(),
        );
        let mut end = self.follow(&shard, &mut reader, once, &mut stop).await;
        // Records read but not checkpointed are read again next time, from the first of them.
        Stats::sub(&self.stats.pending, reader.pending() as u64);
        let generation = reader.generation;
        let state = reader.into_state(matches!(end, Ok(ShardEnd::Closed)));
        if self.shards.is_current(generation) {
            if let Err(error) = self.shards.put_away(&shard.id, state) {
                end = end.and(Err(error));
            }
        }
        (shard.id, end)
    }

    /// One shard's loop: reads while its lanes have room, invokes the lanes that are ready, and
    /// says how the shard ended. Following the stream, a failed read is logged and tried again.
    async fn follow(
        &self,
        shard: &Shard,
        reader: &mut ShardReader,
        once: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<ShardEnd, WatchError> {
        let options = &self.options;
        let source = Source {
            streams: &self.streams,
            filter: self.filter.as_ref(),
            stats: &self.stats,
        };
        loop {
            if *stop.borrow() || !self.shards.is_current(reader.generation) {
                return Ok(ShardEnd::Stopped);
            }
            let caught_up = match reader.fill(&source, &shard.id, options.batch_size).await {
                Ok(caught_up) => caught_up,
                Err(WatchError::Stream(error)) if !once => {
                    tracing::warn!(shard = %shard.id, error = %error, "reading the shard failed; will try again");
                    pause(stop, options.poll_interval.max(Duration::from_secs(1))).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let ready = reader.ready(options.batching_window, once && caught_up);
            if !ready.is_empty() {
                self.invoke_ready(shard, reader, &ready, stop).await?;
                continue;
            }
            if reader.pending() == 0 {
                if reader.exhausted {
                    return Ok(ShardEnd::Closed);
                }
                if once && reader.empty_pages >= options.drained_after {
                    return Ok(ShardEnd::Drained);
                }
            }
            if caught_up || reader.exhausted {
                let wait = reader.idle_wait(options.batching_window, options.poll_interval);
                pause(stop, wait).await;
            }
        }
    }

    /// Invokes the `ready` lanes at once (those waiting out a retry delay wait; if every ready lane
    /// does, waits for the first), then acknowledges where the shard now is.
    async fn invoke_ready(
        &self,
        shard: &Shard,
        reader: &mut ShardReader,
        ready: &[usize],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), WatchError> {
        let now = Instant::now();
        let due = reader.due(ready, now);
        if due.is_empty() {
            let first = reader.first_retry(ready).unwrap_or(now);
            pause(stop, first.saturating_duration_since(now)).await;
            return Ok(());
        }
        let arn = reader.stream_arn.clone();
        let mut lanes: Vec<(usize, &mut ShardQueue)> = reader
            .queues
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| due.contains(i))
            .collect();
        let results = futures::future::join_all(
            lanes
                .iter_mut()
                .map(|(_, queue)| self.invoker.invoke(shard, &arn, queue)),
        )
        .await;
        let lane_ids: Vec<usize> = lanes.iter().map(|(i, _)| *i).collect();
        for (i, result) in lane_ids.into_iter().zip(results) {
            reader.retry_at[i] = if result? {
                Some(Instant::now() + self.options.retry_delay)
            } else {
                None
            };
        }
        if reader.pending() == 0 {
            reader.window_start = None;
        }
        if self.shards.is_current(reader.generation) {
            self.shards
                .acknowledge(&shard.id, reader.acknowledged(), false)?;
        }
        Ok(())
    }
}

/// Sleeps for `duration`, or less if the trigger is stopped meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}
