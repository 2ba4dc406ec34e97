//! Part 6 of the reliability proof: message text never reaches a log line.
//!
//! The test binary's process-wide subscriber (`support::global_capture`) with the Lambda's filter at its most verbose
//! (`messaging_stream::logging::filter(TRACE)`: TRACE for our code, DEBUG for the SDK and hyper),
//! in both the text and the JSON format the Lambda can use, writing into a buffer. It then runs the handler over every file of events/ on a seeded table and every file of
//! tests/corpus/, and down the failure paths: DynamoDB unreachable, every proxy fault at a high
//! rate, a message cut to fit the item size limit, a failed record without a sequence number,
//! stale reads and concurrent invocations. Finally no captured line may contain any message text the run used.

use crate::support;
use ddb::commands::{replay, seed};
use messaging_stream::event::{MessageChange, MessageText, RecordRef};
use messaging_stream::{apply, plan, App};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::items;
use testkit::items::group_row;
use testkit::local::{self, TestTable};
use testkit::request_log::RequestLog;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "txt")))
            .filter(|p| p.file_name().unwrap() != "expected.json")
            .collect();
    files.sort();
    files
}

/// Every string under a `message` key of `value` (stream images and seed rows alike), and every
/// string value of a corpus file that is not a key, type or identifier: the words to look for.
fn texts_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "message" {
                    if let Some(text) = v.get("S").and_then(Value::as_str) {
                        out.push(text.to_owned());
                    }
                }
                texts_in(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| texts_in(v, out)),
        _ => {}
    }
}

