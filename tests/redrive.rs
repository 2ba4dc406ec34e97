//! `ddb redrive` on DynamoDB Local's real stream, with the real handler: a batch that failed until
//! its retries ran out under the local trigger is redriven from the failures file once the cause
//! is fixed, and again without any change; a metadata-only (SQS-shaped) record replays exactly its
//! range, read back from the stream; a range no longer in the stream is a clear error; the S3
//! destination's object redrives without reading the stream; and the `ddb redrive` binary exits
//! non-zero while anything still fails.

mod common;

use common::{group_row, TestTable};
use messaging_stream::commands::redrive::{self, RecordReport, RedriveOptions};
use messaging_stream::commands::seed;
use messaging_stream::event_source_mapping::failure_records::{self, FailureRecord, Shape};
use messaging_stream::event_source_mapping::stream;
use messaging_stream::event_source_mapping::watch::{Trigger, WatchOptions};
use messaging_stream::fault_proxy::{Fault, FaultPlan, Proxy};
use messaging_stream::filter::EventFilter;
use messaging_stream::plan::Item;
use messaging_stream::request_log::RequestLog;
use messaging_stream::store::Store;
use messaging_stream::App;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
const OLD: &str = "2026-01-01T00:00:00.000001+00:00";

fn options() -> RedriveOptions {
    RedriveOptions {
        batch_size: redrive::template_batch_size(Path::new(TEMPLATE))
            .expect("template.yaml's BatchSize"),
        dry_run: false,
    }
}

fn message_item(group: &str, created_at: &str, text: &str) -> Item {
    Item::from([
        ("pk".to_owned(), common::attr(&format!("MSG#{group}"))),
        ("sk".to_owned(), common::attr(created_at)),
        (
            "message_uuid".to_owned(),
            common::attr(&format!("m-{group}")),
        ),
        ("message".to_owned(), common::attr(text)),
        ("user_uuid".to_owned(), common::attr("sender")),
        ("user_display_name".to_owned(), common::attr("Sender")),
        ("user_handle".to_owned(), common::attr("sender")),
    ])
}

/// Every item of the table as sorted JSON text: equal snapshots mean nothing changed.
async fn snapshot(table: &TestTable) -> Vec<String> {
    let mut items: Vec<String> = table
        .all_items()
        .await
        .into_iter()
        .map(|item| {
            let value: Value = serde_dynamo::from_item(item).unwrap();
            value.to_string()
        })
        .collect();
    items.sort();
    items
}

/// Two rows (alice, bob) per group at OLD.
async fn rows(table: &TestTable, groups: &[&str]) {
    for group in groups {
        table
            .put([
                group_row(&format!("alice-{group}"), group, OLD, "old"),
                group_row(&format!("bob-{group}"), group, OLD, "old"),
            ])
            .await;
    }
}

/// The stream's records in order: (pk, sequence number), with the plain SDK.
async fn stream_records(table: &TestTable) -> (String, String, Vec<(String, String)>) {
    let client = stream::client(&table.config).await;
    let arn = stream::stream_arn(&client, table.table()).await.unwrap();
    let shards = stream::shards(&client, &arn).await.unwrap();
    assert_eq!(shards.len(), 1, "DynamoDB Local keeps one shard here");
    let shard = shards[0].id.clone();
    let mut iterator = stream::iterator(&client, &arn, &shard, &stream::Position::TrimHorizon)
        .await
        .unwrap();
    let mut found = Vec::new();
    while let Some(current) = iterator {
        let page = stream::records(&client, &current).await.unwrap();
        if page.records.is_empty() {
            break;
        }
        for record in &page.records {
            let change = record.dynamodb().unwrap();
            found.push((
                change.keys().unwrap()["pk"].as_s().unwrap().clone(),
                change.sequence_number().unwrap().to_owned(),
            ));
        }
        iterator = page.next_iterator;
    }
    (arn, shard, found)
}

fn sqs_message(arn: &str, shard: &str, start: &str, end: &str, arrival: &str) -> Value {
    json!({
        "requestContext": {
            "requestId": "316aa6d0-8154-4f0e-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:cruddur-messaging-stream-prod",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 6
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "version": "1.0",
        "timestamp": "2026-01-01T00:05:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": arrival,
            "approximateArrivalOfLastRecord": arrival,
            "batchSize": 2,
            "streamArn": arn
        }
    })
}

fn parse(text: &str) -> Vec<FailureRecord> {
    failure_records::parse_text("test", text).expect("failure records")
}

fn totals(reports: &[RecordReport]) -> (usize, usize, usize) {
    reports.iter().fold((0, 0, 0), |(a, c, f), r| {
        (
            a + r.rows_applied,
            c + r.rows_already_current,
            f + r.still_failing,
        )
    })
}

