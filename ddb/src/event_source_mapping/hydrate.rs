//! Reading one failed range back from the table's stream: the records of shard `shardId` from
//! `startSequenceNumber` to `endSequenceNumber`, as the Lambda records the function got.
//!
//! GetShardIterator AT_SEQUENCE_NUMBER at the start, then GetRecords until the end sequence
//! number (across empty pages: DynamoDB Streams may return one before the end of an open shard),
//! each record turned into Lambda's record JSON by `lambda_record`, the code `ddb watch` uses.
//! DynamoDB Streams keeps records 24 hours: a range that is no longer there is
//! [`HydrateError::Trimmed`], naming the range and when it left the stream.

use super::failure_records::BatchInfo;
use super::lambda_record::{self, RecordError};
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use chrono::{DateTime, Duration as Age, SecondsFormat, Utc};
use serde_json::Value;
use std::cmp::Ordering;
use std::time::Duration;

/// How long DynamoDB Streams keeps a record.
pub const RETENTION_HOURS: i64 = 24;

/// Consecutive empty pages after which a range's end is taken as not in the stream.
const EMPTY_PAGES: u32 = 10;

/// A range that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    #[error("records {range} are no longer in the stream: {when} (DynamoDB Streams keeps records {RETENTION_HOURS} hours; the stream answered {answer}). The messages themselves are still in the table: writing each again brings its group's rows up to date")]
    Trimmed {
        range: String,
        when: String,
        answer: String,
    },
    #[error("records {range}: the stream has {found} of the range but not its end ({end}) after {EMPTY_PAGES} empty pages: is the range from this stream?")]
    EndNotFound {
        range: String,
        found: usize,
        end: String,
    },
    #[error("records {range}: {operation} failed: {detail}")]
    Request {
        range: String,
        operation: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The Lambda records of a range, and how many GetRecords pages it took.
#[derive(Debug, Clone)]
pub struct Hydrated {
    pub records: Vec<Value>,
    pub pages: u32,
}

/// Compares two sequence numbers (decimal strings of any length) by value.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// When the range's first record left (or leaves) the stream, as a phrase for the error.
fn left_retention(info: &BatchInfo, now: DateTime<Utc>) -> String {
    let arrival = info
        .approximate_arrival_of_first_record
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc));
    match arrival {
        Some(arrival) => {
            let left = arrival + Age::hours(RETENTION_HOURS);
            let verb = if left <= now { "fell" } else { "was due to fall" };
            format!(
                "its first record arrived at {} and {verb} out of retention at {}",
                arrival.to_rfc3339_opts(SecondsFormat::Secs, true),
                left.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        }
        None => "the failure record gives no arrival time (it left the stream 24 hours after it arrived)".to_owned(),
    }
}

/// The service's error code and message, for the error.
fn answer<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            e.meta().code().unwrap_or("an error"),
            e.meta().message().unwrap_or("")
        ),
        None => "an error".to_owned(),
    }
}

/// Reads `info`'s range from the stream.
pub async fn hydrate(client: &Client, info: &BatchInfo) -> Result<Hydrated, HydrateError> {
    let mut iterator = first_iterator(client, info).await?;
    let mut records = Vec::new();
    let (mut pages, mut empty) = (0, 0);
    while let Some(current) = iterator.take() {
        let page = client
            .get_records()
            .shard_iterator(current)
            .limit(1000)
            .send()
            .await
            .map_err(|error| {
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_trimmed_data_access_exception())
                {
                    trimmed(info, answer(&error))
                } else {
                    request_failed(info, "GetRecords", error)
                }
            })?;
        pages += 1;
        if take(&mut records, page.records(), info)? {
            return Ok(Hydrated { records, pages });
        }
        if page.records().is_empty() {
            empty += 1;
            if empty >= EMPTY_PAGES {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            empty = 0;
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    // A closed shard read to its end, or several empty pages, before the end sequence number.
    Err(HydrateError::EndNotFound {
        range: info.range(),
        found: records.len(),
        end: info.end_sequence_number.clone(),
    })
}

/// An iterator at the range's start sequence number; a start no longer in the stream is
/// [`HydrateError::Trimmed`].
async fn first_iterator(client: &Client, info: &BatchInfo) -> Result<Option<String>, HydrateError> {
    let output = client
        .get_shard_iterator()
        .stream_arn(&info.stream_arn)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&info.start_sequence_number)
        .send()
        .await
        .map_err(|error| {
            // A trimmed start is TrimmedDataAccessException; a shard deleted after it closed,
            // ResourceNotFoundException; a number the shard does not hold (DynamoDB Local's
            // answer for one below its first record), ValidationException "Invalid SequenceNumber".
            let not_there = error.as_service_error().is_some_and(|e| {
                e.is_trimmed_data_access_exception()
                    || e.is_resource_not_found_exception()
                    || (e.meta().code() == Some("ValidationException")
                        && e.meta()
                            .message()
                            .is_some_and(|m| m.contains("SequenceNumber")))
            });
            if not_there {
                trimmed(info, answer(&error))
            } else {
                request_failed(info, "GetShardIterator", error)
            }
        })?;
    Ok(output.shard_iterator().map(str::to_owned))
}

/// Adds the page's records of the range to `records`; true once the range's end is reached.
fn take(records: &mut Vec<Value>, page: &[Record], info: &BatchInfo) -> Result<bool, HydrateError> {
    for record in page {
        let sequence_number = lambda_record::sequence_number(record)?;
        if records.is_empty()
            && compare_sequence_numbers(sequence_number, &info.start_sequence_number)
                == Ordering::Greater
        {
            // The start is gone: the shard now begins after it.
            return Err(trimmed(info, format!("records from {sequence_number} on")));
        }
        match compare_sequence_numbers(sequence_number, &info.end_sequence_number) {
            Ordering::Greater => return Ok(true),
            Ordering::Equal => {
                records.push(lambda_record::lambda_record(record, &info.stream_arn)?);
                return Ok(true);
            }
            Ordering::Less => records.push(lambda_record::lambda_record(record, &info.stream_arn)?),
        }
    }
    Ok(false)
}

/// The range is no longer in the stream; `answer` is what the stream said.
fn trimmed(info: &BatchInfo, answer: String) -> HydrateError {
    HydrateError::Trimmed {
        range: info.range(),
        when: left_retention(info, Utc::now()),
        answer,
    }
}

fn request_failed<E, R>(
    info: &BatchInfo,
    operation: &'static str,
    error: SdkError<E, R>,
) -> HydrateError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    HydrateError::Request {
        range: info.range(),
        operation,
        detail: DisplayErrorContext(error).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_by_value() {
        assert_eq!(compare_sequence_numbers("99", "100"), Ordering::Less);
        assert_eq!(compare_sequence_numbers("000100", "100"), Ordering::Equal);
        assert_eq!(
            compare_sequence_numbers("800000000003126276362", "800000000003126276361"),
            Ordering::Greater
        );
    }

    #[test]
    fn the_trimmed_error_names_when_the_range_left_the_stream() {
        let info = BatchInfo {
            shard_id: "shardId-1".into(),
            start_sequence_number: "100".into(),
            end_sequence_number: "105".into(),
            stream_arn: "arn".into(),
            approximate_arrival_of_first_record: Some("2026-01-01T00:00:00Z".into()),
            batch_size: None,
        };
        let now = DateTime::parse_from_rfc3339("2026-01-03T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            left_retention(&info, now),
            "its first record arrived at 2026-01-01T00:00:00Z and fell out of retention at 2026-01-02T00:00:00Z"
        );
    }
}
