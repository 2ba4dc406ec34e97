//! The function's metrics: one CloudWatch Embedded Metric Format (EMF) document per invocation,
//! written by `metrique`'s EMF writer (AWS's wide-event metrics library) from the batch's
//! [`Summary`] and its count of DynamoDB requests ([`crate::request_count`]).
//!
//! Owns: the names and units of the metrics that are not counts of the batch, the dimensions
//! (service and function only), the namespace and switches read from the environment, and where
//! the documents go (stdout in Lambda, stderr for `ddb --metrics`, memory in tests). Does not own
//! what is counted: the counts and their metric names are declared in [`Counts`] (flattened into
//! the document), the handler builds the [`Summary`]. Identifiers (the sequence number a retry
//! starts from) are properties of the document, never dimensions; message text never reaches it.

use crate::counts::Counts;
use crate::summary::Summary;
use aws_lambda_events::streams::DynamoDbEventResponse;
use metrique::emf::Emf;
use metrique::unit::{Count, Millisecond};
use metrique::unit_of_work::metrics;
use metrique::writer::format::Format;
use metrique::{CloseValue, RootEntry};
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "Cruddur/MessagingStream";
/// The service dimension when `POWERTOOLS_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE: &str = "messaging-stream";

/// The dimension names of every metric (one dimension set).
pub const DIMENSIONS: [&str; 2] = ["Service", "Function"];

/// Every metric a document carries: the names of an empty batch's document, so they follow the
/// declarations of `Invocation` and [`Counts`] (for tests and the template's checks).
pub fn metric_names() -> Vec<String> {
    let entry = Invocation {
        timestamp: SystemTime::now(),
        service: DEFAULT_SERVICE.to_owned(),
        function: DEFAULT_SERVICE.to_owned(),
        retry_from: None,
        counts: Counts::default(),
        groups_updated: 0,
        dynamo_db_requests: 0,
        batch_duration_ms: Duration::ZERO,
        cold_start: false,
    };
    let dimensions = vec![DIMENSIONS.iter().map(|d| (*d).to_owned()).collect()];
    let mut line = Vec::new();
    Emf::all_validations(DEFAULT_NAMESPACE.to_owned(), dimensions)
        .format(&RootEntry::new(entry.close()), &mut line)
        .expect("the declared document formats");
    let doc: serde_json::Value = serde_json::from_slice(&line).expect("EMF is JSON");
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|metric| metric["Name"].as_str().map(str::to_owned))
        .collect()
}

/// A metrics setting in the environment that cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetricsConfigError {
    #[error("METRICS={0:?}: expected on or off")]
    Switch(String),
    #[error("{name} is empty: unset it for the default, or give a name")]
    Empty { name: &'static str },
}

/// Where the documents go and what they are filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `METRICS` (`on`, the default, or `off`).
    pub enabled: bool,
    /// `METRICS_NAMESPACE`, default [`DEFAULT_NAMESPACE`].
    pub namespace: String,
    /// The `Service` dimension: `POWERTOOLS_SERVICE_NAME`, default [`DEFAULT_SERVICE`].
    pub service: String,
    /// The `Function` dimension: `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda), default the service.
    pub function: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            service: DEFAULT_SERVICE.to_owned(),
            function: DEFAULT_SERVICE.to_owned(),
        }
    }
}

impl MetricsConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, MetricsConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, MetricsConfigError> {
        let enabled = match lookup("METRICS").as_deref().map(str::trim) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("on") => true,
            Some(v) if v.eq_ignore_ascii_case("off") => false,
            Some(other) => return Err(MetricsConfigError::Switch(other.to_owned())),
        };
        let named = |name: &'static str, default: &str| match lookup(name) {
            None => Ok(default.to_owned()),
            Some(v) if v.trim().is_empty() => Err(MetricsConfigError::Empty { name }),
            Some(v) => Ok(v.trim().to_owned()),
        };
        let service = named("POWERTOOLS_SERVICE_NAME", DEFAULT_SERVICE)?;
        Ok(Self {
            enabled,
            namespace: named("METRICS_NAMESPACE", DEFAULT_NAMESPACE)?,
            function: named("AWS_LAMBDA_FUNCTION_NAME", &service)?,
            service,
        })
    }
}

