//! Part 4 of the reliability proof: bad input. Every file of tests/corpus/ (see its README) goes
//! through the handler on a table with rows for the corpus groups; tests/corpus/expected.json says
//! what each must be (a logged skip, a clear invocation error, or applied). Never a panic, and
//! never a success reported for a record that was not applied. Generated inputs, too big to keep
//! as files, follow: messages at and near the 400 KB item limit, and a huge batch.

use crate::support::{self, Captured};
use ddb::commands::replay::{self, ReplayError};
use messaging_stream::event::{self, Change, MessageChange, Parsed};
use messaging_stream::model::TRUNCATED_ATTR;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use testkit::items;
use testkit::items::group_row;
use testkit::local::{self, TestTable};
use tracing_subscriber::filter::LevelFilter;

const T0: &str = "2024-05-06T09:00:00.000001+00:00";
/// The second group's rows sit a second later: one owner's two rows cannot share a sort key.
const T0_OTHER: &str = "2024-05-06T09:00:01.000001+00:00";

fn t0(group: &str) -> &'static str {
    if group == GROUPS[0] {
        T0
    } else {
        T0_OTHER
    }
}
const GROUPS: [&str; 2] = ["corpus-g", "группа-😀"];
const OWNERS: [&str; 2] = ["alice", "bob"];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // `note` documents the file
struct Expected {
    outcome: String,
    relevant: usize,
    ignored: usize,
    malformed: usize,
    applied: bool,
    note: String,
}

/// Log lines written on this thread (current-thread runtime: everything the handler and the
/// SDK do for these tests runs on it), at DEBUG.
fn capture_here() -> (Captured, tracing::subscriber::DefaultGuard) {
    let capture = Captured::default();
    let guard = tracing::subscriber::set_default(capture.subscriber(LevelFilter::DEBUG));
    (capture, guard)
}

/// Puts the corpus groups' rows back at T0 (and removes anything else).
async fn reset(table: &TestTable) {
    for item in table.all_items().await {
        table
            .client
            .delete_item()
            .table_name(table.table())
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    for group in GROUPS {
        for owner in OWNERS {
            table.put([group_row(owner, group, t0(group), "old")]).await;
        }
    }
}

/// The instant a corpus timestamp names, in epoch microseconds, read here and not by the function's
/// `timestamp` module, so that an ordering bug there cannot agree with itself: RFC 3339 with an
/// offset, or naive (UTC) with `T` or a space and an optional fraction.
fn instant(raw: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|at| at.timestamp_micros())
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|form| chrono::NaiveDateTime::parse_from_str(raw, form).ok())
                .map(|at| at.and_utc().timestamp_micros())
        })
}

/// The newest relevant message of each group in `payload` (records by the parser, order by
/// `instant`; for equal instants the later record, as the batch rules say).
fn newest_per_group(payload: &Value) -> BTreeMap<String, (String, String)> {
    let mut newest: BTreeMap<String, (String, String)> = BTreeMap::new();
    for parsed in event::parse_event(payload).unwrap_or_default() {
        if let Parsed::Relevant(MessageChange {
            group_uuid,
            created_at,
            change: Change::Write(text),
            ..
        }) = parsed
        {
            let entry = newest
                .entry(group_uuid)
                .or_insert((created_at.clone(), text.as_str().to_owned()));
            if instant(&created_at) >= instant(&entry.0) {
                *entry = (created_at, text.as_str().to_owned());
            }
        }
    }
    newest
}

