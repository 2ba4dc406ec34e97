//! The function's EMF metrics on DynamoDB Local: one invocation writes exactly one document, the
//! document has the structure the CloudWatch Embedded Metric Format specification requires, and
//! its values are the counts of the same batch's `Summary` (and the requests the client really sent).

mod common;

use common::*;
use messaging_stream::handler::{self, Summary};
use messaging_stream::metrics::{Metrics, MetricsConfig, DIMENSIONS, METRIC_NAMES};
use messaging_stream::store::Store;
use serde_json::Value;
use std::collections::BTreeSet;

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

/// The document's numbers for the counts that come from `summary`.
fn assert_matches_summary(doc: &Value, summary: &Summary) {
    let expected = [
        ("RecordsReceived", summary.records),
        ("RecordsRelevant", summary.relevant),
        ("RecordsIgnored", summary.ignored),
        ("RecordsMalformed", summary.malformed),
        ("GroupsUpdated", summary.groups - summary.failed_groups),
        ("GroupsFailed", summary.failed_groups),
        ("RowsMoved", summary.rows_moved),
        ("RowsAlreadyCurrent", summary.rows_current),
        ("RowsEdited", summary.rows_edited),
        ("RowsFallenBack", summary.rows_fallen_back),
        ("RowsNudged", summary.rows_nudged),
        ("RowsTruncated", summary.rows_truncated),
        ("ConditionRereads", summary.condition_rereads),
        ("ConflictRetries", summary.conflict_retries),
    ];
    for (name, value) in expected {
        assert_eq!(doc[name], value as u64, "{name} in {doc}");
    }
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect()
}

#[tokio::test]
async fn one_invocation_writes_one_valid_document_with_its_batch_counts() {
    let table = TestTable::new().await;
    table
        .put([
            group_row("alice", GROUP, "2026-01-01T00:00:00.000001+00:00", "old"),
            group_row("bob", GROUP, "2026-01-01T00:00:00.000001+00:00", "old"),
        ])
        .await;
    let config = MetricsConfig {
        namespace: "Test/Metrics".into(),
        service: "messaging-stream".into(),
        function: "cruddur-messaging-stream-test".into(),
        ..MetricsConfig::default()
    };
    let (metrics, captured) = Metrics::captured(config);
    let app = table.app.clone().with_metrics(metrics);
    let mut grp_write = message_record(GROUP, "2026-01-02T00:00:00+00:00", "x", "300");
    grp_write["dynamodb"]["Keys"]["pk"]["S"] = "GRP#alice".into();
    let payload = event(vec![
        message_record(GROUP, "2026-01-02T00:00:00.000001+00:00", SECRET, "100"),
        message_record(GROUP, "2026-01-01T12:00:00+00:00", "older", "200"),
        grp_write,
        serde_json::json!({"eventID": "broken"}),
    ]);
    table.requests.reset();

    let (response, summary) = handler::process(&app, &payload).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.records, summary.rows_moved), (4, 2));

    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "one document per invocation: {lines:?}");
    assert!(!lines[0].contains(SECRET), "message text in the metrics");
    let doc = &parse(&lines)[0];
    let names = validate_emf(doc);
    let expected: BTreeSet<String> = METRIC_NAMES.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(names, expected);
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Test/Metrics");
    assert_eq!(directive["Dimensions"], serde_json::json!([DIMENSIONS]));
    assert_eq!(doc["Service"], "messaging-stream");
    assert_eq!(doc["Function"], "cruddur-messaging-stream-test");

    assert_matches_summary(doc, &summary);
    assert_eq!(doc["RecordsMalformed"], 1);
    assert_eq!(doc["RecordsIgnored"], 1);
    assert_eq!(doc["DynamoDbRequests"], table.requests.total());
    assert!(table.requests.total() >= 2, "{:?}", table.requests.counts());
    assert!(doc["BatchDurationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["ColdStart"], 1);
    assert!(doc.get("RetryFrom").is_none());

    // The next invocation of the same process is warm, and replays change nothing.
    let (_, again) = handler::process(&app, &payload).await.unwrap();
    let docs = parse(&captured.lines());
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["ColdStart"], 0);
    assert_matches_summary(&docs[1], &again);
    assert_eq!(docs[1]["RowsMoved"], 0);
    assert_eq!(docs[1]["RowsAlreadyCurrent"], 2);
}

#[tokio::test]
async fn a_failed_group_is_counted_and_its_retry_point_is_a_property() {
    let table = TestTable::new().await;
    // The same server, a table that does not exist: every group fails.
    let mut missing = table.config.clone();
    missing.table_name = unique_table();
    let (metrics, captured) = Metrics::captured(MetricsConfig::default());
    let app = messaging_stream::App::new(Store::new(table.client.clone(), &missing), missing)
        .with_metrics(metrics);
    let payload = event(vec![message_record(
        GROUP,
        "2026-01-02T00:00:00+00:00",
        SECRET,
        "4100",
    )]);
    let (response, summary) = handler::process(&app, &payload).await.unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("4100")
    );
    let docs = parse(&captured.lines());
    assert_eq!(docs.len(), 1);
    validate_emf(&docs[0]);
    assert_matches_summary(&docs[0], &summary);
    assert_eq!(docs[0]["GroupsFailed"], 1);
    assert_eq!(docs[0]["GroupsUpdated"], 0);
    assert_eq!(docs[0]["RetryFrom"], "4100");
    assert!(docs[0]["DynamoDbRequests"].as_u64().unwrap() >= 1);
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
    handler::process(&app, &payload).await.unwrap();
    assert!(captured.lines().is_empty());
    assert!(
        !table.app.metrics.is_on(),
        "App::new must not write metrics"
    );
}
