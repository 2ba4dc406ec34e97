//! The counts of a batch, each declared once.
//!
//! [`Counts`] is the one list: a group's outcome carries it (apply.rs counts rows into it), the
//! batch's summary folds the groups' with one `+=` (handler.rs), the summary line logs every field
//! under its own name, and the metrics document flattens it (metrics.rs), each field a metric named
//! by its `#[metrics]` attribute (PascalCase of the field's name unless it says otherwise). A new
//! count is one field here: its `+=`, its log field and its metric follow from the declaration.

/// Declares the struct and what follows from its field list: `+=` and the summary line. (A
/// declarative macro because tracing needs each field's name at compile time.)
macro_rules! counts {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: usize, )*
        }

        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                $( self.$field += other.$field; )*
            }
        }

        impl $name {
            /// The one summary line of a batch: every count, where Lambda retries from, and how
            /// long it took. Logged under the handler's target, where operators filter for it.
            pub fn log_batch(&self, retry_from: Option<&str>, duration_ms: u64) {
                tracing::info!(
                    target: "messaging_stream::handler",
                    $( $field = self.$field, )*
                    retry_from,
                    duration_ms,
                    "batch processed"
                );
            }
        }
    };
}

counts! {
    /// What a batch (or one group of it) came to, in numbers: ids and results only, never text.
    /// Fields without `#[metrics(ignore)]` are metrics of the invocation's document.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    #[metrique::unit_of_work::metrics(subfield)]
    pub struct Counts {
        /// Records in the batch.
        #[metrics(name = "RecordsReceived", unit = metrique::unit::Count)]
        pub records,
        /// Records about a message (INSERT, MODIFY, REMOVE of `MSG#` items).
        #[metrics(name = "RecordsRelevant", unit = metrique::unit::Count)]
        pub relevant,
        /// Records the function leaves alone (its own `GRP#` writes and the like).
        #[metrics(name = "RecordsIgnored", unit = metrique::unit::Count)]
        pub ignored,
        /// Records that could not be read: logged and skipped, never failing the batch.
        #[metrics(name = "RecordsMalformed", unit = metrique::unit::Count)]
        pub malformed,
        /// Groups the batch touches, failed or not (the metric `GroupsUpdated` is this less
        /// `failed_groups`: metrics.rs).
        #[metrics(ignore)]
        pub groups,
        /// Rows moved forward to a newer message.
        #[metrics(unit = metrique::unit::Count)]
        pub rows_moved,
        /// Rows whose text was rewritten in place after an edit of the message they preview.
        #[metrics(unit = metrique::unit::Count)]
        pub rows_edited,
        /// Rows that fell back after the message they previewed was removed.
        #[metrics(unit = metrique::unit::Count)]
        pub rows_fallen_back,
        /// Written rows that sit a few microseconds after their message, because another
        /// conversation of the owner holds the message's instant.
        #[metrics(unit = metrique::unit::Count)]
        pub rows_nudged,
        /// Written rows whose text was cut to fit the item limit or `PREVIEW_MAX_BYTES`.
        #[metrics(unit = metrique::unit::Count)]
        pub rows_truncated,
        /// Rows already what the batch leaves them at (replays, out-of-order records, lost races).
        #[metrics(name = "RowsAlreadyCurrent", unit = metrique::unit::Count)]
        pub rows_current,
        /// Rows that disappeared between the query and the write (deleted conversations).
        #[metrics(ignore)]
        pub rows_gone,
        /// Rows re-read after a failed condition.
        #[metrics(unit = metrique::unit::Count)]
        pub condition_rereads,
        /// Transactions retried after a conflict or throttling of an item.
        #[metrics(unit = metrique::unit::Count)]
        pub conflict_retries,
        /// Groups that could not be brought up to date: Lambda retries from their first record.
        #[metrics(name = "GroupsFailed", unit = metrique::unit::Count)]
        pub failed_groups,
    }
}

impl Counts {
    /// Groups brought up to date.
    pub fn groups_updated(&self) -> usize {
        self.groups - self.failed_groups.min(self.groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_assign_adds_field_by_field() {
        // The first, a middle and the last field of the list: `+=` is generated from it.
        let one = Counts {
            records: 1,
            rows_moved: 6,
            rows_edited: 7,
            rows_fallen_back: 8,
            rows_gone: 12,
            failed_groups: 15,
            ..Counts::default()
        };
        let mut sum = one;
        sum += Counts {
            records: 2,
            rows_moved: 1,
            failed_groups: 1,
            ..Counts::default()
        };
        assert_eq!(
            sum,
            Counts {
                records: 3,
                rows_moved: 7,
                rows_edited: 7,
                rows_fallen_back: 8,
                rows_gone: 12,
                failed_groups: 16,
                ..Counts::default()
            }
        );
        assert_eq!(
            sum.groups_updated(),
            0,
            "more failed than touched: never below 0"
        );
        let some_failed = Counts {
            groups: 8,
            failed_groups: 2,
            ..Counts::default()
        };
        assert_eq!(some_failed.groups_updated(), 6);
    }

    /// Keeps what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_summary_line_names_each_count_under_the_handlers_target() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let counts = Counts {
            records: 31,
            groups: 8,
            rows_current: 5,
            rows_gone: 4,
            failed_groups: 2,
            ..Counts::default()
        };
        tracing::subscriber::with_default(subscriber, || counts.log_batch(Some("4200"), 17));
        let written = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{written}");
        assert_eq!(lines[0]["target"], "messaging_stream::handler");
        assert_eq!(lines[0]["level"], "INFO");
        let fields = &lines[0]["fields"];
        assert_eq!(fields["message"], "batch processed");
        // The names operators query for, as the line had them before counts.rs.
        for (name, value) in [
            ("records", 31),
            ("relevant", 0),
            ("groups", 8),
            ("rows_current", 5),
            ("rows_gone", 4),
            ("failed_groups", 2),
            ("duration_ms", 17),
        ] {
            assert_eq!(fields[name], value, "{name} in {written}");
        }
        assert_eq!(fields["retry_from"], "4200");
    }
}
