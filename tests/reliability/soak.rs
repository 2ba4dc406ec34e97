//! Part 3 of the reliability proof: a soak through DynamoDB Local's real stream and the local
//! stream trigger (`ddb watch`'s library, `local::watch::Trigger`, with the template's filter),
//! with faults on both sides: the handler's DynamoDB client and the trigger's Streams client each
//! go through a fault proxy.
//!
//! Writers put message items into the table; the trigger reads the stream and invokes the real
//! handler, retrying as Lambda does (retries without limit, bisecting on invocation errors). The
//! test measures records per second, retries, and end-to-end lag (message written to its batch
//! acknowledged), then checks every row against the model. Every log line is captured too, and
//! none may hold message text.
//!
//! Quick slice in `make test`: 300 messages over 30 groups; `make reliability`: 10,000 over 500.

use crate::support::{self, Ledger};
use aws_lambda_events::streams::DynamoDbEventResponse;
use ddb::event_source_mapping::mapping::Start;
use ddb::event_source_mapping::stream;
use ddb::event_source_mapping::watch::{Function, FunctionError, Trigger, WatchOptions};
use ddb::filter::EventFilter;
use futures::future::BoxFuture;
use local::TestTable;
use messaging_stream::App;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::request_log::RequestLog;
use testkit::{items, local};

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
const WRITERS: usize = 8;

/// When each message was written, and what the trigger has acknowledged so far.
#[derive(Default)]
struct Progress {
    written: Mutex<HashMap<(String, String), Instant>>,
    lags_ms: Mutex<Vec<f64>>,
    acknowledged: AtomicUsize,
    invocations: AtomicUsize,
    invocation_errors: AtomicUsize,
    item_failures: AtomicUsize,
}

/// The real handler, timing each record from its write to the answer that acknowledges it.
struct Timed {
    app: App,
    progress: Arc<Progress>,
}