/// Where documents are written, one JSON line each.
#[derive(Debug, Clone)]
pub enum Output {
    /// The Lambda's: CloudWatch Logs reads stdout and extracts the metrics.
    Stdout,
    /// `ddb replay --metrics` and `ddb watch --metrics`: beside the logs, apart from the results.
    Stderr,
    /// Tests: the bytes, shared with a [`Captured`].
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// What an [`Output::Memory`] received.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Every document written so far, one per line.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("captured metrics lock");
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The document of one invocation. Field names become metric names in PascalCase.
#[metrics(rename_all = "PascalCase")]
struct Invocation {
    #[metrics(timestamp)]
    timestamp: SystemTime,
    // Dimensions (strings are properties; the EMF writer declares these two as the dimension set).
    service: String,
    function: String,
    // Properties: identifiers, for Logs Insights; never dimensions.
    retry_from: Option<String>,
    /// The batch's counts, each a metric named in its declaration (src/counts.rs).
    #[metrics(flatten)]
    counts: Counts,
    /// Derived, not counted: the groups the batch touched less those that failed.
    #[metrics(unit = Count)]
    groups_updated: usize,
    #[metrics(unit = Count)]
    dynamo_db_requests: u64,
    #[metrics(unit = Millisecond)]
    batch_duration_ms: Duration,
    #[metrics(unit = Count)]
    cold_start: bool,
}

struct Inner {
    emf: Mutex<Emf>,
    config: MetricsConfig,
    output: Output,
    cold_start: AtomicBool,
}

/// The invocations' metrics writer: built once at start-up, shared by every invocation (cloning
/// shares it). [`Metrics::off`] writes nothing.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Metrics(off)"),
            Some(inner) => write!(f, "Metrics({:?} -> {:?})", inner.config, inner.output),
        }
    }
}

impl Metrics {
    /// Writes nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Writes one document per invocation to `output`, unless `config` turns metrics off.
    pub fn new(config: MetricsConfig, output: Output) -> Self {
        if !config.enabled {
            return Self::off();
        }
        let dimensions = vec![DIMENSIONS.iter().map(|d| (*d).to_owned()).collect()];
        // All validations: the writer refuses a document whose dimension is missing or whose names
        // repeat, rather than publishing a broken one. A 15-metric document is cheap either way.
        let emf = Emf::all_validations(config.namespace.clone(), dimensions);
        Self(Some(Arc::new(Inner {
            emf: Mutex::new(emf),
            config,
            output,
            cold_start: AtomicBool::new(true),
        })))
    }

    /// A writer into memory, and what it captures (for tests).
    pub fn captured(config: MetricsConfig) -> (Self, Captured) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let metrics = Self::new(config, Output::Memory(Arc::clone(&buffer)));
        (metrics, Captured(buffer))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `handling` (the handler on one batch), counting its DynamoDB requests and timing it,
    /// and writes the batch's document when it answers. Callers wrap the handler in it: the
    /// Lambda's main, `ddb replay`, `ddb watch` and `ddb redrive`.
    pub async fn measure<E>(
        &self,
        handling: impl Future<Output = Result<(DynamoDbEventResponse, Summary), E>>,
    ) -> Result<(DynamoDbEventResponse, Summary), E> {
        let started = Instant::now();
        let (result, requests) = crate::request_count::count_requests(handling).await;
        if let Ok((response, summary)) = &result {
            self.emit(summary, response, started.elapsed(), requests);
        }
        result
    }