fn update(group: &str, created_at: &str, text: &str) -> plan::GroupUpdate {
    plan::coalesce([MessageChange::write(
        RecordRef {
            position: 0,
            event_id: Some("privacy".into()),
            sequence_number: Some("1".into()),
        },
        group,
        created_at,
        MessageText::new(text),
    )])
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_ever_contains_message_text() {
    let capture = support::global_capture();
    let mut texts: Vec<String> = Vec::new();

    // events/ on a seeded table: the seed's own texts are read back through the GSI, too.
    let table = TestTable::new().await;
    seed::seed(&table.client, table.table()).await.unwrap();
    for item in table.all_items().await {
        if let Some(text) = item.get("message").and_then(|v| v.as_s().ok()) {
            texts.push(text.clone());
        }
    }
    for path in files("events") {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        texts_in(&value, &mut texts);
        replay::replay_file(&table.app, &path).await.unwrap();
    }

    // tests/corpus/: every bad input, JSON or not.
    for path in files("tests/corpus") {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            texts_in(&value, &mut texts);
            let _ = local::invoke(&table.app, &value).await;
        } else {
            let _ = replay::replay_file(&table.app, &path).await;
        }
    }
    // The corpus's text, as it sits in values other than `message` (e.g. a wrongly typed field).
    texts.push("corpus secret words".to_owned());

    // Failure paths. A group of our own, so failures have rows to fail on.
    let secret = |what: &str| {
        format!(
            "{}privacy-{what}-{}",
            support::TEXT_MARKER,
            uuid::Uuid::new_v4().simple()
        )
    };
    table
        .put([
            group_row("pa", "pg", "2024-01-01T00:00:00+00:00", &secret("row-a")),
            group_row("pb", "pg", "2024-01-01T00:00:00+00:00", &secret("row-b")),
        ])
        .await;
    let mut sequence = 500;
    let mut batch = |texts: &mut Vec<String>, what: &str, with_sequence: bool| {
        let text = secret(what);
        texts.push(text.clone());
        sequence += 1;
        let at = support::timestamp(sequence, 0, 0);
        let mut record = items::message_record("pg", &at, &text, &sequence.to_string());
        if !with_sequence {
            record["dynamodb"]
                .as_object_mut()
                .unwrap()
                .remove("SequenceNumber");
        }
        items::event(vec![record])
    };

    // DynamoDB unreachable: groups fail, with the SDK's errors in the logs.
    let mut unreachable = table.config.clone();
    unreachable.endpoint_url = Some("http://127.0.0.1:9".to_owned());
    unreachable.max_attempts = 2;
    let log = RequestLog::new();
    let client = support::client_via(
        &unreachable,
        "http://127.0.0.1:9",
        "privacy",
        Some(Duration::from_millis(5)),
        &log,
    )
    .await;
    let down = App::on_client(client, unreachable.clone());
    let _ = local::invoke(&down, &batch(&mut texts, "unreachable", true)).await;
    // ... and a failed record without a sequence number: an invocation error.
    let error = local::invoke(&down, &batch(&mut texts, "no-seq", false))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("SequenceNumber"), "{error}");

    // Every proxy fault at a high rate, in adaptive mode's classification paths too.
    for fault in Fault::kinds(Duration::from_millis(5)) {
        let proxy = Proxy::start(
            local::address(),
            FaultPlan::none().probability(fault, 0.7).seed(3),
        )
        .await
        .unwrap();
        let mut config = table.config.clone();
        config.retry_mode = messaging_stream::config::RetryMode::Standard;
        config.max_attempts = 2;
        let client = support::client_via(
            &config,
            &proxy.endpoint_url(),
            "privacy",
            Some(Duration::from_millis(5)),
            &RequestLog::new(),
        )
        .await;
        let app = App::on_client(client, config.clone());
        for _ in 0..3 {
            let _ = local::invoke(&app, &batch(&mut texts, fault.name(), true)).await;
        }
    }

    // A message at the item size limit: its text is cut to fit the rows (`message_truncated`), a
    // path of its own that must log no more of the text than any other.
    let big = "y".repeat(400 * 1024);
    texts.push(big[..64].to_owned());
    let record = items::message_record("pg", "2030-01-01T00:00:00+00:00", &big, "900");
    let (response, summary) = local::invoke(&table.app, &items::event(vec![record]))
        .await
        .expect("a response");
    assert!(
        response.batch_item_failures.is_empty() && summary.counts.rows_truncated > 0,
        "{summary:?}"
    );

    // A stale read (condition failures and re-reads) and concurrent invocations (conflicts).
    let stale = table.app.store.group_rows("pg").await.unwrap();
    let newer = batch(&mut texts, "newer", true);
    local::invoke(&table.app, &newer).await.unwrap();
    let stale_text = secret("stale");
    texts.push(stale_text.clone());
    apply::move_rows(
        &table.app.store,
        &table.app.config,
        &update("pg", "2024-06-01T00:00:00", &stale_text),
        stale,
    )
    .await
    .unwrap();
    let (a, b) = (
        batch(&mut texts, "concurrent-a", true),
        batch(&mut texts, "concurrent-b", true),
    );
    let (ra, rb) = tokio::join!(local::invoke(&table.app, &a), local::invoke(&table.app, &b));
    ra.unwrap();
    rb.unwrap();

    let logs = capture.text();
    let lines = logs.lines().count();
    texts.retain(|t| t.chars().count() >= 4);
    texts.sort();
    texts.dedup();
    // Every text this binary generates (here, the fault matrix, the model programs, the soak)
    // holds the marker: one pass finds any of them, whichever test logged it.
    let leaks: Vec<(String, String)> = logs
        .lines()
        .filter_map(|line| {
            texts
                .iter()
                .map(String::as_str)
                .chain([support::TEXT_MARKER])
                .find(|t| line.contains(t))
                .map(|t| (t.to_owned(), line.chars().take(300).collect()))
        })
        .collect();
    support::report(
        "privacy",
        serde_json::json!({ "log_lines": lines, "texts": texts.len(), "leaks": leaks.len() }),
    );
    // The capture really saw the handler's and the SDK's lines, failures included.
    assert!(lines > 1_000, "only {lines} lines captured");
    for expected in [
        "batch processed",
        "skipping malformed record",
        "group failed",
        "aws_smithy",
    ] {
        assert!(logs.contains(expected), "no {expected:?} line captured");
    }
    assert!(texts.len() > 40, "only {} texts to look for", texts.len());
    assert!(
        leaks.is_empty(),
        "message text in {} log lines: {leaks:#?}",
        leaks.len()
    );
}
