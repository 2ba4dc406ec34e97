//! The event source mapping's rules for one shard, without I/O: which records form the next batch,
//! and what the function's answer does to the shard's queue.
//!
//! As Lambda does it for a stream: a success checkpoints the batch; a reported `itemIdentifier`
//! checkpoints the records before it and retries from it; an invocation error (or an identifier
//! that is not in the batch) retries the whole batch, first split in halves when bisecting is on
//! (a split is not a retry); after `max_retries` retries the failed range is given up, for the
//! on-failure destination, and the shard moves on. The trigger (`watch`) does the reading and
//! invoking; the tests here drive the rules with made-up answers.

use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A record read from the shard and not yet checkpointed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub sequence_number: String,
    /// The record as Lambda delivers it.
    pub record: Value,
}

/// How a shard's batches are formed and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most records per invocation (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// Split a batch in two on an invocation error (`BisectBatchOnFunctionError`).
    pub bisect: bool,
    /// Retries of a failing record before its range is given up; `None` retries for ever
    /// (`MaximumRetryAttempts` -1).
    pub max_retries: Option<u32>,
}

/// What the function answered for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response: the `itemIdentifier`s of `batchItemFailures` (empty when all succeeded).
    Response(Vec<Option<String>>),
    /// An invocation error (the function failed, timed out, or answered something unreadable).
    Error(String),
}

/// What settling a batch did.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// The whole batch is checkpointed.
    Done { records: usize },
    /// The batch (or its tail) will be retried, starting at `from`; `attempt` failures so far.
    Retry {
        from: String,
        attempt: u32,
        error: String,
    },
    /// The batch was split; the next batch is its first `size` records. Not a retry.
    Bisected { size: usize, error: String },
    /// Retries exhausted: these records are given up (for the on-failure destination).
    GaveUp(FailedRange),
}

/// A range of records given up after its retries, with the last error.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRange {
    pub records: Vec<Pending>,
    /// Invocations that included the range's first record and failed.
    pub attempts: u32,
    pub error: String,
}

/// The records of one shard between reading and checkpointing.
#[derive(Debug, Clone)]
pub struct ShardQueue {
    policy: RetryPolicy,
    records: VecDeque<Pending>,
    /// When each record was pushed, in the same order.
    arrived: VecDeque<Instant>,
    /// Current batch cap: `batch_size`, or less while a bisected range is worked through.
    cap: usize,
    /// Records from the head still inside the range that was bisected.
    bisected: usize,
    /// Failed invocations that started at the current head record.
    attempts: u32,
}

impl ShardQueue {
    pub fn new(policy: RetryPolicy) -> Self {
        let policy = RetryPolicy {
            batch_size: policy.batch_size.max(1),
            ..policy
        };
        Self {
            policy,
            records: VecDeque::new(),
            arrived: VecDeque::new(),
            cap: policy.batch_size,
            bisected: 0,
            attempts: 0,
        }
    }

    pub fn push(&mut self, pending: Pending) {
        self.records.push_back(pending);
        self.arrived.push_back(Instant::now());
    }

    /// How long the oldest record has been in the queue.
    pub fn head_waited(&self) -> Option<Duration> {
        self.arrived.front().map(Instant::elapsed)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The oldest record not yet checkpointed.
    pub fn head(&self) -> Option<&Pending> {
        self.records.front()
    }

    /// Whether the queue holds a full batch (at the current cap).
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.cap
    }

    /// Failed invocations so far of the batch that starts at the head.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next batch: the first records, at most the current cap.
    pub fn batch(&self) -> impl Iterator<Item = &Pending> {
        self.records.iter().take(self.cap)
    }

    /// Applies the function's answer for the batch of `len` records that [`ShardQueue::batch`] gave.
    pub fn settle(&mut self, len: usize, answer: Answer) -> Settled {
        let len = len.min(self.records.len());
        let identifiers = match answer {
            Answer::Response(identifiers) if identifiers.is_empty() => {
                self.checkpoint(len);
                self.attempts = 0;
                return Settled::Done { records: len };
            }
            Answer::Response(identifiers) => identifiers,
            Answer::Error(error) => return self.whole_batch_failed(len, error),
        };
        // Lambda retries from the lowest sequence number reported; any identifier that is missing,
        // empty or not in the batch fails the whole batch.
        let mut positions = Vec::with_capacity(identifiers.len());
        for identifier in &identifiers {
            let found = identifier.as_deref().and_then(|id| {
                self.records
                    .iter()
                    .take(len)
                    .position(|p| p.sequence_number == id)
            });
            match found {
                Some(position) => positions.push(position),
                None => {
                    let error = format!(
                        "batchItemFailures names {identifier:?}, which is not a sequence number of the batch"
                    );
                    return self.whole_batch_failed(len, error);
                }
            }
        }
        let first = positions
            .into_iter()
            .min()
            .expect("identifiers is not empty");
        let error = format!(
            "the function reported itemIdentifier {}",
            self.records[first].sequence_number
        );
        if first > 0 {
            // The records before it succeeded; the reported one has failed once.
            self.checkpoint(first);
            self.attempts = 1;
        } else {
            self.attempts += 1;
        }
        self.after_failure(len - first, error)
    }