/// Fails the current file with a message (the loop goes on to report every file that fails).
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Runs one corpus file and checks it against its expectation.
async fn run_file(
    table: &TestTable,
    capture: &Captured,
    path: &Path,
    expected: &BTreeMap<String, Expected>,
) -> Result<(), String> {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    reset(table).await;
    capture.take();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(payload) = serde_json::from_str::<Value>(&text) else {
        // Not JSON: the Lambda runtime refuses it before the handler; `ddb replay` says so.
        ensure!(name.starts_with("not-json"), "{name} does not parse");
        let error = replay::replay_file(&table.app, path).await.unwrap_err();
        ensure!(
            matches!(error, ReplayError::NotJson { .. })
                && error.to_string().contains("is not JSON"),
            "{name}: {error}"
        );
        return Ok(());
    };
    let Some(want) = expected.get(&name) else {
        return Err(format!("{name} has no entry in expected.json"));
    };
    let result = local::invoke(&table.app, &payload).await;
    // The text format's lines (the capture has each line in JSON, too).
    let logs: String = capture
        .take()
        .lines()
        .filter(|line| !line.starts_with('{'))
        .map(|line| format!("{line}\n"))
        .collect();
    if want.outcome == "invocation_error" {
        let Err(error) = result else {
            return Err(format!("{name}: expected an invocation error"));
        };
        ensure!(
            error.to_string().contains("Records"),
            "{name}: unclear error {error}"
        );
        for group in GROUPS {
            let rows = table.row_summaries(group).await;
            ensure!(rows.iter().all(|r| r.1 == t0(group)), "{name}: {rows:?}");
        }
        return Ok(());
    }
    let (response, summary) = result.map_err(|e| format!("{name}: {e}"))?;
    ensure!(
        (
            summary.counts.relevant,
            summary.counts.ignored,
            summary.counts.malformed
        ) == (want.relevant, want.ignored, want.malformed),
        "{name}: expected {want:?}, got {summary:?}"
    );
    ensure!(
        response.batch_item_failures.is_empty(),
        "{name}: {response:?}"
    );
    // Every malformed record is logged with its position, at WARN; ignored ones at DEBUG.
    ensure!(
        logs.matches("skipping malformed record").count() == want.malformed
            && logs.matches("ignoring record").count() == want.ignored
            && logs.contains("batch processed"),
        "{name}: logs do not name every skipped record: {logs}"
    );
    // Success was reported: every relevant record must be applied.
    let newest = newest_per_group(&payload);
    ensure!(
        !want.applied || !newest.is_empty(),
        "{name}: nothing relevant to apply"
    );
    for group in GROUPS {
        let rows = table.row_summaries(group).await;
        ensure!(rows.len() == OWNERS.len(), "{name}: {rows:?}");
        match newest.get(group) {
            Some((created_at, text)) if want.applied => {
                for row in &rows {
                    ensure!(&row.1 == created_at, "{name}: not applied: {row:?}");
                    ensure!(&row.2 == text, "{name}: text not kept exactly");
                }
            }
            _ => ensure!(
                rows.iter().all(|r| r.1 == t0(group) && r.2 == "old"),
                "{name}: rows moved though nothing was to be applied: {rows:?}"
            ),
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_corpus_file_is_a_logged_skip_a_clear_error_or_applied() {
    let table = TestTable::new().await;
    let expected: BTreeMap<String, Expected> =
        serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("expected.json")).unwrap())
            .unwrap();
    let (capture, _guard) = capture_here();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "expected.json" && p.extension().unwrap() != "md")
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        if let Err(failure) = run_file(&table, &capture, path, &expected).await {
            failures.push(failure);
        }
    }
    support::report(
        "corpus",
        serde_json::json!({ "files": files.len(), "failures": failures }),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(files.len() >= 50, "the corpus has {} files", files.len());
}