#[tokio::test]
async fn a_batch_given_up_by_the_trigger_is_redriven_from_the_failures_file_once_fixed() {
    let table = TestTable::new().await;
    let groups = ["g-one", "g-two", "g-three"];
    rows(&table, &groups).await;

    // Every transaction fails with a 500 (one SDK attempt): the reads work, the writes do not.
    let target: SocketAddr = common::endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let closed = FaultPlan::none()
        .probability(Fault::InternalError, 1.0)
        .only(&["TransactWriteItems"]);
    let proxy = Proxy::start(target, closed).await.unwrap();
    let mut config = table.config.clone();
    config.endpoint_url = Some(proxy.endpoint_url());
    config.max_attempts = 1;
    let client = common::client_for(&config, &RequestLog::new()).await;
    let app = App::new(Store::new(client, &config), config.clone());

    for (i, group) in groups.iter().enumerate() {
        table
            .put([message_item(
                group,
                &format!("2026-02-01T00:00:0{i}+00:00"),
                "new",
            )])
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failures.jsonl");
    let watch_options = WatchOptions {
        batching_window: Duration::ZERO,
        retry_delay: Duration::ZERO,
        poll_interval: Duration::from_millis(20),
        max_retries: Some(2),
        failures_file: Some(failures.clone()),
        ..WatchOptions::default()
    };
    let trigger = Trigger::new(
        stream::client(&table.config).await,
        app.clone(),
        table.table(),
        watch_options,
    )
    .await
    .unwrap()
    .with_filter(EventFilter::from_template(TEMPLATE).unwrap());
    let stats = trigger.drain().await.unwrap();
    assert!(stats.ranges_given_up >= 1, "{stats:?}");
    assert_eq!(stats.records_given_up, 3, "{stats:?}");
    let unchanged = snapshot(&table).await;
    for group in groups {
        assert!(
            table
                .row_summaries(group)
                .await
                .iter()
                .all(|(_, sk, _)| sk == OLD),
            "{group} moved while its writes were failing"
        );
    }

    // Still broken: the redrive says so, with the reason, and changes nothing.
    let records = failure_records::read_sources(std::slice::from_ref(&failures))
        .await
        .unwrap();
    assert!(records.iter().all(|r| r.shape == Shape::WatchFailure));
    let streams = stream::client(&table.config).await;
    let reports = redrive::redrive(&app, &streams, records.clone(), &options()).await;
    let (applied, _, failing) = totals(&reports);
    assert_eq!((applied, failing), (0, 3), "{reports:?}");
    assert!(
        reports
            .iter()
            .flat_map(|r| &r.reasons)
            .all(|reason| reason.contains("InternalServerError") || reason.contains("500")),
        "{reports:?}"
    );
    assert_eq!(snapshot(&table).await, unchanged);

    // Fixed: every row of every group moves to its message.
    proxy.set_plan(FaultPlan::none());
    let reports = redrive::redrive(&app, &streams, records.clone(), &options()).await;
    let (applied, current, failing) = totals(&reports);
    assert_eq!((applied, current, failing), (6, 0, 0), "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.relevant).sum::<usize>(), 3);
    // The failures file holds the records (issue 10): nothing is read back from the stream.
    assert!(records.iter().all(|r| r.payload.is_some()));
    assert!(reports.iter().all(|r| r.stream_pages == 0), "{reports:?}");
    for (i, group) in groups.iter().enumerate() {
        let rows = table.row_summaries(group).await;
        assert_eq!(rows.len(), 2, "{group}: {rows:?}");
        for (_, sk, message) in rows {
            assert_eq!(sk, format!("2026-02-01T00:00:0{i}+00:00"));
            assert_eq!(message, "new");
        }
    }

    // Twice: the rows are already current, nothing is written. (In batches of one record this time: the batch
    // size bounds every invocation.)
    let moved = snapshot(&table).await;
    let one_by_one = RedriveOptions {
        batch_size: 1,
        ..options()
    };
    let reports = redrive::redrive(&app, &streams, records, &one_by_one).await;
    assert_eq!(totals(&reports), (0, 6, 0), "{reports:?}");
    for report in &reports {
        assert_eq!(report.invocations, report.records_read, "{report:?}");
    }
    assert_eq!(snapshot(&table).await, moved);
}

#[tokio::test]
async fn a_metadata_record_replays_exactly_its_range_from_the_stream() {
    let table = TestTable::new().await;
    let groups = ["g-a", "g-b", "g-c", "g-d"];
    rows(&table, &groups).await;
    for group in groups {
        table
            .put([message_item(group, "2026-02-01T00:00:00+00:00", "new")])
            .await;
    }
    let (arn, shard, records) = stream_records(&table).await;
    let seq = |pk: &str| {
        records
            .iter()
            .find(|(p, _)| p == pk)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("{pk} in the stream: {records:?}"))
    };
    let (start, end) = (seq("MSG#g-b"), seq("MSG#g-c"));
    let message = sqs_message(&arn, &shard, &start, &end, "2026-02-01T00:00:00Z");
    // As `aws sqs receive-message --query 'Messages[].Body'` prints it: an array of JSON strings.
    let body = json!([message.to_string()]).to_string();
    let failed = parse(&body);
    assert_eq!(failed[0].shape, Shape::Metadata);
    let streams = stream::client(&table.config).await;

    let dry = RedriveOptions {
        dry_run: true,
        ..options()
    };
    let before = snapshot(&table).await;
    let planned = redrive::redrive(&table.app, &streams, failed.clone(), &dry).await;
    assert_eq!(
        (planned[0].records_read, planned[0].rows_applied),
        (2, 4),
        "{planned:?}"
    );
    assert_eq!(snapshot(&table).await, before, "--dry-run wrote");

    let reports = redrive::redrive(&table.app, &streams, failed, &options()).await;
    let report = &reports[0];
    assert_eq!(
        (report.records_read, report.relevant, report.rows_applied),
        (2, 2, 4)
    );
    assert_eq!(report.still_failing, 0, "{report:?}");
    for (group, moved) in [("g-a", false), ("g-b", true), ("g-c", true), ("g-d", false)] {
        let rows = table.row_summaries(group).await;
        assert!(
            rows.iter().all(|(_, sk, _)| (sk != OLD) == moved),
            "{group} (moved: {moved}): {rows:?}"
        );
    }
}

#[tokio::test]
async fn a_range_no_longer_in_the_stream_is_a_clear_error() {
    let table = TestTable::new().await;
    rows(&table, &["g-x"]).await;
    let (arn, shard, records) = stream_records(&table).await;
    let first = &records[0].1;
    let streams = stream::client(&table.config).await;
    let cases = [
        // The shard is gone (DynamoDB deletes shards 24 hours after they close).
        sqs_message(
            &arn,
            "shardId-00000001000000000000-00000000",
            first,
            first,
            "2026-01-01T00:00:00Z",
        ),
        // The shard is there but begins after the range (its start was trimmed; DynamoDB Local
        // answers ValidationException "Invalid SequenceNumber for the shard" where DynamoDB
        // Streams answers TrimmedDataAccessException).
        sqs_message(
            &arn,
            &shard,
            "000000000000000000000",
            "000000000000000000000",
            "2026-01-01T00:00:00Z",
        ),
    ];
    for case in cases {
        let failed = parse(&case.to_string());
        let reports = redrive::redrive(&table.app, &streams, failed, &options()).await;
        let report = &reports[0];
        assert_eq!(report.still_failing, 1, "{report:?}");
        let reason = &report.reasons[0];
        let range = format!(
            "{} {}..{}",
            case["DDBStreamBatchInfo"]["shardId"].as_str().unwrap(),
            case["DDBStreamBatchInfo"]["startSequenceNumber"]
                .as_str()
                .unwrap(),
            case["DDBStreamBatchInfo"]["endSequenceNumber"]
                .as_str()
                .unwrap()
        );
        assert!(reason.contains(&range), "{reason}");
        assert!(reason.contains("no longer in the stream"), "{reason}");
        assert!(
            reason.contains("fell out of retention at 2026-01-02T00:00:00Z"),
            "{reason}"
        );
    }
}

/// events/failures/s3-on-failure-object.json, its stream ARN pointed at `table`.
fn s3_sample(table: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/failures/s3-on-failure-object.json"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .replace("table/cruddur-messages/", &format!("table/{table}/"))
}

#[tokio::test]
async fn the_s3_object_redrives_without_reading_the_stream() {
    let table = TestTable::new().await;
    seed::seed(&table.client, table.table()).await.unwrap();
    let failed = parse(&s3_sample(table.table()));
    assert_eq!(failed[0].shape, Shape::S3Object);
    assert_eq!(failed[0].payload.as_ref().unwrap().len(), 2);

    let stream_requests = RequestLog::new();
    let sdk = messaging_stream::aws::sdk_config(&table.config).await;
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
            .interceptor(stream_requests.clone())
            .build(),
    );
    let reports = redrive::redrive(&table.app, &streams, failed.clone(), &options()).await;
    assert_eq!(stream_requests.total(), 0, "{:?}", stream_requests.counts());
    let report = &reports[0];
    assert_eq!((report.records_read, report.stream_pages), (2, 0));
    assert_eq!(report.still_failing, 0, "{report:?}");
    // Andrew-Londo's 2 rows and the crew's 4 move to their message.
    assert_eq!(report.rows_applied, 6, "{report:?}");
    let rows = table.row_summaries(seed::GROUP_ANDREW_LONDO).await;
    assert!(rows
        .iter()
        .all(|(_, sk, _)| sk == "2025-01-15T10:00:00.123456+00:00"));

    let again = redrive::redrive(&table.app, &streams, failed, &options()).await;
    assert_eq!(totals(&again), (0, 6, 0));
}

