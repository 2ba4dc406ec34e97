//! Reading the failure records `ddb redrive` takes, in the three shapes they come in:
//!
//! - the S3 on-failure destination's object: Lambda's invocation record with the failed batch's
//!   whole event in `payload` (a JSON string, or an object);
//! - the SQS or SNS destination's message: the same record without `payload`, only the range
//!   (`DDBStreamBatchInfo`: shard id, first and last sequence numbers, stream ARN); an SNS
//!   notification wrapping it (`Message`) is unwrapped;
//! - an entry of `ddb watch`'s failures file (`failures`): the SQS shape plus `error` and, since
//!   issue 10, the records in `payload` (an entry without one is read back from the stream).
//!
//! A source is a file, every file of a folder (sorted by name), or stdin (`-`), holding one JSON
//! document, several (JSON lines), or an array of them; a string element is parsed as JSON (the
//! `Body` strings `aws sqs receive-message --query 'Messages[].Body'` prints). In a folder, a file
//! that is not failure records (its first document is not JSON or not a failure record, or it is
//! empty: a README, an editor's backup) is skipped and named in [`Sources::skipped`]; a file that
//! starts as failure records and then breaks is an error, as a file named alone always is. Nothing
//! here reads the stream: hydrating a range is `hydrate`'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A source that cannot be read as failure records.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not JSON: {detail}")]
    NotJson {
        origin: String,
        detail: String,
        /// Nothing before it was a failure record.
        first: bool,
    },
    #[error("{origin}: not a failure record of a DynamoDB stream (no DDBStreamBatchInfo with shardId, startSequenceNumber, endSequenceNumber and streamArn): {detail}")]
    NotAFailureRecord {
        origin: String,
        detail: String,
        /// Nothing before it was a failure record.
        first: bool,
    },
    #[error("{origin}: payload is not a Lambda event with Records: {detail}")]
    Payload { origin: String, detail: String },
    #[error("{path} holds no failure record")]
    Empty { path: PathBuf },
}

/// Which destination a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The S3 destination's object: the records themselves.
    S3Object,
    /// An SQS or SNS destination's message: the range only.
    Metadata,
    /// An entry of `ddb watch`'s failures file: the range only.
    WatchFailure,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::S3Object => "s3-object",
            Shape::Metadata => "metadata",
            Shape::WatchFailure => "watch-failure",
        }
    }
}

/// `DDBStreamBatchInfo`: the range of one failed batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    /// RFC 3339; when the first record reached the stream (it leaves it 24 hours later).
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default)]
    pub batch_size: Option<u64>,
}

impl BatchInfo {
    /// `shardId-... 100..105`, for messages.
    pub fn range(&self) -> String {
        format!(
            "{} {}..{}",
            self.shard_id, self.start_sequence_number, self.end_sequence_number
        )
    }
}

/// One failed batch to redrive.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    /// Where it was read: `path` or `path:line`.
    pub origin: String,
    pub shape: Shape,
    pub info: BatchInfo,
    /// The Lambda records of the batch (S3 objects only), in stream order.
    pub payload: Option<Vec<Value>>,
    /// Why the last attempt failed (`ddb watch` entries only).
    pub error: Option<String>,
}

/// What the sources held.
#[derive(Debug, Default)]
pub struct Sources {
    pub records: Vec<FailureRecord>,
    /// Files of a folder that are not failure records, each with why (`path: reason`).
    pub skipped: Vec<String>,
}

/// Reads every source: files, folders (their files, sorted), or `-` for stdin.
pub async fn read_sources(sources: &[PathBuf]) -> Result<Sources, InputError> {
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for source in sources {
        if source.as_os_str() == "-" {
            let text =
                tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin().lock()))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|e| InputError::Read {
                        path: source.clone(),
                        source: e,
                    })?;
            records.extend(parse_text("stdin", &text)?);
        } else if source.is_dir() {
            let mut files = Vec::new();
            let mut dir = tokio::fs::read_dir(source)
                .await
                .map_err(|e| read_error(source, e))?;
            while let Some(entry) = dir.next_entry().await.map_err(|e| read_error(source, e))? {
                if entry.file_type().await.is_ok_and(|t| t.is_file()) {
                    files.push(entry.path());
                }
            }
            files.sort();
            for file in files {
                match read_file(&file).await {
                    Ok(found) => records.extend(found),
                    Err(error) if error.not_failure_records() => {
                        skipped.push(error.to_string());
                    }
                    Err(error) => return Err(error),
                }
            }
        } else {
            records.extend(read_file(source).await?);
        }
    }
    Ok(Sources { records, skipped })
}

