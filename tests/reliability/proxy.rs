//! The fault proxy itself, through the real SDK and DynamoDB Local: each fault reaches the SDK as
//! production's would, so the SDK's retry policy treats it the same way.

use crate::support;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::items::attr;
use testkit::local::{self, TestTable};
use testkit::request_log::RequestLog;

/// A client of `table`'s config pointed at the proxy, counting its attempts, in standard retry
/// mode with a short back-off (the adaptive rate limiter is measured in reliability_faults).
async fn via(
    table: &TestTable,
    proxy: &Proxy,
    max_attempts: u32,
) -> (aws_sdk_dynamodb::Client, RequestLog) {
    let mut config = table.config.clone();
    config.max_attempts = max_attempts;
    config.retry_mode = messaging_stream::config::RetryMode::Standard;
    let log = RequestLog::new();
    let client = support::client_via(
        &config,
        &proxy.endpoint_url(),
        "proxy-test",
        Some(Duration::from_millis(5)),
        &log,
    )
    .await;
    (client, log)
}

async fn put(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Result<(), String> {
    client
        .put_item()
        .table_name(table)
        .item("pk", attr(pk))
        .item("sk", attr("s"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            e.code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
        })
}

async fn exists(table: &TestTable, pk: &str) -> bool {
    table
        .client
        .get_item()
        .table_name(table.table())
        .key("pk", attr(pk))
        .key("sk", attr("s"))
        .consistent_read(true)
        .send()
        .await
        .expect("direct read")
        .item
        .is_some()
}

#[tokio::test]
async fn every_fault_once_is_retried_by_the_sdk_and_the_write_lands_once() {
    support::global_capture();
    let table = TestTable::new().await;
    for fault in Fault::kinds(Duration::from_millis(20)) {
        let proxy = Proxy::start(local::address(), FaultPlan::none().first(1, fault))
            .await
            .unwrap();
        let (client, log) = via(&table, &proxy, 3).await;
        let pk = format!("pk-{}", fault.name());
        put(&client, table.table(), &pk)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", fault.name()));
        assert!(exists(&table, &pk).await, "{}", fault.name());
        let counts = proxy.counts();
        assert_eq!(counts.faults_of(fault), 1, "{}: {counts:?}", fault.name());
        // A delay is not an error: one attempt. Every other fault costs exactly one retry.
        let attempts = if matches!(fault, Fault::Delay(_)) {
            1
        } else {
            2
        };
        assert_eq!(log.total(), attempts, "{}: {counts:?}", fault.name());
        assert_eq!(counts.requests, attempts, "{}", fault.name());
        let forwarded = match fault {
            Fault::Delay(_) => 1,
            Fault::DropResponse => 2, // the write, whose answer was lost, then the retry
            _ => 1,
        };
        assert_eq!(counts.forwarded, forwarded, "{}", fault.name());
    }
}

/// What the SDK decided after each attempt: its client's own retry classifiers, run on the
/// attempt's result as its retry strategy runs them.
#[derive(Debug, Clone, Default)]
struct Verdicts(Arc<Mutex<Vec<RetryAction>>>);

impl Intercept for Verdicts {
    fn name(&self) -> &'static str {
        "Verdicts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let verdict =
            run_classifiers_on_ctx(runtime_components.retry_classifiers(), context.inner());
        self.0.lock().unwrap().push(verdict);
        Ok(())
    }
}

/// The two throttling answers are throttling to the SDK (the kind adaptive mode's rate limiter
/// and back-off react to); a 500 is retried too, but as a transient error.
#[tokio::test]
async fn throttling_answers_are_classified_as_throttling_errors() {
    support::global_capture();
    let table = TestTable::new().await;
    for (fault, code, verdict) in [
        (
            Fault::ProvisionedThroughputExceeded,
            "ProvisionedThroughputExceededException",
            RetryAction::throttling_error(),
        ),
        (
            Fault::Throttling,
            "ThrottlingException",
            RetryAction::throttling_error(),
        ),
        (
            Fault::InternalError,
            "InternalServerError",
            RetryAction::transient_error(),
        ),
    ] {
        let proxy = Proxy::start(local::address(), FaultPlan::none().probability(fault, 1.0))
            .await
            .unwrap();
        let (client, log) = via(&table, &proxy, 2).await;
        let verdicts = Verdicts::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(verdicts.clone())
                .build(),
        );
        let error = put(&client, table.table(), "never").await.unwrap_err();
        assert_eq!(error, code);
        assert_eq!(log.total(), 2, "the SDK retried {code}");
        assert_eq!(
            *verdicts.0.lock().unwrap(),
            vec![verdict.clone(); 2],
            "the SDK's classification of {code}"
        );
        assert_eq!(proxy.counts().forwarded, 0);
    }
    assert!(!exists(&table, "never").await);
}

#[tokio::test]
async fn a_dropped_response_means_the_write_happened_though_the_client_failed() {
    support::global_capture();
    let table = TestTable::new().await;
    let proxy = Proxy::start(
        local::address(),
        FaultPlan::none().probability(Fault::DropResponse, 1.0),
    )
    .await
    .unwrap();
    let (client, _) = via(&table, &proxy, 1).await;
    let error = put(&client, table.table(), "ghost").await.unwrap_err();
    assert!(!error.is_empty());
    assert!(exists(&table, "ghost").await, "the write reached DynamoDB");
    assert_eq!(proxy.counts().forwarded, 1);
}

#[tokio::test]
async fn latency_is_added_to_every_request_and_the_plan_can_change() {
    support::global_capture();
    let table = TestTable::new().await;
    let proxy = Proxy::start(
        local::address(),
        FaultPlan::with_latency(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let (client, _) = via(&table, &proxy, 1).await;
    let started = Instant::now();
    for i in 0..4 {
        put(&client, table.table(), &format!("slow-{i}"))
            .await
            .unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    proxy.set_plan(FaultPlan::none().first(1, Fault::Unavailable));
    let error = {
        let (client, _) = via(&table, &proxy, 1).await;
        put(&client, table.table(), "after").await.unwrap_err()
    };
    assert_eq!(error, "ServiceUnavailable");
    let counts = proxy.counts();
    assert_eq!(counts.operations["PutItem"], 5);
    assert_eq!(counts.forwarded, 4);
}

#[tokio::test]
async fn dropping_the_proxy_stops_it() {
    let proxy = Proxy::start(local::address(), FaultPlan::none())
        .await
        .unwrap();
    let addr = proxy.addr();
    assert!(addr.ip().is_loopback());
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
