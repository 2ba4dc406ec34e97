//! The counts `ddb watch` prints: records read, filtered out, pending; invocations and failed
//! ones; ranges and records given up; the lag and the iterator age. The reader and the invoker
//! count into one shared [`Stats`]; a [`StatsSnapshot`] is what the progress line and `--json`
//! show.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Running counts, shared with whoever prints progress (see
/// [`Trigger::stats`](super::Trigger::stats)).
#[derive(Debug, Default)]
pub struct Stats {
    pub(super) records_read: AtomicU64,
    pub(super) records_filtered_out: AtomicU64,
    pub(super) invocations: AtomicU64,
    pub(super) failed_invocations: AtomicU64,
    pub(super) ranges_given_up: AtomicU64,
    pub(super) records_given_up: AtomicU64,
    pub(super) pending: AtomicU64,
    pub(super) lag_ms: AtomicU64,
    pub(super) iterator_age_ms: AtomicU64,
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

    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub(super) fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