impl InputError {
    /// The file is not failure records at all (as opposed to failure records that break further on).
    fn not_failure_records(&self) -> bool {
        match self {
            InputError::Empty { .. } => true,
            InputError::NotJson { first, .. } | InputError::NotAFailureRecord { first, .. } => {
                *first
            }
            _ => false,
        }
    }
}

fn read_error(path: &Path, source: std::io::Error) -> InputError {
    InputError::Read {
        path: path.to_owned(),
        source,
    }
}

async fn read_file(path: &Path) -> Result<Vec<FailureRecord>, InputError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| read_error(path, e))?;
    let records = parse_text(&path.display().to_string(), &text)?;
    if records.is_empty() {
        return Err(InputError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(records)
}

/// The failure records of one source's text (`name` labels them).
pub fn parse_text(name: &str, text: &str) -> Result<Vec<FailureRecord>, InputError> {
    let mut records = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    // The line each document starts on, counted incrementally from where the last one ended.
    let (mut counted_to, mut line) = (0, 1);
    loop {
        let start = stream.byte_offset()
            + text[stream.byte_offset()..]
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(text.len() - stream.byte_offset());
        line += text[counted_to..start].matches('\n').count();
        counted_to = start;
        let Some(document) = stream.next() else {
            break;
        };
        let origin = format!("{name}:{line}");
        let first = records.is_empty();
        let document = document.map_err(|e| InputError::NotJson {
            origin: origin.clone(),
            detail: e.to_string(),
            first,
        })?;
        // (`collect` marks its own errors `first` when `records` is still empty.)
        collect(&origin, document, &mut records)?;
    }
    Ok(records)
}

/// Unwraps arrays, JSON strings and SNS notifications down to invocation records.
fn collect(origin: &str, value: Value, out: &mut Vec<FailureRecord>) -> Result<(), InputError> {
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                collect(&format!("{origin}[{i}]"), item, out)?;
            }
            Ok(())
        }
        Value::String(text) => {
            let inner = serde_json::from_str(&text).map_err(|e| InputError::NotJson {
                origin: origin.to_owned(),
                detail: format!("a string that is not JSON ({e})"),
                first: out.is_empty(),
            })?;
            collect(origin, inner, out)
        }
        Value::Object(ref object)
            if object.get("Type").and_then(Value::as_str) == Some("Notification") =>
        {
            let message = object.get("Message").cloned().unwrap_or(Value::Null);
            collect(origin, message, out)
        }
        other => {
            let first = out.is_empty();
            out.push(record(origin, other).map_err(|mut error| {
                if let InputError::NotAFailureRecord { first: f, .. } = &mut error {
                    *f = first;
                }
                error
            })?);
            Ok(())
        }
    }
}

