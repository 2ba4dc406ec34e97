//! Reading one shard: its iterator (a fresh one from where reading is when it expires), GetRecords
//! pages turned into Lambda's records (`lambda_record`), the template's filter, and the lanes
//! (ParallelizationFactor) the records it passes queue in, each partition key in one lane. It
//! knows when a lane's batch is ready (full, the batching window over, a retry due, the shard
//! caught up) and where reading resumes with nothing acknowledged lost. The queues' batching and
//! retry rules are `batching`'s; which shards to read, `shards`'s.

use super::shards::ShardState;
use super::stats::Stats;
use super::WatchError;
use crate::event_source_mapping::batching::{Pending, RetryPolicy, ShardQueue};
use crate::event_source_mapping::lambda_record;
use crate::event_source_mapping::stream::{self, Page, Position, StreamError};
use crate::filter::EventFilter;
use aws_sdk_dynamodbstreams::types::Record;
use aws_sdk_dynamodbstreams::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What every shard's reader reads with: the client, the template's filter, the counts.
pub(super) struct Source<'t> {
    pub(super) streams: &'t Client,
    pub(super) filter: Option<&'t EventFilter>,
    pub(super) stats: &'t Stats,
}

/// One shard's place and queues while it is read.
pub(super) struct ShardReader {
    /// One queue per lane (ParallelizationFactor); a key's records are all in one.
    pub(super) queues: Vec<ShardQueue>,
    /// When each lane may retry its failed batch.
    pub(super) retry_at: Vec<Option<Instant>>,
    /// Where a new iterator starts: after the last record read.
    position: Position,
    iterator: Option<String>,
    /// A closed shard read to its end.
    pub(super) exhausted: bool,
    /// The stream this reader reads, and the trigger's generation when it started.
    pub(super) stream_arn: String,
    pub(super) generation: u64,
    /// Empty pages in a row (several mean caught up).
    pub(super) empty_pages: u32,
    /// When the records now pending began to gather (the batching window's start).
    pub(super) window_start: Option<Instant>,
}

