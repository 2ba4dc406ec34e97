//! Issue 10: `ddb watch` as the template's event source mapping: settings from the template with
//! flags over them, two functions, a checkpoint that resumes, a re-created table followed, and
//! ParallelizationFactor keeping each key's records in order. On DynamoDB Local's real stream.

use aws_lambda_events::streams::DynamoDbEventResponse;
use ddb::commands::schema;
use ddb::event_source_mapping::stream;
use ddb::event_source_mapping::watch::{Function, FunctionError, Trigger, WatchOptions};
use futures::future::BoxFuture;
use messaging_stream::plan::Item;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::bin::{run_ddb as ddb, stderr};
use testkit::{items, local};

fn stats(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().expect("a stats line")).unwrap()
}

fn message(group: &str, created_at: &str, text: &str) -> Item {
    items::message_item(group, created_at, text)
}

const FILTER: &str =
    r#"'{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"MSG#"}]}}}}'"#;

/// A template with two stream functions: `Quick` (BatchSize 2, no retries, bisect on) and
/// `Slow` (a plain event source mapping, BatchSize 50).
fn two_functions() -> String {
    format!(
        r#"
Parameters:
  QuickBatch: {{Type: Number, Default: 2}}
Resources:
  Table: {{Type: AWS::DynamoDB::Table}}
  Quick:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: !Ref QuickBatch
            MaximumRetryAttempts: 0
            BisectBatchOnFunctionError: true
            FilterCriteria:
              Filters:
                - Pattern: {FILTER}
  Slow: {{Type: AWS::Lambda::Function}}
  SlowMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Slow
      EventSourceArn: !GetAtt Table.StreamArn
      StartingPosition: TRIM_HORIZON
      BatchSize: 50
"#
    )
}