fn record(origin: &str, value: Value) -> Result<FailureRecord, InputError> {
    let not_one = |detail: String| InputError::NotAFailureRecord {
        origin: origin.to_owned(),
        detail,
        first: true,
    };
    let info = value
        .get("DDBStreamBatchInfo")
        .ok_or_else(|| not_one("no DDBStreamBatchInfo".into()))?;
    let info: BatchInfo =
        serde_json::from_value(info.clone()).map_err(|e| not_one(e.to_string()))?;
    let payload = match value.get("payload") {
        None | Some(Value::Null) => None,
        Some(payload) => Some(payload_records(origin, payload)?),
    };
    let watch = value
        .pointer("/requestContext/functionArn")
        .and_then(Value::as_str)
        .is_some_and(|arn| arn.starts_with("ddb-watch:"));
    let shape = match (&payload, watch) {
        (_, true) => Shape::WatchFailure,
        (Some(_), false) => Shape::S3Object,
        (None, false) => Shape::Metadata,
    };
    Ok(FailureRecord {
        origin: origin.to_owned(),
        shape,
        info,
        payload,
        error: value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The `Records` of the S3 object's `payload` (the event Lambda invoked the function with).
fn payload_records(origin: &str, payload: &Value) -> Result<Vec<Value>, InputError> {
    let error = |detail: String| InputError::Payload {
        origin: origin.to_owned(),
        detail,
    };
    let event = match payload {
        Value::String(text) => serde_json::from_str(text).map_err(|e| error(e.to_string()))?,
        other => other.clone(),
    };
    match event.get("Records") {
        Some(Value::Array(records)) => Ok(records.clone()),
        _ => Err(error("no Records array".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> Value {
        json!({
            "shardId": "shardId-1",
            "startSequenceNumber": "100",
            "endSequenceNumber": "200",
            "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00Z",
            "batchSize": 2,
            "streamArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
        })
    }

    #[test]
    fn reads_the_three_shapes_in_any_wrapping() {
        let sqs = json!({"requestContext": {"functionArn": "arn:aws:lambda:x"}, "DDBStreamBatchInfo": info()});
        let watch = json!({"requestContext": {"functionArn": "ddb-watch:messaging-stream"}, "DDBStreamBatchInfo": info(), "error": "boom"});
        let s3 = json!({"DDBStreamBatchInfo": info(), "payload": json!({"Records": [{"a": 1}, {"b": 2}]}).to_string()});
        let sns = json!({"Type": "Notification", "Message": sqs.to_string()});
        let text = format!("{watch}\n{s3}\n{}\n{sns}\n", json!([sqs.to_string(), sqs]));
        let records = parse_text("f", &text).unwrap();
        let shapes: Vec<Shape> = records.iter().map(|r| r.shape).collect();
        assert_eq!(
            shapes,
            [
                Shape::WatchFailure,
                Shape::S3Object,
                Shape::Metadata,
                Shape::Metadata,
                Shape::Metadata
            ]
        );
        assert_eq!(records[0].error.as_deref(), Some("boom"));
        assert_eq!(records[0].origin, "f:1");
        assert_eq!(records[2].origin, "f:3[0]");
        assert_eq!(records[1].payload.as_ref().unwrap().len(), 2);
        assert_eq!(records[3].info.range(), "shardId-1 100..200");
    }

    #[tokio::test]
    async fn a_folder_skips_what_is_not_failure_records_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let sqs = json!({"DDBStreamBatchInfo": info()}).to_string();
        std::fs::write(dir.path().join("a.json"), &sqs).unwrap();
        std::fs::write(dir.path().join("README.md"), "# notes\n").unwrap();
        std::fs::write(dir.path().join("empty.jsonl"), "\n").unwrap();
        std::fs::write(dir.path().join("other.json"), "{\"Records\": []}").unwrap();
        let read = read_sources(&[dir.path().to_owned()]).await.unwrap();
        assert_eq!(read.records.len(), 1);
        let named = |file: &str| {
            read.skipped
                .iter()
                .any(|s| s.starts_with(&dir.path().join(file).display().to_string()))
        };
        assert!(
            named("README.md") && named("empty.jsonl") && named("other.json"),
            "{:?}",
            read.skipped
        );
        assert_eq!(read.skipped.len(), 3, "{:?}", read.skipped);
        // Named alone, the same file is an error; in a folder, one that breaks after a record is too.
        assert!(read_sources(&[dir.path().join("README.md")]).await.is_err());
        std::fs::write(dir.path().join("b.json"), format!("{sqs}\nnot json")).unwrap();
        let error = read_sources(&[dir.path().to_owned()]).await.unwrap_err();
        assert!(error.to_string().contains("b.json:2: not JSON"), "{error}");
    }

    #[test]
    fn says_what_is_wrong() {
        let err = parse_text("f", "{\"requestContext\": {}}").unwrap_err();
        assert!(matches!(err, InputError::NotAFailureRecord { .. }), "{err}");
        let err = parse_text("f", "{\"DDBStreamBatchInfo\": {\"shardId\": \"s\"}}").unwrap_err();
        assert!(err.to_string().contains("startSequenceNumber"), "{err}");
        let bad_payload = json!({"DDBStreamBatchInfo": info(), "payload": "{\"x\": 1}"});
        let err = parse_text("f", &bad_payload.to_string()).unwrap_err();
        assert!(matches!(err, InputError::Payload { .. }), "{err}");
        let err = parse_text("f", "{\"a\": ").unwrap_err();
        assert!(matches!(err, InputError::NotJson { .. }), "{err}");
    }
}