impl ShardReader {
    /// A reader from `state`, with `lanes` queues under `policy`.
    pub(super) fn new(
        state: ShardState,
        policy: RetryPolicy,
        lanes: usize,
        stream_arn: String,
        generation: u64,
    ) -> Self {
        Self {
            queues: (0..lanes).map(|_| ShardQueue::new(policy)).collect(),
            retry_at: vec![None; lanes],
            position: state.position,
            iterator: state.iterator,
            exhausted: false,
            stream_arn,
            generation,
            empty_pages: 0,
            window_start: None,
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.queues.iter().map(ShardQueue::len).sum()
    }

    /// Where reading resumes with nothing acknowledged lost: the earliest record still pending
    /// in any lane, or after the last record read when none is.
    pub(super) fn acknowledged(&self) -> Position {
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

    /// Where the next reader of this shard starts: records read but not acknowledged are read
    /// again, from the first of them.
    pub(super) fn into_state(self, finished: bool) -> ShardState {
        let (position, iterator) = if self.pending() > 0 {
            (self.acknowledged(), None)
        } else {
            (self.position, self.iterator)
        };
        ShardState {
            position,
            iterator,
            finished,
        }
    }

    /// Reads a page if the lanes have room (`batch_size` records each); true if the stream had
    /// nothing more for now (an empty page).
    pub(super) async fn fill(
        &mut self,
        source: &Source<'_>,
        shard_id: &str,
        batch_size: usize,
    ) -> Result<bool, WatchError> {
        let room = batch_size * self.queues.len();
        if self.exhausted || self.pending() >= room {
            return Ok(false);
        }
        let caught_up = self.read_page(source, shard_id).await? == 0;
        if caught_up {
            self.empty_pages += 1;
        } else {
            self.empty_pages = 0;
        }
        if self.pending() == 0 {
            self.window_start = None;
        } else {
            self.window_start.get_or_insert_with(Instant::now);
        }
        Ok(caught_up)
    }

    /// Reads one page into the queues; returns how many records the stream gave.
    async fn read_page(
        &mut self,
        source: &Source<'_>,
        shard_id: &str,
    ) -> Result<usize, WatchError> {
        let Some(page) = self.next_page(source.streams, shard_id).await? else {
            self.exhausted = true;
            return Ok(0);
        };
        self.enqueue(source, &page.records)?;
        self.iterator = page.next_iterator;
        self.exhausted = self.iterator.is_none();
        Ok(page.records.len())
    }

    /// The next GetRecords page; `None` when the shard has no iterator any more (closed and read).
    async fn next_page(
        &mut self,
        streams: &Client,
        shard_id: &str,
    ) -> Result<Option<Page>, WatchError> {
        let iterator = match self.iterator.take() {
            Some(iterator) => iterator,
            None => match self.open_iterator(streams, shard_id).await? {
                Some(iterator) => iterator,
                None => return Ok(None),
            },
        };
        match stream::records(streams, &iterator).await {
            Ok(page) => return Ok(Some(page)),
            // A fresh iterator from where we are: nothing is skipped or read twice.
            Err(StreamError::ExpiredIterator) => {}
            Err(StreamError::Trimmed) => self.skip_to_trim_horizon(shard_id),
            Err(error) => {
                self.iterator = Some(iterator);
                return Err(error.into());
            }
        }
        let Some(fresh) = self.open_iterator(streams, shard_id).await? else {
            return Ok(None);
        };
        Ok(Some(stream::records(streams, &fresh).await?))
    }

    /// An iterator at where reading is, or at the trim horizon if that position was trimmed.
    async fn open_iterator(
        &mut self,
        streams: &Client,
        shard_id: &str,
    ) -> Result<Option<String>, StreamError> {
        let arn = &self.stream_arn;
        match stream::iterator(streams, arn, shard_id, &self.position).await {
            Err(StreamError::Trimmed) => {
                self.skip_to_trim_horizon(shard_id);
                stream::iterator(streams, &self.stream_arn, shard_id, &self.position).await
            }
            opened => opened,
        }
    }

    /// The stream no longer has the records at our position: reading goes on from the oldest
    /// record it has. Retrying the same iterator would fail for ever and read nothing more.
    fn skip_to_trim_horizon(&mut self, shard_id: &str) {
        match &self.position {
            // Nothing was read from the shard yet (and a LATEST iterator only trims when the shard
            // was empty at the first look), so nothing is skipped: DynamoDB Local's case.
            Position::TrimHorizon | Position::Latest => {
                tracing::debug!(shard = %shard_id, "the iterator was before the shard's oldest record; reading from the trim horizon");
            }
            Position::At(sequence_number) | Position::After(sequence_number) => {
                tracing::warn!(shard = %shard_id, after = %sequence_number, "records after this sequence number were trimmed from the stream before they were read; reading on from the trim horizon");
            }
        }
        self.position = Position::TrimHorizon;
    }

    /// Counts the page's records and queues those the filter passes, each in its key's lane.
    fn enqueue(&mut self, source: &Source<'_>, records: &[Record]) -> Result<(), WatchError> {
        let lanes = self.queues.len();
        for record in records {
            let sequence_number = lambda_record::sequence_number(record)?.to_owned();
            let event_record = lambda_record::lambda_record(record, &self.stream_arn)?;
            Stats::add(&source.stats.records_read, 1);
            self.position = Position::After(sequence_number.clone());
            if source.filter.is_none_or(|f| f.matches(&event_record)) {
                let lane = lane_of(&event_record, lanes);
                self.queues[lane].push(Pending {
                    sequence_number,
                    record: event_record,
                });
                Stats::add(&source.stats.pending, 1);
            } else {
                Stats::add(&source.stats.records_filtered_out, 1);
            }
        }
        Ok(())
    }

    /// The lanes with a batch to invoke: a retry waiting, a full batch, the batching window over,
    /// a closed shard's last records, or (`drain`) nothing more to wait for.
    pub(super) fn ready(&self, batching_window: Duration, drained: bool) -> Vec<usize> {
        let window_over = self
            .window_start
            .is_some_and(|t| t.elapsed() >= batching_window);
        (0..self.queues.len())
            .filter(|&i| {
                let queue = &self.queues[i];
                !queue.is_empty()
                    && (self.retry_at[i].is_some()
                        || queue.is_full()
                        || window_over
                        || self.exhausted
                        || drained)
            })
            .collect()
    }

    /// Of the `ready` lanes, those not waiting out a retry delay at `now`.
    pub(super) fn due(&self, ready: &[usize], now: Instant) -> Vec<usize> {
        ready
            .iter()
            .copied()
            .filter(|&i| self.retry_at[i].is_none_or(|at| at <= now))
            .collect()
    }

    /// The first retry time among the `ready` lanes.
    pub(super) fn first_retry(&self, ready: &[usize]) -> Option<Instant> {
        ready.iter().filter_map(|&i| self.retry_at[i]).min()
    }

    /// How long to wait for more records: a poll interval, or what is left of the batching window
    /// if that is less.
    pub(super) fn idle_wait(&self, batching_window: Duration, poll_interval: Duration) -> Duration {
        let window_left = self
            .window_start
            .map(|t| batching_window.saturating_sub(t.elapsed()))
            .unwrap_or(poll_interval);
        poll_interval.min(window_left)
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