    /// Writes the document of one invocation. The first document of this writer (the process's
    /// first invocation, in Lambda) has `ColdStart` 1. A document that cannot be written is logged
    /// and dropped: metrics never fail a batch.
    pub fn emit(
        &self,
        summary: &Summary,
        response: &DynamoDbEventResponse,
        duration: Duration,
        dynamodb_requests: u64,
    ) {
        let Some(inner) = &self.0 else {
            return;
        };
        let entry = Invocation {
            timestamp: SystemTime::now(),
            service: inner.config.service.clone(),
            function: inner.config.function.clone(),
            retry_from: response
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.clone()),
            counts: summary.counts,
            groups_updated: summary.counts.groups_updated(),
            dynamo_db_requests: dynamodb_requests,
            batch_duration_ms: duration,
            cold_start: inner.cold_start.swap(false, Ordering::Relaxed),
        };
        let mut line = Vec::with_capacity(1024);
        let formatted = inner
            .emf
            .lock()
            .expect("EMF writer lock")
            .format(&RootEntry::new(entry.close()), &mut line);
        if let Err(error) = formatted {
            tracing::error!(error = %error, "metrics document not written");
            return;
        }
        let written = match &inner.output {
            Output::Stdout => std::io::stdout().lock().write_all(&line),
            Output::Stderr => std::io::stderr().lock().write_all(&line),
            Output::Memory(buffer) => {
                buffer
                    .lock()
                    .expect("captured metrics lock")
                    .extend_from_slice(&line);
                Ok(())
            }
        };
        if let Err(error) = written {
            tracing::error!(error = %error, "metrics document not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn config_defaults_and_overrides() {
        assert_eq!(
            MetricsConfig::from_lookup(lookup(&[])).unwrap(),
            MetricsConfig::default()
        );
        let config = MetricsConfig::from_lookup(lookup(&[
            ("METRICS", "OFF"),
            ("METRICS_NAMESPACE", "Ns/X"),
            ("POWERTOOLS_SERVICE_NAME", "svc"),
        ]))
        .unwrap();
        assert!(!config.enabled);
        assert_eq!(config.namespace, "Ns/X");
        assert_eq!(
            (config.service.as_str(), config.function.as_str()),
            ("svc", "svc")
        );
        assert_eq!(
            MetricsConfig::from_lookup(lookup(&[("METRICS", "yes")])),
            Err(MetricsConfigError::Switch("yes".into()))
        );
        assert_eq!(
            MetricsConfig::from_lookup(lookup(&[("METRICS_NAMESPACE", " ")])),
            Err(MetricsConfigError::Empty {
                name: "METRICS_NAMESPACE"
            })
        );
    }

    #[test]
    fn off_writes_nothing() {
        let config = MetricsConfig {
            enabled: false,
            ..MetricsConfig::default()
        };
        let (metrics, captured) = Metrics::captured(config);
        assert!(!metrics.is_on());
        metrics.emit(
            &Summary::default(),
            &DynamoDbEventResponse::default(),
            Duration::ZERO,
            0,
        );
        assert!(captured.lines().is_empty());
    }

    #[test]
    fn one_document_with_every_metric_and_cold_start_once() {
        let (metrics, captured) = Metrics::captured(MetricsConfig::default());
        let summary = Summary {
            counts: Counts {
                records: 3,
                relevant: 2,
                ignored: 1,
                groups: 2,
                failed_groups: 1,
                rows_moved: 4,
                rows_current: 5,
                rows_gone: 6,
                ..Counts::default()
            },
            ..Summary::default()
        };
        let mut response = DynamoDbEventResponse::default();
        let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some("4200".into());
        response.batch_item_failures.push(failure);
        metrics.emit(&summary, &response, Duration::from_millis(12), 7);
        metrics.emit(&summary, &response, Duration::from_millis(12), 7);
        let docs: Vec<serde_json::Value> = captured
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        let doc = &docs[0];
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(directive["Dimensions"], serde_json::json!([DIMENSIONS]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        let mut expected = metric_names();
        expected.sort_unstable();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(doc["RecordsReceived"], 3);
        assert_eq!(doc["RowsMoved"], 4);
        assert_eq!(doc["RowsAlreadyCurrent"], 5);
        assert!(doc.get("RowsGone").is_none(), "rows_gone is not a metric");
        assert_eq!(doc["GroupsUpdated"], 1);
        assert_eq!(doc["GroupsFailed"], 1);
        assert_eq!(doc["DynamoDbRequests"], 7);
        assert_eq!(doc["BatchDurationMs"], 12.0);
        assert_eq!(doc["RetryFrom"], "4200");
        assert_eq!(doc["ColdStart"], 1);
        assert_eq!(docs[1]["ColdStart"], 0);
    }
}
