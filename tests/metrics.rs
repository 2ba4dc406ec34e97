//! The function's EMF metrics on DynamoDB Local: one invocation writes exactly one document, the
//! document has the structure the CloudWatch Embedded Metric Format specification requires, and
//! each metric carries the count the batch was built to produce (written down here from how the
//! batch is made, never read back from the handler's `Summary`), each count a different number, so
//! two metric names swapped cannot pass; `DynamoDbRequests` is the count of the requests the client
//! really sent. An invocation error writes no document.

use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use messaging_stream::event::parse_event;
use messaging_stream::handler::{self, HandlerError};
use messaging_stream::metrics::{metric_names, Metrics, MetricsConfig, DIMENSIONS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use testkit::items::*;
use testkit::local::*;
use testkit::request_log::RequestLog;

/// One invocation as the Lambda's main makes it: the records parsed, then the handler inside the
/// metrics' measure (the payload's JSON adapter in place of the binary's raw one).
async fn invoke(
    app: &messaging_stream::App,
    payload: &Value,
) -> Result<(DynamoDbEventResponse, handler::Summary), HandlerError> {
    let records = parse_event(payload)?;
    Ok(app
        .metrics
        .measure(handler::handle(app, records, None))
        .await?)
}

const GROUP: &str = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
const SECRET: &str = "the text nobody may read in a log";

/// The units CloudWatch accepts in a metric definition (EMF specification, `MetricDefinition.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks `doc` against the EMF specification's required structure; returns its metric names.
/// (docs.aws.amazon.com, CloudWatch "Specification: Embedded metric format": a root `_aws` object
/// with an integer `Timestamp` in epoch milliseconds and `CloudWatchMetrics`, an array of metric
/// directives; each directive has a `Namespace` string, `Dimensions` (an array of dimension sets,
/// each an array of at most 30 names) and `Metrics` (an array of at most 100 definitions with a
/// `Name` and an optional `Unit`); every dimension name is a root member holding a string, every
/// metric name a root member holding a number or an array of at most 100 numbers.)
fn validate_emf(doc: &Value) -> BTreeSet<String> {
    let aws = doc["_aws"].as_object().expect("_aws is an object");
    let timestamp = aws["Timestamp"]
        .as_u64()
        .expect("_aws.Timestamp is an integer");
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    assert!(
        now_ms.abs_diff(timestamp) < 60_000,
        "_aws.Timestamp {timestamp} is not epoch milliseconds of now ({now_ms})"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("_aws.CloudWatchMetrics is an array");
    assert!(!directives.is_empty());
    let mut names = BTreeSet::new();
    for directive in directives {
        assert!(directive["Namespace"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n.len() <= 1024));
        let sets = directive["Dimensions"]
            .as_array()
            .expect("Dimensions is an array");
        for set in sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30);
            for name in set {
                let name = name.as_str().expect("a dimension name is a string");
                assert!(
                    doc[name].is_string(),
                    "dimension {name} is not a root string member"
                );
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .expect("Metrics is an array");
        assert!(metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric has a Name");
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().expect("Unit is a string");
                assert!(
                    UNITS.contains(&unit),
                    "{name}: unit {unit} is not an EMF unit"
                );
            }
            let value = &doc[name];
            assert!(
                value.is_number()
                    || value
                        .as_array()
                        .is_some_and(|v| v.len() <= 100 && v.iter().all(Value::is_number)),
                "metric {name} is not a root member holding a number: {value}"
            );
            names.insert(name.to_owned());
        }
    }
    names
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect()
}

// The instants of the batch below.
const T0: &str = "2026-01-01T00:00:00+00:00";
const EDITED_AT: &str = "2026-01-01T06:00:00+00:00";
const FALLBACK_AT: &str = "2026-01-01T07:00:00+00:00";
const REMOVED_AT: &str = "2026-01-01T08:00:00+00:00";
const T1: &str = "2026-01-02T00:00:00+00:00";
const LATER: &str = "2026-01-03T00:00:00+00:00";
const MUCH_LATER: &str = "2026-01-04T00:00:00+00:00";
/// The preview cap of the batch's app: the `move` group's text is longer, every other text shorter.
const PREVIEW_MAX_BYTES: usize = 64;

/// What [`batch_of_every_count`] makes the handler count, worked out from how it is built. Every
/// count is a different number (`ConflictRetries` the only 0): a document with two names swapped
/// has some name holding another's number.
const EVERY_COUNT: [(&str, u64); 14] = [
    ("RecordsReceived", 31),   // 12 relevant + 10 ignored + 9 malformed
    ("RecordsRelevant", 12), // one record for each of the 8 groups, 3 older ones in `move`, 1 in `race`
    ("RecordsIgnored", 10),  // the function's own GRP# writes
    ("RecordsMalformed", 9), // records missing every required field
    ("GroupsUpdated", 6),    // move, nudge, edit, fall, race, current
    ("GroupsFailed", 2),     // bad-1, bad-2
    ("RowsMoved", 11),       // move 7, nudge 3, race 1
    ("RowsAlreadyCurrent", 8), // current 7, and the race row another writer moved past the message
    ("RowsEdited", 4),       // edit 4
    ("RowsFallenBack", 5),   // fall 5
    ("RowsNudged", 3),       // nudge 3: each owner's other conversation holds the instant
    ("RowsTruncated", 7),    // move 7: its text is longer than PREVIEW_MAX_BYTES
    ("ConditionRereads", 1), // the race row moved between the handler's query and its write
    ("ConflictRetries", 0),  // nothing writes the same items at once
];

/// Moves one row, once, as another invocation would between the handler's query and its write:
/// just before the handler's transaction that deletes the row is serialised. The move runs on a
/// thread of its own, so the handler's request count (a task-local) does not see it.
#[derive(Debug)]
struct MoveBeforeWrite {
    client: aws_sdk_dynamodb::Client,
    table: String,
    row: messaging_stream::plan::Item,
    to_sk: &'static str,
    done: AtomicBool,
}

impl Intercept for MoveBeforeWrite {
    fn name(&self) -> &'static str {
        "MoveBeforeWrite"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(input) = context.input().downcast_ref::<TransactWriteItemsInput>() else {
            return Ok(());
        };
        let deletes_the_row = input.transact_items().iter().any(|item| {
            item.delete()
                .is_some_and(|delete| delete.key().get("pk") == self.row.get("pk"))
        });
        if !deletes_the_row || self.done.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::current();
        let mut moved = self.row.clone();
        moved.insert("sk".into(), attr(self.to_sk));
        moved.insert("message".into(), attr("moved by another invocation"));
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        runtime.block_on(async {
                            self.client
                                .delete_item()
                                .table_name(&self.table)
                                .key("pk", self.row["pk"].clone())
                                .key("sk", self.row["sk"].clone())
                                .send()
                                .await
                                .expect("delete the row at its old key");
                            self.client
                                .put_item()
                                .table_name(&self.table)
                                .set_item(Some(moved))
                                .send()
                                .await
                                .expect("put the row at its new key");
                        })
                    })
                    .join()
                    .expect("the mover thread")
            })
        });
        Ok(())
    }
}

