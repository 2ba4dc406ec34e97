//! `ddb redrive` on DynamoDB Local's real stream, with the real handler: a batch that failed until
//! its retries ran out under the local trigger is redriven from the failures file once the cause
//! is fixed, and again without any change; a metadata-only (SQS-shaped) record replays exactly its
//! range, read back from the stream; a range no longer in the stream is a clear error; the S3
//! destination's object redrives without reading the stream; and the `ddb redrive` binary exits
//! non-zero while anything still fails. Issue 16: the dry run and the real run count the same rows
//! for any batch size, each row once; a range from a re-created table's old stream warns; a folder's
//! files that are not failure records are skipped, named; `--table` overrides the table of an S3
//! object; with a cache, redrive invalidates what it changes, as the operator's policy allows.

use testkit::bin::{self, Flags as _};
use testkit::items::{group_row, message_item_with_uuid};
use testkit::{items, local};

use ddb::commands::redrive::{self, RecordReport, RedriveOptions};
use ddb::commands::seed;
use ddb::event_source_mapping::failure_records::{self, FailureRecord, Shape};
use ddb::event_source_mapping::stream;
use ddb::event_source_mapping::watch::{Trigger, WatchOptions};
use ddb::filter::EventFilter;
use ddb::template::Template;
use messaging_stream::App;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::local::TestTable;
use testkit::request_log::RequestLog;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
const OLD: &str = "2026-01-01T00:00:00.000001+00:00";

fn options() -> RedriveOptions {
    let template = Template::read(Path::new(TEMPLATE)).expect("template.yaml");
    RedriveOptions {
        batch_size: redrive::template_batch_size(&template).expect("template.yaml's BatchSize"),
        dry_run: false,
        table_given: false,
    }
}