    fn whole_batch_failed(&mut self, len: usize, error: String) -> Settled {
        if self.policy.bisect && len > 1 {
            self.cap = len / 2;
            self.bisected = self.bisected.max(len);
            return Settled::Bisected {
                size: self.cap,
                error,
            };
        }
        self.attempts += 1;
        self.after_failure(len, error)
    }

    /// Gives up the records at the head for which `expired` holds (older than
    /// `MaximumRecordAgeInSeconds`: Lambda discards them without invoking the function).
    pub fn expire(
        &mut self,
        expired: impl Fn(&Pending) -> bool,
        error: String,
    ) -> Option<FailedRange> {
        let count = self.records.iter().take_while(|p| expired(p)).count();
        if count == 0 {
            return None;
        }
        let attempts = std::mem::take(&mut self.attempts);
        Some(FailedRange {
            records: self.take_front(count),
            attempts,
            error,
        })
    }

    fn after_failure(&mut self, len: usize, error: String) -> Settled {
        if self
            .policy
            .max_retries
            .is_some_and(|max| self.attempts > max)
        {
            let records = self.take_front(len);
            let attempts = std::mem::take(&mut self.attempts);
            return Settled::GaveUp(FailedRange {
                records,
                attempts,
                error,
            });
        }
        Settled::Retry {
            from: self.records[0].sequence_number.clone(),
            attempt: self.attempts,
            error,
        }
    }

    fn checkpoint(&mut self, count: usize) {
        self.take_front(count);
    }

    /// Removes `count` records from the head. The bisected range shrinks with them, and once it is
    /// through, the cap is back to the batch size.
    fn take_front(&mut self, count: usize) -> Vec<Pending> {
        self.arrived.drain(..count);
        self.bisected = self.bisected.saturating_sub(count);
        if self.bisected == 0 {
            self.cap = self.policy.batch_size;
        }
        self.records.drain(..count).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queue(n: usize, policy: RetryPolicy) -> ShardQueue {
        let mut queue = ShardQueue::new(policy);
        for i in 0..n {
            queue.push(Pending {
                sequence_number: format!("{:03}", i),
                record: json!({"i": i}),
            });
        }
        queue
    }

    fn policy(batch_size: usize, bisect: bool, max_retries: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            batch_size,
            bisect,
            max_retries,
        }
    }

    fn batch(queue: &ShardQueue) -> Vec<String> {
        queue.batch().map(|p| p.sequence_number.clone()).collect()
    }

    fn fail_at(seq: &str) -> Answer {
        Answer::Response(vec![Some(seq.to_owned())])
    }

    /// Runs the queue to empty against a function that fails every batch containing `poison`;
    /// returns the batches invoked and the ranges given up.
    fn run_with_poison(
        mut queue: ShardQueue,
        poison: &str,
        report_item: bool,
    ) -> (Vec<Vec<String>>, Vec<FailedRange>) {
        let (mut batches, mut given_up) = (Vec::new(), Vec::new());
        while !queue.is_empty() {
            let current = batch(&queue);
            assert!(batches.len() < 100, "no progress: {batches:?}");
            let answer = if !current.iter().any(|s| s == poison) {
                Answer::Response(vec![])
            } else if report_item {
                fail_at(poison)
            } else {
                Answer::Error("boom".into())
            };
            batches.push(current.clone());
            if let Settled::GaveUp(range) = queue.settle(current.len(), answer) {
                given_up.push(range);
            }
        }
        (batches, given_up)
    }

    #[test]
    fn success_checkpoints_the_batch() {
        let mut q = queue(5, policy(3, false, Some(2)));
        assert_eq!(batch(&q), ["000", "001", "002"]);
        assert_eq!(
            q.settle(3, Answer::Response(vec![])),
            Settled::Done { records: 3 }
        );
        assert_eq!(batch(&q), ["003", "004"]);
        assert!(q.head_waited().is_some());
        q.settle(2, Answer::Response(vec![]));
        assert!(q.is_empty() && q.head_waited().is_none());
    }