#[test]
fn the_binary_reports_each_record_and_exits_non_zero_while_anything_fails() {
    let endpoint = common::endpoint();
    let table = common::unique_table();
    let ddb = |args: &[&str], stdin: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ddb"));
        command
            .args(["--endpoint", endpoint, "--table", &table])
            .args(args)
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .env_remove("TABLE_NAME")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("run ddb");
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    };
    assert!(ddb(&["schema-load"], None).status.success());
    assert!(ddb(&["seed"], None).status.success());
    let sample = s3_sample(&table);

    let planned = ddb(&["redrive", "--dry-run", "-"], Some(&sample));
    let text = String::from_utf8_lossy(&planned.stdout);
    assert!(planned.status.success(), "{planned:?}");
    assert!(
        text.contains("(s3-object): read 2, relevant 2, would apply 6"),
        "{text}"
    );

    let done = ddb(&["--json", "redrive", "-"], Some(&sample));
    assert!(done.status.success(), "{done:?}");
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(report["rows_applied"], 6);
    assert_eq!(report["still_failing"], 0);

    // Another table's range: refused, reported, exit code 1.
    let other = s3_sample("some-other-table");
    let refused = ddb(&["redrive", "-"], Some(&other));
    assert!(!refused.status.success(), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(text.contains("pass --table some-other-table"), "{text}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("still failing"));
}

/// Whether policies/operator-redrive.json allows `action` on `resource` (`table/<name>...`, as the request log
/// names it) with `leading_key`: the statements' placeholders stand for this test's table.
fn operator_allows(action: &str, resource: &str, leading_key: Option<&str>, table: &str) -> bool {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/operator-redrive.json"
    );
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect(),
            _ => Vec::new(),
        }
    };
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|statement| {
            let resources = as_list(&statement["Resource"]);
            let named = resources.iter().any(|r| {
                r == resource
                    || r.replace("${TableName}", table)
                        .ends_with(&format!(":{resource}"))
            });
            let keys_ok = match statement
                .pointer("/Condition/ForAllValues:StringLike/dynamodb:LeadingKeys")
            {
                None => true,
                Some(patterns) => as_list(patterns).iter().any(|p| {
                    let prefix = p.trim_end_matches('*');
                    leading_key.is_some_and(|k| k.starts_with(prefix))
                }),
            };
            as_list(&statement["Action"]).iter().any(|a| a == action) && named && keys_ok
        })
}