/// Every item of the table as sorted JSON text: equal snapshots mean nothing changed.
async fn snapshot(table: &TestTable) -> Vec<String> {
    let mut items: Vec<String> = table
        .all_items()
        .await
        .into_iter()
        .map(|item| {
            let mut value: Value = serde_dynamo::from_item(item).unwrap();
            // Test builds turn on serde_json's `preserve_order` (through aws-smithy-mocks): sort
            // the keys here, not by the map's own order, or the item's HashMap order leaks in.
            value.sort_all_objects();
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

/// (rows written, rows already current, groups still failing) over the reports.
fn totals(reports: &[RecordReport]) -> (usize, usize, usize) {
    reports.iter().fold((0, 0, 0), |(a, c, f), r| {
        (
            a + r.rows_written(),
            c + r.rows_already_current,
            f + r.groups_failing,
        )
    })
}

#[tokio::test]
async fn a_batch_given_up_by_the_trigger_is_redriven_from_the_failures_file_once_fixed() {
    let table = TestTable::new().await;
    let groups = ["g-one", "g-two", "g-three"];
    rows(&table, &groups).await;

    // Every transaction fails with a 500 (one SDK attempt): the reads work, the writes do not.
    let target = local::address();
    let closed = FaultPlan::none()
        .probability(Fault::InternalError, 1.0)
        .only(&["TransactWriteItems"]);
    let proxy = Proxy::start(target, closed).await.unwrap();
    let mut config = table.config.clone();
    config.endpoint_url = Some(proxy.endpoint_url());
    config.max_attempts = 1;
    let client = local::client_for(&config, &RequestLog::new()).await;
    let app = App::on_client(client, config.clone());

    for (i, group) in groups.iter().enumerate() {
        table
            .put([message_item_with_uuid(
                group,
                &format!("2026-02-01T00:00:0{i}+00:00"),
                &format!("m-{group}"),
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
        .unwrap()
        .records;
    assert!(records.iter().all(|r| r.shape == Shape::WatchFailure));
    let streams = stream::client(&table.config).await;
    let reports = redrive::redrive(&app, &streams, records.clone(), &options()).await;
    let (applied, _, failing) = totals(&reports);
    assert_eq!((applied, failing), (0, 3), "{reports:?}");
    assert_eq!(
        reports.iter().map(|r| r.records_failing).sum::<usize>(),
        3,
        "each record is one Lambda would be given again: {reports:?}"
    );
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
    // size bounds every invocation; each row still counts once.)
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
            .put([message_item_with_uuid(
                group,
                "2026-02-01T00:00:00+00:00",
                &format!("m-{group}"),
                "new",
            )])
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
        (planned[0].records_read, planned[0].rows_moved),
        (2, 4),
        "{planned:?}"
    );
    assert_eq!(snapshot(&table).await, before, "--dry-run wrote");

    let reports = redrive::redrive(&table.app, &streams, failed, &options()).await;
    let report = &reports[0];
    assert_eq!(
        (report.records_read, report.relevant, report.rows_moved),
        (2, 2, 4)
    );
    assert!(!report.failed(), "{report:?}");
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
        assert!(report.range_failing, "{report:?}");
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
    let streams = local::streams_client_for(&table.config, &stream_requests).await;
    let reports = redrive::redrive(&table.app, &streams, failed.clone(), &options()).await;
    assert_eq!(stream_requests.total(), 0, "{:?}", stream_requests.counts());
    let report = &reports[0];
    assert_eq!((report.records_read, report.stream_pages), (2, 0));
    assert!(!report.failed(), "{report:?}");
    // Andrew-Londo's 2 rows and the crew's 4 move to their message.
    assert_eq!(report.rows_moved, 6, "{report:?}");
    let rows = table.row_summaries(seed::GROUP_ANDREW_LONDO).await;
    assert!(rows
        .iter()
        .all(|(_, sk, _)| sk == "2025-01-15T10:00:00.123456+00:00"));

    let again = redrive::redrive(&table.app, &streams, failed, &options()).await;
    assert_eq!(totals(&again), (0, 6, 0));
}

#[test]
fn the_binary_reports_each_record_and_exits_non_zero_while_anything_fails() {
    let endpoint = local::endpoint();
    let table = local::unique_table();
    // The table named with `--table` (`given`), or by TABLE_NAME: then another table's range is refused.
    let ddb = |given: bool, args: &[&str], stdin: Option<&str>| {
        let mut command = bin::command(bin::ddb());
        command.endpoint(endpoint);
        if given {
            command.table(&table);
        } else {
            command.env("TABLE_NAME", &table);
        }
        command
            .args(args)
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
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(ddb(true, &["schema-load"], None).status.success());
    assert!(ddb(true, &["seed"], None).status.success());
    let sample = s3_sample(&table);

    // The sample's stream label is not this table's stream: a warning, in the dry run too.
    let planned = ddb(true, &["redrive", "--dry-run", "-"], Some(&sample));
    assert!(planned.status.success(), "{planned:?}");
    let out = text(&planned.stdout);
    assert!(
        out.contains("(s3-object, dry run): read 2, relevant 2; rows that would be moved 6, edited 0, fell back 0, \
             already current 0; still failing 0 records, 0 groups"),
        "{out}"
    );
    let err = text(&planned.stderr);
    assert!(
        err.contains("ddb: warning: stdin:1: the range is from stream arn:aws:dynamodb:")
            && err.contains(&format!("which is not table {table}'s current stream")),
        "{err}"
    );

    let done = ddb(true, &["--json", "redrive", "-"], Some(&sample));
    assert!(done.status.success(), "{done:?}");
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(
        (
            &report["rows_moved"],
            &report["records_failing"],
            &report["groups_failing"]
        ),
        (&json!(6), &json!(0), &json!(0)),
        "{report}"
    );
    assert_eq!(report["warnings"].as_array().map(Vec::len), Some(1));

    // Another table's range, the table from TABLE_NAME: refused, reported, exit code 1.
    let other = s3_sample("some-other-table");
    let refused = ddb(false, &["redrive", "-"], Some(&other));
    assert!(!refused.status.success(), "{refused:?}");
    let out = text(&refused.stdout);
    assert!(out.contains("pass --table some-other-table"), "{out}");
    assert!(
        text(&refused.stderr).contains("still failing in 1 of 1 failure records"),
        "{refused:?}"
    );
    // With --table: its records are redriven into this table (whose rows they already moved), with a warning.
    let overridden = ddb(true, &["redrive", "-"], Some(&other));
    assert!(overridden.status.success(), "{overridden:?}");
    assert!(
        text(&overridden.stderr).contains(&format!(
            "the range is from the stream of table some-other-table; its records are redriven into table {table} (--table)"
        )),
        "{overridden:?}"
    );
    assert!(
        text(&overridden.stdout)
            .contains("read 2, relevant 2; rows moved 0, edited 0, fell back 0, already current 6"),
        "{overridden:?}"
    );

    // A folder: what is not failure records is skipped, each file named; the rest is redriven.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "# failed batches of 2026-12-07\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.json"), "").unwrap();
    std::fs::write(dir.path().join("s3-object.json"), &sample).unwrap();
    let folder = dir.path().display().to_string();
    let run = ddb(true, &["redrive", "--dry-run", &folder], None);
    assert!(run.status.success(), "{run:?}");
    let err = text(&run.stderr);
    assert!(
        err.contains(&format!("ddb: skipped {folder}/README.md:1: not JSON")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "ddb: skipped {folder}/empty.json holds no failure record"
        )),
        "{err}"
    );
    let out = text(&run.stdout);
    assert_eq!(out.matches("(s3-object, dry run)").count(), 1, "{out}");
    // A file that starts as failure records and then breaks is an error, not a skip.
    std::fs::write(
        dir.path().join("s3-object.json"),
        format!("{}\n{{\"truncated\": ", sample.trim_end()),
    )
    .unwrap();
    let broken = ddb(true, &["redrive", "--dry-run", &folder], None);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    assert!(
        text(&broken.stderr).contains("s3-object.json:")
            && text(&broken.stderr).contains("not JSON"),
        "{broken:?}"
    );
}

/// Whether policies/operator-redrive.json allows `action` on `resource` (`table/<name>...`, as the request log
/// names it) with `leading_key`: the statements' placeholders stand for this test's table and cache table.
fn operator_allows(
    action: &str,
    resource: &str,
    leading_key: Option<&str>,
    table: &str,
    cache_table: &str,
) -> bool {
    operator_statements().iter().any(|statement| {
        let resources = as_list(&statement["Resource"]);
        let named = resources.iter().any(|r| {
            r == resource
                || r.replace("${TableName}", table)
                    .replace("${AppName}-cache-${Env}", cache_table)
                    .ends_with(&format!(":{resource}"))
        });
        let keys_ok =
            match statement.pointer("/Condition/ForAllValues:StringLike/dynamodb:LeadingKeys") {
                None => true,
                Some(patterns) => as_list(patterns).iter().any(|p| {
                    let prefix = p.trim_end_matches('*');
                    leading_key.is_some_and(|k| k.starts_with(prefix))
                }),
            };
        as_list(&statement["Action"]).iter().any(|a| a == action) && named && keys_ok
    })
}

fn operator_statements() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/operator-redrive.json"
    );
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    policy["Statement"].as_array().unwrap().clone()
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// A cache entry as the app's readers fill it (docs/CACHE.md), live for ten minutes.
async fn cache_entry(table: &TestTable, cache_table: &str, id: &str) {
    let expires = chrono::Utc::now().timestamp() + 600;
    table
        .client
        .put_item()
        .table_name(cache_table)
        .item("id", items::attr(id))
        .item("cached_value", items::attr("[]"))
        .item(
            "expires_at",
            aws_sdk_dynamodb::types::AttributeValue::N(expires.to_string()),
        )
        .send()
        .await
        .expect("a cache entry");
}

async fn cache_ids(table: &TestTable, cache_table: &str) -> Vec<String> {
    let page = table
        .client
        .scan()
        .table_name(cache_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan the cache");
    let mut ids: Vec<String> = page.items().iter().map(|i| items::s(i, "id")).collect();
    ids.sort();
    ids
}

/// A redrive with a cache invalidates what it changes, as the function does (a dry run leaves the cache alone),
/// and every call it makes (a move, an edit, a fallback, the cache, the stream, DescribeTable) is one
/// policies/operator-redrive.json allows; every action that policy grants is one of them.
#[tokio::test]
async fn the_operator_policy_allows_exactly_what_a_redrive_with_a_cache_does() {
    let table = TestTable::new().await;
    let cache_table = format!("cache-{}", uuid::Uuid::new_v4().simple());
    ddb::commands::schema::create_cache_table(&table.client, &cache_table)
        .await
        .expect("the cache table");
    let (e0, d0, d1) = (
        "2026-01-15T00:00:00+00:00",
        "2026-01-10T00:00:00+00:00",
        "2026-01-20T00:00:00+00:00",
    );
    // g-p: a new message (rows move); g-e: an edit (rows rewritten in place); g-d: a removal (rows fall back).
    rows(&table, &["g-p"]).await;
    table
        .put([
            group_row("alice-g-e", "g-e", e0, "before"),
            group_row("bob-g-e", "g-e", e0, "before"),
            group_row("alice-g-d", "g-d", d1, "d1"),
            group_row("bob-g-d", "g-d", d1, "d1"),
            message_item_with_uuid("g-e", e0, "m-g-e", "before"),
            message_item_with_uuid("g-d", d0, "m-g-d", "d0"),
            message_item_with_uuid("g-d", d1, "m-g-d", "d1"),
        ])
        .await;
    table
        .put([
            message_item_with_uuid("g-p", "2026-02-01T00:00:00+00:00", "m-g-p", "new"),
            message_item_with_uuid("g-e", e0, "m-g-e", "after"),
        ])
        .await;
    table
        .client
        .delete_item()
        .table_name(table.table())
        .key("pk", items::attr("MSG#g-d"))
        .key("sk", items::attr(d1))
        .send()
        .await
        .unwrap();
    for id in [
        "conversations#alice-g-p",
        "messages#g-p",
        "conversations#bob-g-d",
        "conversations#someone-else",
    ] {
        cache_entry(&table, &cache_table, id).await;
    }
    let (arn, shard, records) = stream_records(&table).await;
    let last = &records.last().unwrap().1;
    let failed =
        parse(&sqs_message(&arn, &shard, &records[0].1, last, "2026-02-01T00:00:00Z").to_string());
    let stream_requests = RequestLog::new();
    let streams = local::streams_client_for(&table.config, &stream_requests).await;
    let app = table.app.clone().with_cache(std::sync::Arc::new(
        messaging_stream::cache::dynamo::DynamoCache::new(table.client.clone(), &cache_table),
    ));
    let all_cached = cache_ids(&table, &cache_table).await;
    assert_eq!(all_cached.len(), 4);

    let dry = RedriveOptions {
        dry_run: true,
        ..options()
    };
    let planned = redrive::redrive(&app, &streams, failed.clone(), &dry).await;
    assert_eq!(
        cache_ids(&table, &cache_table).await,
        all_cached,
        "the dry run left the cache alone"
    );

    table.requests.reset();
    let reports = redrive::redrive(&app, &streams, failed, &options()).await;
    let report = &reports[0];
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        (
            report.rows_moved,
            report.rows_edited,
            report.rows_fallen_back
        ),
        (2, 2, 2),
        "{report:?}"
    );
    assert_eq!(
        (
            planned[0].rows_moved,
            planned[0].rows_edited,
            planned[0].rows_fallen_back
        ),
        (2, 2, 2),
        "{planned:?}"
    );
    assert_eq!(
        cache_ids(&table, &cache_table).await,
        ["conversations#someone-else"],
        "the lists the redrive changed are invalidated, no other"
    );

    // The stream: only the two reads the policy grants on ${MessagesTable.StreamArn}.
    let operations: Vec<String> = stream_requests.counts().into_keys().collect();
    assert_eq!(operations, ["GetRecords", "GetShardIterator"]);
    let allowed = |action: &str, resource: &str, key: Option<&str>| {
        operator_allows(action, resource, key, table.table(), &cache_table)
    };
    for operation in &operations {
        assert!(allowed(
            &format!("dynamodb:{operation}"),
            "${MessagesTable.StreamArn}",
            None
        ));
    }
    // The tables: every authorisation the handler's calls needed.
    let uses = table.requests.iam_uses();
    let own = format!("table/{}", table.table());
    let cache = format!("table/{cache_table}");
    assert!(
        !allowed("dynamodb:PutItem", &own, Some("MSG#g-p")),
        "the check itself: a message write is not allowed"
    );
    assert!(
        !allowed("dynamodb:BatchWriteItem", &cache, Some("GRP#a")),
        "the check itself: only the cache's keys"
    );
    assert!(allowed("dynamodb:PutItem", &own, Some("GRP#a")));
    for used in &uses {
        assert!(
            allowed(&used.action, &used.resource, used.leading_key.as_deref()),
            "policies/operator-redrive.json does not allow {used:?}"
        );
    }
    assert!(
        uses.iter()
            .any(|u| u.action == "dynamodb:BatchWriteItem" && u.resource == cache),
        "{uses:?}"
    );
    // And nothing more: every DynamoDB action the policy grants was needed.
    let used_actions: std::collections::BTreeSet<String> = uses
        .iter()
        .map(|u| u.action.clone())
        .chain(operations.iter().map(|o| format!("dynamodb:{o}")))
        .collect();
    let granted: std::collections::BTreeSet<String> = operator_statements()
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .filter(|a| a.starts_with("dynamodb:"))
        .collect();
    assert_eq!(used_actions, granted);
}

/// A failure record holding its records (the S3 object's shape), its range on `stream_arn`.
fn with_records(stream_arn: &str, records: &[Value]) -> FailureRecord {
    let sequence = |r: &Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned();
    let object = json!({
        "requestContext": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f", "condition": "RetryAttemptsExhausted"},
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001",
            "startSequenceNumber": sequence(&records[0]),
            "endSequenceNumber": sequence(records.last().unwrap()),
            "streamArn": stream_arn
        },
        "payload": json!({ "Records": records }).to_string()
    });
    parse(&object.to_string()).remove(0)
}

/// What a report counts, apart from where it ran.
fn counts(r: &RecordReport) -> [usize; 9] {
    [
        r.records_read,
        r.relevant,
        r.rows_moved,
        r.rows_edited,
        r.rows_fallen_back,
        r.rows_already_current,
        r.rows_gone,
        r.records_failing,
        r.groups_failing,
    ]
}

/// The dry run and the real run report the same rows, each row once, in batches of 1, 2 and 100 records: moves
/// (one group twice), an edit, a removal, a replay, a message and its edit, two conversations of one owner with a
/// message at the same instant (one row nudged), and a removal followed by a message that was itself removed.
/// The last one is also where the batch size shows: in batches of one record its rows really move forward to
/// that message and fall back again (moved, by the handler's counts); coalesced, they only fall back. Redriven
/// again, every row counts once.
#[tokio::test]
async fn dry_run_and_real_run_count_the_same_rows_for_any_batch_size() {
    use testkit::items::{edit_record, message_record, remove_record};
    let (m1, m2, x1, same) = (
        "2026-02-01T00:00:01+00:00",
        "2026-02-01T00:00:02+00:00",
        "2026-02-01T00:00:03+00:00",
        "2026-02-01T00:00:04+00:00",
    );
    let (d0, e0, x0, d1, c1) = (
        "2026-01-10T00:00:00+00:00",
        "2026-01-15T00:00:00+00:00",
        "2026-01-16T00:00:00+00:00",
        "2026-01-20T00:00:00+00:00",
        "2026-01-25T00:00:00+00:00",
    );
    // Groups spread over the batch, so that small batches split them.
    let records = [
        message_record("g-move", m1, "m1", "101"),
        edit_record("g-edit", e0, "after", "102"),
        remove_record("g-del", d1, "103"),
        message_record("g-mix", x1, "x", "104"),
        message_record("g-cur", c1, "c", "105"),
        message_record("g-n1", same, "n1", "106"),
        message_record("g-move", m2, "m2", "107"),
        edit_record("g-mix", x1, "x edited", "108"),
        message_record("g-n2", same, "n2", "109"),
        remove_record("g-back", d1, "110"),
        message_record("g-back", x0, "x0", "111"),
        remove_record("g-back", x0, "112"),
    ];
    for batch_size in [1, 2, 100] {
        let table = TestTable::new().await;
        rows(&table, &["g-move", "g-mix"]).await;
        table
            .put([
                group_row("alice-g-edit", "g-edit", e0, "before"),
                group_row("bob-g-edit", "g-edit", e0, "before"),
                group_row("alice-g-del", "g-del", d1, "d1"),
                group_row("bob-g-del", "g-del", d1, "d1"),
                group_row("alice-g-cur", "g-cur", c1, "c"),
                group_row("bob-g-cur", "g-cur", c1, "c"),
                group_row("carol", "g-n1", OLD, "old"),
                group_row("dave", "g-n1", OLD, "old"),
                // (Not at OLD: one owner's two conversations cannot share a sort key.)
                group_row("carol", "g-n2", "2026-01-01T00:00:00.000002+00:00", "old"),
                group_row("erin", "g-n2", OLD, "old"),
                group_row("alice-g-back", "g-back", d1, "d1"),
                group_row("bob-g-back", "g-back", d1, "d1"),
                message_item_with_uuid("g-del", d0, "m-g-del", "d0"),
                message_item_with_uuid("g-back", d0, "m-g-back", "d0"),
            ])
            .await;
        let streams = stream::client(&table.config).await;
        let arn = stream::stream_arn(&streams, table.table()).await.unwrap();
        let failed = vec![with_records(&arn, &records)];
        let options = RedriveOptions {
            batch_size,
            ..options()
        };
        let dry = RedriveOptions {
            dry_run: true,
            ..options.clone()
        };
        let before = snapshot(&table).await;
        let planned = redrive::redrive(&table.app, &streams, failed.clone(), &dry).await;
        assert_eq!(snapshot(&table).await, before, "--dry-run wrote");
        let done = redrive::redrive(&table.app, &streams, failed.clone(), &options).await;
        let (planned, done) = (&planned[0], &done[0]);
        assert!(
            planned.warnings.is_empty() && done.warnings.is_empty(),
            "{done:?}"
        );
        assert_eq!(
            counts(planned),
            counts(done),
            "batch size {batch_size}: {planned:?} vs {done:?}"
        );
        // read, relevant; moved (move, mix, n1, n2; g-back one by one), edited, fell back (del; g-back), current,
        // gone; failing records, groups.
        let back_moves = if batch_size == 1 { 2 } else { 0 };
        assert_eq!(
            counts(done),
            [12, 12, 8 + back_moves, 2, 4 - back_moves, 2, 0, 0, 0],
            "batch size {batch_size}: {done:?}"
        );
        assert_eq!(done.invocations, 12usize.div_ceil(batch_size));
        assert_eq!(
            table.row_summaries("g-back").await,
            [
                ("GRP#alice-g-back".into(), d0.into(), "d0".into()),
                ("GRP#bob-g-back".into(), d0.into(), "d0".into())
            ]
        );
        let carol: Vec<String> = table
            .all_items()
            .await
            .iter()
            .filter(|i| items::s(i, "pk") == "GRP#carol")
            .map(|i| items::s(i, "sk"))
            .collect();
        assert_eq!(
            carol.len(),
            2,
            "both of carol's conversations are listed: {carol:?}"
        );
        assert!(carol.contains(&same.to_owned()), "{carol:?}");

        // Again: the 16 rows, each counted once. In batches that split g-mix's message from its edit, the replayed
        // message rewrites its rows' text in place and the edit puts it back (2 rows edited, as the handler says);
        // one by one, g-back's rows move to x0 and fall back again; in one batch, every row is current.
        let again = redrive::redrive(&table.app, &streams, failed, &options).await;
        let again = counts(&again[0]);
        assert_eq!(
            again[2..].iter().sum::<usize>(),
            16,
            "batch size {batch_size}: {again:?}"
        );
        let split = if batch_size < 5 { 2 } else { 0 };
        assert_eq!(
            again,
            [
                12,
                12,
                back_moves,
                split,
                0,
                16 - split - back_moves,
                0,
                0,
                0
            ],
            "batch size {batch_size}"
        );
    }
}

/// A table dropped and re-created: a range of its old stream is redriven (its records are still readable), but
/// with a warning, in the dry run too; a range of the new stream has none.
#[tokio::test]
async fn a_range_from_the_old_stream_of_a_re_created_table_warns() {
    let table = TestTable::new().await;
    rows(&table, &["g-old"]).await;
    let streams = stream::client(&table.config).await;
    let old = stream::stream_arn(&streams, table.table()).await.unwrap();
    ddb::commands::admin::drop_table(&table.client, table.table())
        .await
        .unwrap();
    // DynamoDB Local labels a stream by its creation time, to the millisecond.
    tokio::time::sleep(Duration::from_millis(5)).await;
    ddb::commands::schema::create_table(
        &table.client,
        table.table(),
        &table.config.group_index_name,
    )
    .await
    .unwrap();
    let new = stream::stream_arn(&streams, table.table()).await.unwrap();
    assert_ne!(old, new);
    let records = [items::message_record(
        "g-old",
        "2026-02-01T00:00:00+00:00",
        "new",
        "100",
    )];
    for dry_run in [true, false] {
        let options = RedriveOptions {
            dry_run,
            ..options()
        };
        let reports = redrive::redrive(
            &table.app,
            &streams,
            vec![with_records(&old, &records)],
            &options,
        )
        .await;
        let report = &reports[0];
        assert_eq!(report.warnings.len(), 1, "{report:?}");
        let warning = &report.warnings[0];
        assert!(
            warning.contains(&format!(
                "the range is from stream {old}, which is not table {}'s current stream ({new})",
                table.table()
            )) && warning.contains("dropped and re-created"),
            "{warning}"
        );
        // The re-created table has none of the old rows: nothing to move, and nothing failed.
        assert_eq!(
            (report.relevant, report.rows_written()),
            (1, 0),
            "{report:?}"
        );
        let current = redrive::redrive(
            &table.app,
            &streams,
            vec![with_records(&new, &records)],
            &options,
        )
        .await;
        assert!(current[0].warnings.is_empty(), "{current:?}");
    }
}

/// The dry run's store keeps its writes: later reads see them, the table does not, and its conditions fail as
/// DynamoDB's would (a row no longer at its old key; a new key already held).
#[tokio::test]
async fn the_dry_run_store_keeps_its_writes_and_checks_their_conditions() {
    use messaging_stream::event::{MessageChange, MessageText, RecordRef};
    use messaging_stream::plan::{self, RowPlan};
    use messaging_stream::store::{RowFailure, WriteOutcome};
    let table = TestTable::new().await;
    let held = "2026-02-01T00:00:00+00:00";
    table
        .put([
            group_row("alice", "g", OLD, "old"),
            group_row("bob", "g", OLD, "old"),
            group_row("bob", "other", held, "another conversation"),
        ])
        .await;
    let before = snapshot(&table).await;
    let store = table.app.store.dry_run();
    let update = plan::coalesce([MessageChange::write(
        RecordRef {
            position: 0,
            event_id: None,
            sequence_number: None,
        },
        "g",
        held,
        MessageText::new("new"),
    )])
    .remove(0);
    let rows = store.group_rows("g").await.unwrap();
    let write = |row: &plan::GroupRow| match plan::plan_row(row, &update, None, None) {
        RowPlan::Write(write) => write,
        other => panic!("{other:?}"),
    };
    let alice = rows.iter().find(|r| r.pk == "GRP#alice").unwrap();
    let bob = rows.iter().find(|r| r.pk == "GRP#bob").unwrap();
    // Bob's new key is held by his other conversation: cancelled, nothing kept.
    assert_eq!(
        store
            .write_rows(&[write(alice), write(bob)], "g")
            .await
            .unwrap(),
        WriteOutcome::Cancelled(vec![None, Some(RowFailure::NewKeyTaken)])
    );
    assert_eq!(
        store.write_rows(&[write(alice)], "g").await.unwrap(),
        WriteOutcome::Written
    );
    let seen: Vec<(String, String)> = store
        .group_rows("g")
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.pk, r.sk))
        .collect();
    assert!(
        seen.contains(&("GRP#alice".into(), held.into())),
        "{seen:?}"
    );
    assert!(
        !seen.contains(&("GRP#alice".into(), OLD.into())),
        "{seen:?}"
    );
    assert_eq!(
        store
            .owner_row("GRP#alice", "g")
            .await
            .unwrap()
            .map(|r| r.sk),
        Some(held.to_owned())
    );
    // The same write again, from the row as first read: its old key is gone.
    assert_eq!(
        store.write_rows(&[write(alice)], "g").await.unwrap(),
        WriteOutcome::Cancelled(vec![Some(RowFailure::OldKey)])
    );
    assert_eq!(
        snapshot(&table).await,
        before,
        "the dry-run store wrote to the table"
    );
    // Another dry run starts from the table again.
    let fresh = table.app.store.dry_run();
    assert_eq!(
        fresh
            .owner_row("GRP#alice", "g")
            .await
            .unwrap()
            .map(|r| r.sk),
        Some(OLD.to_owned())
    );
}

/// A dry-run store holds message text in memory; its Debug form (an App is Debug) never shows it.
#[tokio::test]
async fn the_dry_run_store_never_prints_the_text_it_holds() {
    use messaging_stream::event::{MessageChange, MessageText, RecordRef};
    use messaging_stream::plan::{self, RowPlan};
    let table = TestTable::new().await;
    table.put([group_row("alice", "g", OLD, "old")]).await;
    let store = table.app.store.dry_run();
    let update = plan::coalesce([MessageChange::write(
        RecordRef {
            position: 0,
            event_id: None,
            sequence_number: None,
        },
        "g",
        "2026-02-01T00:00:00+00:00",
        MessageText::new("private marker 7f3a"),
    )])
    .remove(0);
    let row = store.group_rows("g").await.unwrap().remove(0);
    let RowPlan::Write(write) = plan::plan_row(&row, &update, None, None) else {
        panic!("a move")
    };
    store.write_rows(&[write], "g").await.unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains("Draft { items: 2 }"), "{shown}");
    assert!(!shown.contains("7f3a"), "{shown}");
}
