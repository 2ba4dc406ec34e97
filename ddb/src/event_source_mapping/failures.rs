//! The local stand-in for the event source mapping's on-failure destination: a JSON-lines file,
//! one line per range of records given up after its retries (or discarded as older than
//! MaximumRecordAgeInSeconds). This is the one place the format is defined:
//!
//! - `requestContext`, `responseContext`, `version`, `timestamp`, `DDBStreamBatchInfo` (shard id,
//!   start and end sequence numbers, arrival times, batch size, stream ARN): Lambda's on-failure
//!   invocation record for a DynamoDB stream, as an SQS or SNS destination receives it;
//! - `error` (local): why the last attempt failed (Lambda sends no reason with a stream failure);
//! - `payload` (as an S3 destination also receives the batch): the given-up records as the Lambda
//!   event they were invoked with, `{"Records": [...]}`, so they can be replayed after the stream's
//!   24 hours are over (`jq -c .payload FILE | ddb replay -`, or `ddb redrive`).
//!
//! The payload holds the messages' text, as an S3 destination would: the file is data, kept where
//! the developer put it, never a log line, and readable by its owner only (0600, tightened if an
//! existing file was wider).

use super::batching::FailedRange;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The failures file's mode: it holds message text.
#[cfg(unix)]
const OWNER_ONLY: u32 = 0o600;

/// The file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot append to the failures file {path}: {source}")]
pub struct FailuresFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Where a failed range came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub stream_arn: &'a str,
    pub shard_id: &'a str,
    /// Whether the last attempt was an invocation error (Lambda's `functionError: Unhandled`)
    /// rather than a reported item failure.
    pub invocation_error: bool,
}

/// The on-failure record for `range`, given up at `now`.
pub fn on_failure_record(range: &FailedRange, origin: Origin<'_>, now: DateTime<Utc>) -> Value {
    let first = range.records.first();
    let last = range.records.last();
    let arrival = |record: Option<&super::batching::Pending>| {
        record
            .and_then(|p| p.record.pointer("/dynamodb/ApproximateCreationDateTime"))
            .and_then(Value::as_f64)
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs.trunc() as i64, 0))
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
    };
    let mut response_context = json!({"statusCode": 200, "executedVersion": "$LATEST"});
    if origin.invocation_error {
        response_context["functionError"] = json!("Unhandled");
    }
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": "ddb-watch:messaging-stream",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": range.attempts,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": origin.shard_id,
            "startSequenceNumber": first.map(|p| p.sequence_number.as_str()),
            "endSequenceNumber": last.map(|p| p.sequence_number.as_str()),
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": range.records.len(),
            "streamArn": origin.stream_arn,
        },
        "error": range.error,
        "payload": {"Records": range.records.iter().map(|p| &p.record).collect::<Vec<_>>()},
    })
}

/// Appends one record as a JSON line, creating the file (and its directory) if needed; the file is
/// left readable and writable by its owner only.
pub async fn append(path: &Path, record: &Value) -> Result<(), FailuresFileError> {
    let error = |source| FailuresFileError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(error)?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(OWNER_ONLY);
    let mut file = options.open(path).await.map_err(error)?;
    // `mode` applies only when the file is created: one made earlier (or by another tool) with a
    // wider mode is tightened before it receives more records.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().await.map_err(error)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))
                .await
                .map_err(error)?;
        }
    }
    let mut line = record.to_string();
    line.push('\n');
    file.write_all(line.as_bytes()).await.map_err(error)?;
    file.flush().await.map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_source_mapping::batching::Pending;

    fn pending(seq: &str, at: i64) -> Pending {
        Pending {
            sequence_number: seq.into(),
            record: json!({"dynamodb": {"ApproximateCreationDateTime": at, "NewImage": {"message": {"S": "secret"}}}}),
        }
    }

    #[test]
    fn names_the_range_like_lambda_and_keeps_the_records() {
        let range = FailedRange {
            records: vec![pending("100", 1_767_225_600), pending("105", 1_767_225_660)],
            attempts: 3,
            error: "the function reported itemIdentifier 100".into(),
        };
        let origin = Origin {
            stream_arn: "arn:s",
            shard_id: "shardId-1",
            invocation_error: false,
        };
        let now = DateTime::<Utc>::from_timestamp(1_767_225_700, 0).unwrap();
        let record = on_failure_record(&range, origin, now);
        assert_eq!(
            record["DDBStreamBatchInfo"],
            json!({
                "shardId": "shardId-1",
                "startSequenceNumber": "100",
                "endSequenceNumber": "105",
                "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00Z",
                "approximateArrivalOfLastRecord": "2026-01-01T00:01:00Z",
                "batchSize": 2,
                "streamArn": "arn:s"
            })
        );
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            record["requestContext"]["condition"],
            "RetryAttemptsExhausted"
        );
        assert_eq!(record["timestamp"], "2026-01-01T00:01:40.000Z");
        assert!(record["responseContext"].get("functionError").is_none());
        let payload = &record["payload"]["Records"];
        assert_eq!(payload.as_array().unwrap().len(), 2);
        assert_eq!(payload[0], range.records[0].record);

        let unhandled = on_failure_record(
            &range,
            Origin {
                invocation_error: true,
                ..origin
            },
            now,
        );
        assert_eq!(unhandled["responseContext"]["functionError"], "Unhandled");
    }

    #[tokio::test]
    async fn appends_one_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/failures.jsonl");
        append(&path, &json!({"a": 1})).await.unwrap();
        append(&path, &json!({"b": 2})).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_is_its_owners_alone_even_if_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.jsonl");
        append(&new, &json!({"a": 1})).await.unwrap();
        assert_eq!(mode(&new), 0o600);

        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, "{\"a\":1}\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        append(&old, &json!({"b": 2})).await.unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
    }
}