    #[test]
    fn an_item_failure_retries_from_that_record() {
        let mut q = queue(5, policy(3, false, Some(2)));
        let settled = q.settle(3, fail_at("001"));
        assert!(
            matches!(&settled, Settled::Retry { from, attempt: 1, .. } if from == "001"),
            "{settled:?}"
        );
        assert_eq!(batch(&q), ["001", "002", "003"]);
        // The lowest of several identifiers wins.
        let settled = q.settle(
            3,
            Answer::Response(vec![Some("003".into()), Some("002".into())]),
        );
        assert!(
            matches!(&settled, Settled::Retry { from, attempt: 1, .. } if from == "002"),
            "{settled:?}"
        );
        assert_eq!(batch(&q), ["002", "003", "004"]);
    }

    #[test]
    fn retries_are_bounded_then_the_range_is_given_up() {
        let mut q = queue(4, policy(10, false, Some(2)));
        // The first answer checkpoints 000-001; then 002 fails again.
        for expected in 1..=2 {
            let settled = q.settle(4, fail_at("002"));
            assert!(
                matches!(&settled, Settled::Retry { from, attempt, .. } if from == "002" && *attempt == expected),
                "{settled:?}"
            );
        }
        let Settled::GaveUp(range) = q.settle(2, fail_at("002")) else {
            panic!("expected the range to be given up");
        };
        assert_eq!(range.attempts, 3);
        let given_up: Vec<_> = range.records.iter().map(|p| &p.sequence_number).collect();
        assert_eq!(given_up, ["002", "003"]);
        assert!(range.error.contains("002"));
        assert!(q.is_empty());
        assert_eq!(q.attempts(), 0);
    }

    #[test]
    fn zero_retries_gives_up_at_the_first_failure_and_none_never_does() {
        let mut q = queue(2, policy(10, false, Some(0)));
        assert!(matches!(
            q.settle(2, Answer::Error("x".into())),
            Settled::GaveUp(FailedRange { attempts: 1, .. })
        ));
        let mut q = queue(2, policy(10, false, None));
        for _ in 0..50 {
            assert!(matches!(
                q.settle(2, Answer::Error("x".into())),
                Settled::Retry { .. }
            ));
        }
        assert_eq!(q.attempts(), 50);
    }

    #[test]
    fn an_identifier_outside_the_batch_fails_the_whole_batch() {
        for answer in [
            fail_at("999"),
            Answer::Response(vec![None]),
            Answer::Response(vec![Some(String::new())]),
        ] {
            let mut q = queue(3, policy(3, false, Some(5)));
            let settled = q.settle(3, answer);
            assert!(
                matches!(&settled, Settled::Retry { from, error, .. } if from == "000" && error.contains("not a sequence number")),
                "{settled:?}"
            );
            assert_eq!(q.len(), 3);
        }
    }

    #[test]
    fn bisecting_isolates_a_poison_record_without_spending_retries() {
        let (batches, given_up) = run_with_poison(queue(8, policy(8, true, Some(1))), "005", false);
        assert_eq!(given_up.len(), 1);
        let only: Vec<_> = given_up[0]
            .records
            .iter()
            .map(|p| &p.sequence_number)
            .collect();
        assert_eq!(only, ["005"]);
        // Splits (8 -> 4 -> 2 -> 1) are not retries: the record alone fails its first try and one retry.
        assert_eq!(given_up[0].attempts, 2);
        // Every other record was invoked and checkpointed exactly once.
        let succeeded: Vec<&String> = batches
            .iter()
            .filter(|b| !b.iter().any(|s| s == "005"))
            .flatten()
            .collect();
        let mut expected: Vec<String> = (0..8).map(|i| format!("{i:03}")).collect();
        expected.retain(|s| s != "005");
        assert_eq!(succeeded, expected.iter().collect::<Vec<_>>());
        assert_eq!(
            batches[0].len(),
            8,
            "the cap is the batch size until a failure"
        );
    }

    #[test]
    fn the_cap_returns_to_the_batch_size_after_the_bisected_range() {
        let mut q = queue(12, policy(4, true, Some(0)));
        assert!(matches!(
            q.settle(4, Answer::Error("x".into())),
            Settled::Bisected { size: 2, .. }
        ));
        assert_eq!(batch(&q), ["000", "001"]);
        q.settle(2, Answer::Response(vec![]));
        assert_eq!(batch(&q), ["002", "003"]);
        q.settle(2, Answer::Response(vec![]));
        assert_eq!(batch(&q), ["004", "005", "006", "007"]);
    }

    #[test]
    fn item_failures_without_bisect_give_up_only_the_tail() {
        let (batches, given_up) = run_with_poison(queue(6, policy(6, false, Some(1))), "003", true);
        assert_eq!(batches[0].len(), 6);
        assert_eq!(batches[1], ["003", "004", "005"]);
        let tail: Vec<_> = given_up[0]
            .records
            .iter()
            .map(|p| &p.sequence_number)
            .collect();
        assert_eq!(tail, ["003", "004", "005"]);
    }
}