impl Function for Timed {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<DynamoDbEventResponse, FunctionError>> {
        Box::pin(async move {
            let result = self.app.invoke(event.clone()).await;
            let progress = &self.progress;
            progress.invocations.fetch_add(1, Ordering::Relaxed);
            let records = event["Records"].as_array().cloned().unwrap_or_default();
            let acknowledged = match &result {
                Err(_) => {
                    progress.invocation_errors.fetch_add(1, Ordering::Relaxed);
                    0
                }
                Ok(response) if response.batch_item_failures.is_empty() => records.len(),
                Ok(response) => {
                    progress.item_failures.fetch_add(1, Ordering::Relaxed);
                    let failed = response.batch_item_failures[0].item_identifier.clone();
                    records
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == failed.as_deref())
                        .unwrap_or(0)
                }
            };
            let now = Instant::now();
            let mut written = progress.written.lock().unwrap();
            for record in &records[..acknowledged] {
                let key = (
                    record["dynamodb"]["Keys"]["pk"]["S"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("MSG#")
                        .to_owned(),
                    record["dynamodb"]["Keys"]["sk"]["S"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                if let Some(at) = written.remove(&key) {
                    progress
                        .lags_ms
                        .lock()
                        .unwrap()
                        .push(now.duration_since(at).as_secs_f64() * 1000.0);
                    progress.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
            result
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_through_the_stream_with_faults() {
    let capture = support::global_capture();
    let messages = support::size(300, 10_000);
    let groups = support::size(30, 500);
    let table = TestTable::new().await;
    let mut rng = fastrand::Rng::with_seed(0x50a4);
    let (world, model, items) = support::world("soak", groups, &mut rng);
    support::load(&table.client, table.table(), items).await;
    let sent = support::messages(&world, messages, 1, &mut rng);

    // Faults: every kind at 1% on the handler's client (about 7% of its requests); every kind but
    // latency at 1% on the trigger's stream reads.
    let handler_plan = Fault::kinds(Duration::from_millis(20))
        .into_iter()
        .fold(FaultPlan::none().seed(11), |plan, fault| {
            plan.probability(fault, 0.01)
        });
    let handler_proxy = Proxy::start(local::address(), handler_plan).await.unwrap();
    // The stream side's first faults are scheduled, so even the quick slice meets them.
    let stream_plan = [
        Fault::Throttling,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::Reset,
        Fault::DropResponse,
    ]
    .into_iter()
    .fold(
        FaultPlan::none()
            .seed(12)
            .at(3, Fault::Reset)
            .at(6, Fault::Throttling)
            .at(9, Fault::DropResponse),
        |plan, fault| plan.probability(fault, 0.01),
    );
    let stream_proxy = Proxy::start(local::address(), stream_plan).await.unwrap();

    let mut config = table.config.clone();
    config.retry_mode = messaging_stream::config::RetryMode::Standard;
    let sdk_log = RequestLog::new();
    let client = support::client_via(
        &config,
        &handler_proxy.endpoint_url(),
        "soak",
        Some(Duration::from_millis(10)),
        &sdk_log,
    )
    .await;
    let app = App::on_client(client, config.clone());
    let mut stream_config = config.clone();
    stream_config.endpoint_url = Some(stream_proxy.endpoint_url());
    let streams = stream::client(&stream_config).await;

    let progress = Arc::new(Progress::default());
    let options = WatchOptions {
        from: Start::TrimHorizon,
        batch_size: 100,
        batching_window: Duration::from_millis(50),
        bisect: true,
        max_retries: None,
        retry_delay: Duration::from_millis(20),
        poll_interval: Duration::from_millis(50),
        discovery_interval: Duration::from_millis(500),
        ..WatchOptions::default()
    };
    let trigger = Trigger::new(
        streams,
        Timed {
            app,
            progress: progress.clone(),
        },
        table.table(),
        options,
    )
    .await
    .expect("the test table has a stream")
    .with_filter(EventFilter::from_template(TEMPLATE).expect("template.yaml's filter"));

    let started = Instant::now();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watching = {
        let trigger = &trigger;
        async move {
            trigger
                .run_until(async {
                    let _ = done_rx.await;
                })
                .await
        }
    };
    let writing = async {
        let chunk = sent.len().div_ceil(WRITERS);
        let (progress, table) = (&progress, &table);
        futures::future::join_all(sent.chunks(chunk).map(|part| async move {
            for s in part {
                progress
                    .written
                    .lock()
                    .unwrap()
                    .insert((s.group.clone(), s.created_at.clone()), Instant::now());
                table
                    .client
                    .put_item()
                    .table_name(table.table())
                    .set_item(Some(items::message_item(&s.group, &s.created_at, &s.text)))
                    .send()
                    .await
                    .expect("write a message");
            }
        }))
        .await;
        let written_in = started.elapsed();
        // Wait for every message to be acknowledged (bounded: a stuck trigger fails the test).
        let deadline = Instant::now() + Duration::from_secs(support::size(120, 1_800) as u64);
        while progress.acknowledged.load(Ordering::Relaxed) < sent.len() {
            assert!(
                Instant::now() < deadline,
                "only {} of {} messages acknowledged; trigger stats {}",
                progress.acknowledged.load(Ordering::Relaxed),
                sent.len(),
                trigger.stats().snapshot()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = done_tx.send(());
        written_in
    };
    let (watched, written_in) = tokio::join!(watching, writing);
    let elapsed = started.elapsed();
    let stats = watched.expect("the trigger ran without error");

    let mut ledger = Ledger::new(model);
    for s in &sent {
        ledger.model.apply(s);
    }
    let end = ledger.check_all(&table.client, table.table()).await;

    let mut lags = progress.lags_ms.lock().unwrap().clone();
    lags.sort_by(f64::total_cmp);
    let handler_counts = handler_proxy.counts();
    let stream_counts = stream_proxy.counts();
    let logs = capture.text();
    let leaks = logs
        .lines()
        .filter(|line| line.contains(support::TEXT_MARKER))
        .count();
    let figures = serde_json::json!({
        "messages": sent.len(),
        "groups": groups,
        "seconds": elapsed.as_secs_f64(),
        "writes_seconds": written_in.as_secs_f64(),
        "records_per_second": sent.len() as f64 / elapsed.as_secs_f64(),
        "invocations": progress.invocations.load(Ordering::Relaxed),
        "failed_invocations": stats.failed_invocations,
        "invocation_errors": progress.invocation_errors.load(Ordering::Relaxed),
        "item_failures": progress.item_failures.load(Ordering::Relaxed),
        "records_given_up": stats.records_given_up,
        "handler_requests": handler_counts.requests,
        "handler_faults": handler_counts.total_faults(),
        "sdk_attempts": sdk_log.total(),
        "stream_requests": stream_counts.requests,
        "stream_faults": stream_counts.total_faults(),
        "lag_ms": {
            "p50": percentile(&lags, 0.5),
            "p95": percentile(&lags, 0.95),
            "p99": percentile(&lags, 0.99),
            "max": percentile(&lags, 1.0),
        },
        "check": end,
        "log_lines": logs.lines().count(),
        "log_lines_with_text": leaks,
    });
    support::report("soak", figures.clone());
    eprintln!("{figures:#}");
    assert!(end.is_clean(), "{end:?}");
    assert_eq!(lags.len(), sent.len());
    assert_eq!(stats.records_given_up, 0);
    assert!(handler_counts.total_faults() > 0 && stream_counts.total_faults() > 0);
    assert_eq!(leaks, 0, "message text in the logs");
}
