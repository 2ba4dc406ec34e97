//! The event source mapping's settings as `ddb watch` applies them (BatchSize, the batching
//! window, bisect, retries, record age, ParallelizationFactor, the on-failure destination, the
//! function's Timeout), where reading starts, and the local loop's timings. Reading them from a
//! template is `mapping`'s; `ddb watch` turns those into these.

use crate::event_source_mapping::mapping::Start;
use std::path::PathBuf;
use std::time::Duration;

/// The event source mapping's settings, and the local loop's timings.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Where reading starts on the shards that are open when the trigger first looks.
    pub from: Start,
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
    /// Consecutive empty pages on a shard that mean "drained" for
    /// [`Trigger::drain`](super::Trigger::drain): one empty page is not enough, DynamoDB Streams
    /// may return one before the end of an open shard.
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
            from: Start::TrimHorizon,
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