/// Rows of `count` owners `<group>-<i>` in `group` at `sk`.
fn rows(group: &str, count: usize, sk: &str) -> Vec<messaging_stream::plan::Item> {
    (0..count)
        .map(|i| group_row(&format!("{group}-{i}"), group, sk, "old"))
        .collect()
}

/// The table and the batch behind [`EVERY_COUNT`]; the race row; the batch's first failed record.
async fn batch_of_every_count(table: &TestTable) -> (Value, messaging_stream::plan::Item, String) {
    let mut items = Vec::new();
    items.extend(rows("move", 7, T0));
    // Each nudge owner's other conversation already shows a message at exactly T1.
    items.extend(rows("nudge", 3, T0));
    items.extend(
        (0..3).map(|i| group_row(&format!("nudge-{i}"), &format!("nudge-other-{i}"), T1, "o")),
    );
    items.extend(rows("edit", 4, EDITED_AT));
    items.extend(rows("fall", 5, REMOVED_AT));
    items.push(message_item("fall", FALLBACK_AT, "before the removed one"));
    items.extend(rows("race", 2, T0));
    items.extend(rows("current", 7, LATER));
    // Sort keys that are not timestamps: the key the row must move to is the owner's other
    // conversation's, and there is no instant to nudge from, so the group fails.
    for k in 1..=2 {
        items.push(group_row(
            &format!("bad-{k}"),
            &format!("bad-{k}"),
            "garbage-1",
            "x",
        ));
        items.push(group_row(
            &format!("bad-{k}"),
            &format!("bad-other-{k}"),
            "garbage-2",
            "y",
        ));
    }
    table.put(items).await;
    let race_row = group_row("race-1", "race", T0, "old");

    let long_text = format!("{SECRET}: {}", "long ".repeat(20));
    assert!(long_text.len() > PREVIEW_MAX_BYTES);
    let mut records = vec![
        message_record("move", T1, &long_text, "100"),
        message_record("nudge", T1, "to the nudged rows", "101"),
        edit_record("edit", EDITED_AT, "edited", "102"),
        remove_record("fall", REMOVED_AT, "103"),
        message_record("race", T1, "to the race rows", "104"),
        message_record("current", T1, "older than the rows", "105"),
        message_record("bad-1", "garbage-2", "collides", "106"),
        message_record("bad-2", "garbage-2", "collides", "107"),
        message_record("race", T0, "older", "108"),
    ];
    records.extend((0..3).map(|i| {
        message_record(
            "move",
            &format!("2025-12-3{i}T00:00:00+00:00"),
            "older",
            &format!("11{i}"),
        )
    }));
    for i in 0..10 {
        let mut own_write = message_record("any", T1, "x", &format!("2{i:02}"));
        own_write["dynamodb"]["Keys"]["pk"]["S"] = format!("GRP#owner-{i}").into();
        records.push(own_write);
    }
    records.extend((0..9).map(|i| serde_json::json!({ "eventID": format!("broken-{i}") })));
    (event(records), race_row, "106".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invocation_writes_one_valid_document_with_its_batch_counts() {
    let table = TestTable::new().await;
    let (payload, race_row, first_failed) = batch_of_every_count(&table).await;
    let distinct: BTreeSet<u64> = EVERY_COUNT.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        distinct.len(),
        EVERY_COUNT.len(),
        "every count a different number"
    );

    let mut config = table.config.clone();
    config.preview_max_bytes = Some(PREVIEW_MAX_BYTES);
    let requests = RequestLog::new();
    let client = client_with(&config, |dynamodb| {
        dynamodb
            .interceptor(requests.clone())
            .interceptor(MoveBeforeWrite {
                client: table.client.clone(),
                table: table.table().to_owned(),
                row: race_row,
                to_sk: MUCH_LATER,
                done: AtomicBool::new(false),
            })
    })
    .await;
    let metrics_config = MetricsConfig {
        namespace: "Test/Metrics".into(),
        service: "messaging-stream".into(),
        function: "cruddur-messaging-stream-test".into(),
        ..MetricsConfig::default()
    };
    let (metrics, captured) = Metrics::captured(metrics_config);
    let app = messaging_stream::App::on_client(client, config).with_metrics(metrics);

    let (response, _) = invoke(&app, &payload).await.unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(first_failed.as_str())
    );

    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "one document per invocation: {lines:?}");
    assert!(!lines[0].contains(SECRET), "message text in the metrics");
    let doc = &parse(&lines)[0];
    let names = validate_emf(doc);
    // The names the template's alarms and dashboard use, written down here: every count, and the
    // three metrics that are not counts of the batch.
    let expected: BTreeSet<String> = EVERY_COUNT
        .iter()
        .map(|(name, _)| *name)
        .chain(["DynamoDbRequests", "BatchDurationMs", "ColdStart"])
        .map(str::to_owned)
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        metric_names().into_iter().collect::<BTreeSet<_>>(),
        expected,
        "metric_names() lists what a document carries"
    );
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Test/Metrics");
    assert_eq!(directive["Dimensions"], serde_json::json!([DIMENSIONS]));
    assert_eq!(doc["Service"], "messaging-stream");
    assert_eq!(doc["Function"], "cruddur-messaging-stream-test");

    for (name, value) in EVERY_COUNT {
        assert_eq!(doc[name], value, "{name} in {doc}");
    }
    assert_eq!(doc["RetryFrom"], first_failed.as_str());
    assert_eq!(doc["DynamoDbRequests"], requests.total());
    assert!(requests.total() >= 8, "{:?}", requests.counts());
    assert!(doc["BatchDurationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["ColdStart"], 1);

    // The next invocation of the same process is warm, and a replay moves nothing: every row of
    // the 6 updated groups is current (7 + 3 + 4 + 5 + 2 + 7), the bad groups fail again.
    requests.reset();
    invoke(&app, &payload).await.unwrap();
    let docs = parse(&captured.lines());
    assert_eq!(docs.len(), 2);
    let again = &docs[1];
    for (name, value) in [
        ("ColdStart", 0),
        ("RowsMoved", 0),
        ("RowsEdited", 0),
        ("RowsFallenBack", 0),
        ("RowsAlreadyCurrent", 28),
        ("GroupsUpdated", 6),
        ("GroupsFailed", 2),
        ("ConditionRereads", 0),
    ] {
        assert_eq!(again[name], value, "{name} in the replay's {again}");
    }
    assert_eq!(again["DynamoDbRequests"], requests.total());
}

#[tokio::test]
async fn a_failed_group_is_counted_and_its_retry_point_is_a_property() {
    let table = TestTable::new().await;
    // The same server, a table that does not exist: every group fails.
    let mut missing = table.config.clone();
    missing.table_name = unique_table();
    let (metrics, captured) = Metrics::captured(MetricsConfig::default());
    let app = messaging_stream::App::on_client(table.client.clone(), missing).with_metrics(metrics);
    let payload = event(vec![
        message_record(GROUP, "2026-01-02T00:00:00+00:00", SECRET, "4100"),
        message_record("other", "2026-01-02T00:00:00+00:00", SECRET, "4101"),
        message_record(GROUP, "2026-01-01T00:00:00+00:00", SECRET, "4102"),
    ]);
    let (response, _) = invoke(&app, &payload).await.unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("4100")
    );
    let docs = parse(&captured.lines());
    assert_eq!(docs.len(), 1);
    validate_emf(&docs[0]);
    for (name, value) in [
        ("RecordsReceived", 3),
        ("RecordsRelevant", 3),
        ("GroupsFailed", 2),
        ("GroupsUpdated", 0),
        ("RowsMoved", 0),
    ] {
        assert_eq!(docs[0][name], value, "{name} in {}", docs[0]);
    }
    assert_eq!(docs[0]["RetryFrom"], "4100");
    assert!(docs[0]["DynamoDbRequests"].as_u64().unwrap() >= 2);
}

