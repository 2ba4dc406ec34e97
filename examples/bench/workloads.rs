//! The batches `make bench` measures, and the table each one starts from.
//!
//! Every workload is a set of group rows (each group's participants, all at an old sort key) and one
//! Lambda event of new-message records spread round-robin over the groups, newest last. The replay
//! workload is the 20-group batch again on a table that has already applied it. The cost workloads
//! ([`cost`]) add a 4 KB message, alone and with `PREVIEW_MAX_BYTES=256`, and two workloads with the
//! read cache on (template `ReadCache=dynamodb`), whose invalidations the Rust side pays for.

use messaging_stream::plan::Item;
use serde_json::Value;
use testkit::items::{event, group_row, message_record};

/// Where every row starts: older than every message of every batch.
const OLD_SK: &str = "2025-01-01T00:00:00.000000+00:00";

pub struct Workload {
    /// Short key used in results.json and on the command line (`--only`).
    pub name: &'static str,
    /// How the doc and the console name it.
    pub title: &'static str,
    pub records: usize,
    pub groups: usize,
    pub rows_per_group: usize,
    /// Apply the batch once, untimed, before each measured run.
    pub replay: bool,
    /// The `PREVIEW_MAX_BYTES` the Rust side runs with (the seed has no such setting).
    pub preview_max_bytes: Option<usize>,
    /// The Rust side runs with a DynamoDB read cache (`CACHE_TABLE_NAME`) and invalidates it (the seed
    /// has no cache).
    pub read_cache: bool,
    /// Bytes of each message's text.
    pub text_bytes: usize,
    pub rows: Vec<Item>,
    pub event: Value,
}

impl Workload {
    fn new(
        name: &'static str,
        title: &'static str,
        records: usize,
        groups: usize,
        rows_per_group: usize,
    ) -> Self {
        Self::with_text(name, title, records, groups, rows_per_group, None)
    }

    /// Like [`Workload::new`], each message's text `text_bytes` long (ASCII) when given.
    fn with_text(
        name: &'static str,
        title: &'static str,
        records: usize,
        groups: usize,
        rows_per_group: usize,
        text_bytes: Option<usize>,
    ) -> Self {
        let group_id = |g: usize| format!("{name}-group-{g:04}");
        let rows = (0..groups)
            .flat_map(|g| {
                (0..rows_per_group).map(move |r| {
                    let group = group_id(g);
                    group_row(
                        &format!("{group}-owner-{r:03}"),
                        &group,
                        OLD_SK,
                        "an older message",
                    )
                })
            })
            .collect();
        let text = |k: usize| {
            let line =
                format!("bench message {k}: a line of ordinary chat text, about as long as most");
            match text_bytes {
                None => line,
                Some(n) => line.repeat(n / line.len() + 1)[..n].to_owned(),
            }
        };
        let texts: Vec<String> = (0..records).map(text).collect();
        let text_bytes = texts.iter().map(String::len).max().unwrap_or(0);
        let records_json = (0..records)
            .map(|k| {
                // Distinct, increasing instants: 1 ms apart, newest last.
                let created_at = format!(
                    "2025-01-02T00:{:02}:{:02}.{:03}000+00:00",
                    k / 60_000,
                    (k / 1000) % 60,
                    k % 1000
                );
                message_record(
                    &group_id(k % groups),
                    &created_at,
                    &texts[k],
                    &format!("{:021}", 4_000_000 + k),
                )
            })
            .collect();
        Self {
            name,
            title,
            records,
            groups,
            rows_per_group,
            replay: false,
            preview_max_bytes: None,
            read_cache: false,
            text_bytes,
            rows,
            event: event(records_json),
        }
    }

    pub fn rows_total(&self) -> usize {
        self.groups * self.rows_per_group
    }
}

/// The workloads of the issue, in the order they run.
pub fn all() -> Vec<Workload> {
    let mut replay = Workload::new("replay", "replay of the 20-group batch", 100, 20, 2);
    replay.replay = true;
    vec![
        Workload::new("single", "1 record", 1, 1, 2),
        Workload::new("groups20", "100 records, 20 groups of 2 rows", 100, 20, 2),
        Workload::new(
            "groupchat",
            "100 records, 1 group chat of 200 rows",
            100,
            1,
            200,
        ),
        Workload::new(
            "groups500",
            "1,000 records, 500 groups of 2 rows",
            1000,
            500,
            2,
        ),
        replay,
    ]
}

/// The workloads of the cost table (`--only cost`), in the order they run: issue 9's five, then the
/// first two with the read cache on (issue 16).
pub fn cost() -> Vec<Workload> {
    let mut capped = Workload::with_text(
        "message4k_cap256",
        "1 record of 4 KB, 2 rows, PREVIEW_MAX_BYTES=256",
        1,
        1,
        2,
        Some(4096),
    );
    capped.preview_max_bytes = Some(256);
    let cached = |name, title, records, groups| {
        let mut w = Workload::new(name, title, records, groups, 2);
        w.read_cache = true;
        w
    };
    vec![
        Workload::new("single", "1 record, 2 rows", 1, 1, 2),
        Workload::new("groups20", "100 records, 20 groups of 2 rows", 100, 20, 2),
        Workload::new(
            "groupchat",
            "100 records, 1 group chat of 200 rows",
            100,
            1,
            200,
        ),
        Workload::with_text("message4k", "1 record of 4 KB, 2 rows", 1, 1, 2, Some(4096)),
        capped,
        cached("single_cache", "1 record, 2 rows, ReadCache=dynamodb", 1, 1),
        cached(
            "groups20_cache",
            "100 records, 20 groups of 2 rows, ReadCache=dynamodb",
            100,
            20,
        ),
    ]
}