/// A message item at DynamoDB's 400 KB limit cannot become a group row whole (the row carries the
/// other participant's attributes too): its text is cut at a character boundary to fit, the rows
/// say so in `message_truncated`, and the batch succeeds. One of 300 KB is applied whole.
#[tokio::test]
async fn messages_at_and_near_the_item_size_limit() {
    let table = TestTable::new().await;
    let (capture, _guard) = capture_here();
    // 400 KB is the largest message item DynamoDB stores; a row with the other participant's
    // attributes cannot hold all of it.
    for (kb, whole) in [(300usize, true), (400, false)] {
        reset(&table).await;
        capture.take();
        // The message item's size: attribute names plus values, as DynamoDB counts them.
        let record = items::message_record("corpus-g", "2025-02-01T00:00:00+00:00", "", "77");
        let others: usize = record["dynamodb"]["NewImage"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, v)| name.len() + v["S"].as_str().map_or(0, str::len))
            .sum();
        let text = "x".repeat(kb * 1024 - others);
        let mut record = record;
        record["dynamodb"]["NewImage"]["message"]["S"] = text.clone().into();
        let (response, summary) = local::invoke(&table.app, &items::event(vec![record]))
            .await
            .expect("a response");
        let rows = table.row_summaries("corpus-g").await;
        assert_eq!(rows.len(), 2, "{kb} KB: {rows:?}");
        let logs = capture.take();
        assert!(
            response.batch_item_failures.is_empty(),
            "{kb} KB: {summary:?}"
        );
        assert!(
            rows.iter().all(|r| r.1 == "2025-02-01T00:00:00+00:00"),
            "{kb} KB"
        );
        let truncated: Vec<_> = table
            .group_rows("corpus-g")
            .await
            .into_values()
            .flatten()
            .map(|row| row.get(TRUNCATED_ATTR).cloned())
            .collect();
        if whole {
            assert!(rows.iter().all(|r| r.2 == text), "{kb} KB");
            assert_eq!(summary.counts.rows_truncated, 0);
            assert_eq!(truncated, [None, None], "{kb} KB");
        } else {
            assert!(
                rows.iter()
                    .all(|r| r.2.len() < text.len() && text.starts_with(&r.2)),
                "{kb} KB: cut to fit"
            );
            assert_eq!(summary.counts.rows_truncated, 2);
            let flag = Some(aws_sdk_dynamodb::types::AttributeValue::Bool(true));
            assert_eq!(truncated, [flag.clone(), flag], "{kb} KB");
        }
        assert!(!logs.contains(&text[..64]), "message text logged");
        support::report(
            "corpus-size",
            serde_json::json!({ "kb": kb, "whole": whole, "truncated": summary.counts.rows_truncated, "failures": response.batch_item_failures.len() }),
        );
    }
}

/// A huge batch: Lambda's largest stream batch is 10,000 records (quick slice: 1,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_batch_is_applied_whole() {
    support::global_capture();
    let table = TestTable::new().await;
    let records = support::size(1_000, 10_000);
    let groups = support::size(100, 500);
    let mut rng = fastrand::Rng::with_seed(404);
    let (world, model, items) = support::world("huge", groups, &mut rng);
    support::load(&table.client, table.table(), items).await;
    let sent = support::messages(&world, records, 1, &mut rng);
    let payload = items::event(sent.iter().map(|s| s.record.clone()).collect());
    let started = std::time::Instant::now();
    let (response, summary) = local::invoke(&table.app, &payload).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.counts.relevant, records);
    let mut ledger = support::Ledger::new(model);
    for s in &sent {
        ledger.model.apply(s);
    }
    let tally = ledger.check_all(&table.client, table.table()).await;
    assert!(tally.is_clean(), "{tally:?}");
    support::report(
        "corpus-huge-batch",
        serde_json::json!({ "records": records, "groups": groups, "rows_moved": summary.counts.rows_moved, "seconds": seconds, "check": tally }),
    );
}

/// A limit of the data model, found while building the corpus fixture: one owner's rows are keyed
/// (`GRP#owner`, last_message_at), so two conversations of one owner cannot sit at the same sort
/// key. A message that would move a row onto a key the owner's other conversation holds fails its
/// condition every time: the group fails with a clear error and Lambda retries it (then gives it up
/// to the on-failure destination); the row is never lost or overwritten.
#[tokio::test]
async fn two_conversations_of_one_owner_at_the_same_instant() {
    support::global_capture();
    let table = TestTable::new().await;
    let at = "2025-03-01T12:00:00.000001+00:00";
    table
        .put([
            group_row("alice", "dm", T0, "old"),
            group_row("alice", "crew", at, "crew text"),
        ])
        .await;
    let (response, summary) = local::invoke(
        &table.app,
        &items::event(vec![items::message_record("dm", at, "dm text", "42")]),
    )
    .await
    .unwrap();
    // Both conversations listed, each with its own text; the dm row just after the instant.
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    assert_eq!(summary.counts.rows_nudged, 1);
    assert_eq!(
        table.row_summaries("dm").await,
        vec![(
            "GRP#alice".into(),
            "2025-03-01T12:00:00.000002+00:00".into(),
            "dm text".into()
        )]
    );
    assert_eq!(
        table.row_summaries("crew").await,
        vec![("GRP#alice".into(), at.into(), "crew text".into())]
    );
}