async fn table_with(messages: usize) -> local::TestTable {
    let table = local::TestTable::new().await;
    let items = (0..messages).map(|i| {
        message(
            &format!("group-{}", i % 3),
            &format!("2026-01-01T00:00:{i:02}+00:00"),
            "hi",
        )
    });
    table.put(items.collect::<Vec<_>>()).await;
    table
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_come_from_the_template_and_a_flag_overrides_one() {
    let table = table_with(6).await;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    std::fs::write(&template, two_functions()).unwrap();
    let template = template.display().to_string();
    let failures = dir.path().join("failures.jsonl").display().to_string();
    let watch = |extra: &[&str]| {
        let args = [
            &[
                "watch",
                "--once",
                "--json",
                "--template",
                &template,
                "--failures-file",
                &failures,
            ][..],
            extra,
        ]
        .concat();
        ddb(local::endpoint(), table.table(), &args)
    };

    let several = watch(&[]);
    assert!(!several.status.success());
    assert!(
        stderr(&several).contains("Quick.Stream, SlowMapping"),
        "{}",
        stderr(&several)
    );
    assert!(
        stderr(&several).contains("--function"),
        "{}",
        stderr(&several)
    );

    // Quick: BatchSize 2 from the template's parameter: 6 messages, 3 invocations.
    let quick = watch(&["--function", "Quick"]);
    assert!(quick.status.success(), "{quick:?}");
    let first_line = stderr(&quick).lines().next().unwrap().to_owned();
    assert!(
        first_line.starts_with("ddb watch: settings from Quick.Stream of "),
        "{first_line}"
    );
    for expected in [
        "BatchSize 2 (template)",
        "MaximumRetryAttempts 0 (template)",
        "BisectBatchOnFunctionError true (template)",
        "ParallelizationFactor 1 (Lambda's default)",
        "FilterCriteria 1 patterns (template)",
    ] {
        assert!(first_line.contains(expected), "{expected}: {first_line}");
    }
    assert_eq!(stats(&quick)["invocations"], 3);

    // A fresh trigger (no checkpoint) reads it all again; the flag overrides the batch size only.
    let flagged = watch(&["--function", "Quick", "--batch-size", "6", "--no-bisect"]);
    assert!(flagged.status.success(), "{flagged:?}");
    let first_line = stderr(&flagged).lines().next().unwrap().to_owned();
    assert!(first_line.contains("BatchSize 6 (flag)"), "{first_line}");
    assert!(
        first_line.contains("BisectBatchOnFunctionError false (flag)"),
        "{first_line}"
    );
    assert!(
        first_line.contains("MaximumRetryAttempts 0 (template)"),
        "{first_line}"
    );
    assert_eq!(stats(&flagged)["invocations"], 1);

    // The plain mapping: BatchSize 50 and no filter.
    let slow = watch(&["--function", "SlowMapping"]);
    assert!(slow.status.success(), "{slow:?}");
    assert!(
        stderr(&slow).contains("BatchSize 50 (template)"),
        "{}",
        stderr(&slow)
    );
    assert_eq!(stats(&slow)["invocations"], 1);

    // Retries from the template: a table with no GSI fails every group; MaximumRetryAttempts 0
    // gives the batch up after one invocation, a flag of 2 after three.
    let broken = local::unique_table();
    let client = &table.client;
    client
        .create_table()
        .table_name(&broken)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name(&broken)
        .set_item(Some(message("g", "2026-01-01T00:00:00+00:00", "hi")))
        .send()
        .await
        .unwrap();
    let run = |extra: &[&str]| {
        let args = [
            &[
                "watch",
                "--once",
                "--json",
                "--template",
                &template,
                "--function",
                "Quick",
                "--failures-file",
                &failures,
            ][..],
            extra,
        ]
        .concat();
        ddb(local::endpoint(), &broken, &args)
    };
    let gave_up = run(&[]);
    assert!(!gave_up.status.success(), "given up: non-zero");
    assert_eq!(stats(&gave_up)["invocations"], 1);
    let retried = run(&["--max-retries", "2"]);
    assert_eq!(stats(&retried)["invocations"], 3, "{}", stderr(&retried));
    // The retries were logged, without colour codes (stderr is not a terminal here).
    assert!(
        stderr(&retried).contains("invocation failed; retrying"),
        "{}",
        stderr(&retried)
    );
    assert!(!stderr(&retried).contains('\u{1b}'), "{}", stderr(&retried));
    // The failures file keeps the records (the last line is the latest range).
    let text = std::fs::read_to_string(&failures).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["payload"]["Records"][0]["dynamodb"]["NewImage"]["message"]["S"],
        "hi"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_resumes_without_sending_again() {
    let table = table_with(5).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json").display().to_string();
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let watch = |checkpoint: Option<&str>| {
        let mut args = vec![
            "watch",
            "--once",
            "--json",
            "--template",
            template,
            "--no-filter",
        ];
        if let Some(checkpoint) = checkpoint {
            args.extend(["--checkpoint", checkpoint]);
        }
        ddb(local::endpoint(), table.table(), &args)
    };
    let first = watch(Some(&checkpoint));
    assert!(first.status.success(), "{first:?}");
    assert_eq!(stats(&first)["records_read"], 5);
    table
        .put([message("group-9", "2026-01-02T00:00:00+00:00", "new")])
        .await;
    let second = watch(Some(&checkpoint));
    assert!(second.status.success(), "{second:?}");
    assert_eq!(
        stats(&second)["records_read"],
        1,
        "only the record after the checkpoint"
    );
    assert_eq!(stats(&second)["invocations"], 1);
    let third = watch(Some(&checkpoint));
    assert_eq!(stats(&third)["records_read"], 0);
    // Without the checkpoint everything is read again.
    assert_eq!(stats(&watch(None))["records_read"], 6);
}

/// One invocation: when it started and ended, and its records' (pk, sequence number).
type Seen = (Instant, Instant, Vec<(String, String)>);

/// Counts invocations and records what each one held and when it ran.
#[derive(Clone, Default)]
struct Timed {
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl Function for Timed {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>> {
        Box::pin(async move {
            let records: Vec<(String, String)> = event["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["dynamodb"]["Keys"]["pk"]["S"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                        r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            {
                let mut in_flight = self.in_flight.lock().unwrap();
                in_flight.0 += 1;
                in_flight.1 = in_flight.1.max(in_flight.0);
            }
            let start = Instant::now();
            // Batches of group-0 are slow: were its records spread over lanes, a later one would
            // overtake an earlier one.
            let slow = records.iter().any(|(pk, _)| pk == "MSG#group-0");
            tokio::time::sleep(Duration::from_millis(if slow { 120 } else { 20 })).await;
            self.in_flight.lock().unwrap().0 -= 1;
            self.seen
                .lock()
                .unwrap()
                .push((start, Instant::now(), records));
            Ok(DynamoDbEventResponse::default())
        })
    }
}

fn quick(options: WatchOptions) -> WatchOptions {
    WatchOptions {
        batching_window: Duration::ZERO,
        retry_delay: Duration::ZERO,
        poll_interval: Duration::from_millis(20),
        discovery_interval: Duration::from_millis(200),
        ..options
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parallelization_factor_runs_batches_at_once_and_keeps_each_keys_order() {
    let table = table_with(30).await;
    let function = Timed::default();
    let streams = stream::client(&table.config).await;
    let options = quick(WatchOptions {
        batch_size: 2,
        parallelization: 3,
        ..WatchOptions::default()
    });
    let trigger = Trigger::new(streams, function.clone(), table.table(), options)
        .await
        .unwrap();
    let stats = trigger.drain().await.unwrap();
    assert_eq!(stats.records_read, 30);
    let peak = function.in_flight.lock().unwrap().1;
    assert!(
        peak >= 2,
        "batches of one shard ran one at a time (peak {peak})"
    );
    assert!(
        peak <= 3,
        "more than ParallelizationFactor at once ({peak})"
    );

    let seen = function.seen.lock().unwrap().clone();
    let delivered: usize = seen.iter().map(|(_, _, r)| r.len()).sum();
    assert_eq!(delivered, 30, "every record once");
    let key = |s: &str| (s.len(), s.to_owned());
    let mut by_key: HashMap<String, Vec<(Instant, Instant, String)>> = HashMap::new();
    for (start, end, records) in &seen {
        for (pk, seq) in records {
            by_key
                .entry(pk.clone())
                .or_default()
                .push((*start, *end, seq.clone()));
        }
    }
    for (pk, mut deliveries) in by_key {
        deliveries.sort_by_key(|(start, _, seq)| (*start, key(seq)));
        for pair in deliveries.windows(2) {
            let ((_, end_a, seq_a), (start_b, _, seq_b)) = (&pair[0], &pair[1]);
            assert!(
                key(seq_a) < key(seq_b),
                "{pk}: {seq_b} was sent before {seq_a}"
            );
            // Two batches of one key never at once (same batch: same start).
            assert!(
                start_b >= end_a || pair[0].0 == pair[1].0,
                "{pk}: two batches at once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_created_table_is_followed_from_its_new_streams_start() {
    let table = table_with(2).await;
    let function = Timed::default();
    let streams = stream::client(&table.config).await;
    let trigger = Arc::new(
        Trigger::new(
            streams,
            function.clone(),
            table.table(),
            quick(WatchOptions::default()),
        )
        .await
        .unwrap(),
    );
    let old_arn = trigger.stream_arn();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let trigger = Arc::clone(&trigger);
        async move {
            trigger
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let delivered = |function: &Timed| -> Vec<String> {
        let seen = function.seen.lock().unwrap();
        seen.iter()
            .flat_map(|(_, _, r)| r.iter().map(|(pk, _)| pk.clone()))
            .collect()
    };
    let wait_for = |count: usize| {
        let function = function.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while delivered(&function).len() < count {
                assert!(Instant::now() < deadline, "only {:?}", delivered(&function));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(2).await;

    table
        .client
        .delete_table()
        .table_name(table.table())
        .send()
        .await
        .unwrap();
    schema::create_table(&table.client, table.table(), &table.config.group_index_name)
        .await
        .unwrap();
    table
        .put([message("after", "2026-02-01T00:00:00+00:00", "again")])
        .await;
    wait_for(3).await;
    assert_eq!(delivered(&function)[2], "MSG#after");
    assert_ne!(trigger.stream_arn(), old_arn, "the new stream is followed");

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