#[tokio::test]
async fn the_operator_policy_allows_what_a_redrive_does() {
    let table = TestTable::new().await;
    rows(&table, &["g-p"]).await;
    table
        .put([message_item("g-p", "2026-02-01T00:00:00+00:00", "new")])
        .await;
    let (arn, shard, records) = stream_records(&table).await;
    let last = &records.last().unwrap().1;
    let failed =
        parse(&sqs_message(&arn, &shard, &records[0].1, last, "2026-02-01T00:00:00Z").to_string());
    let stream_requests = RequestLog::new();
    let sdk = messaging_stream::aws::sdk_config(&table.config).await;
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
            .interceptor(stream_requests.clone())
            .build(),
    );
    table.requests.reset();
    let reports = redrive::redrive(&table.app, &streams, failed, &options()).await;
    assert_eq!(totals(&reports), (2, 0, 0), "{reports:?}");

    // The stream: only the two reads the policy grants on ${MessagesTable.StreamArn}.
    let operations: Vec<String> = stream_requests.counts().into_keys().collect();
    assert_eq!(operations, ["GetRecords", "GetShardIterator"]);
    for operation in &operations {
        assert!(operator_allows(
            &format!("dynamodb:{operation}"),
            "${MessagesTable.StreamArn}",
            None,
            table.table()
        ));
    }
    // The table: every authorisation the handler's calls needed.
    let uses = table.requests.iam_uses();
    assert!(!uses.is_empty());
    let own = format!("table/{}", table.table());
    assert!(
        !operator_allows("dynamodb:PutItem", &own, Some("MSG#g-p"), table.table()),
        "the check itself: a message write is not allowed"
    );
    assert!(operator_allows(
        "dynamodb:PutItem",
        &own,
        Some("GRP#a"),
        table.table()
    ));
    for used in uses {
        assert!(
            operator_allows(
                &used.action,
                &used.resource,
                used.leading_key.as_deref(),
                table.table()
            ),
            "policies/operator-redrive.json does not allow {used:?}"
        );
    }
}