/// An invocation error (Lambda retries the whole batch) writes no document: only Lambda's own
/// `Errors` metric, and so the `errors` alarm, sees it (docs/DEPLOY.md).
#[tokio::test]
async fn an_invocation_error_writes_no_document() {
    let table = TestTable::new().await;
    let (metrics, captured) = Metrics::captured(MetricsConfig::default());
    let app = table.app.clone().with_metrics(metrics);
    let no_records = invoke(&app, &serde_json::json!({"detail": "not a stream"})).await;
    assert!(
        matches!(no_records, Err(HandlerError::NotAStreamEvent(_))),
        "{no_records:?}"
    );

    // A failed group (its table does not exist) whose first record has no sequence number.
    let mut missing = table.config.clone();
    missing.table_name = unique_table();
    let (metrics, captured_missing) = Metrics::captured(MetricsConfig::default());
    let failing =
        messaging_stream::App::on_client(table.client.clone(), missing).with_metrics(metrics);
    let mut record = message_record(GROUP, "2026-01-02T00:00:00+00:00", "hi", "1");
    record["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SequenceNumber");
    let no_sequence_number = invoke(&failing, &event(vec![record])).await;
    assert!(
        matches!(no_sequence_number, Err(HandlerError::NoSequenceNumber(_))),
        "{no_sequence_number:?}"
    );

    assert!(captured.lines().is_empty(), "{:?}", captured.lines());
    assert!(
        captured_missing.lines().is_empty(),
        "{:?}",
        captured_missing.lines()
    );
    // The same app writes its document for a batch that goes through.
    invoke(&app, &event(vec![])).await.unwrap();
    assert_eq!(captured.lines().len(), 1);
}

#[tokio::test]
async fn metrics_off_writes_nothing_and_the_default_app_has_none() {
    let table = TestTable::new().await;
    let off = MetricsConfig::from_lookup(|name| (name == "METRICS").then(|| "off".to_owned()))
        .expect("METRICS=off is a valid setting");
    let (metrics, captured) = Metrics::captured(off);
    assert!(!metrics.is_on());
    let app = table.app.clone().with_metrics(metrics);
    let payload = event(vec![message_record(
        GROUP,
        "2026-01-02T00:00:00+00:00",
        "hi",
        "1",
    )]);
    invoke(&app, &payload).await.unwrap();
    assert!(captured.lines().is_empty());
    assert!(
        !table.app.metrics.is_on(),
        "App::new must not write metrics"
    );
}
