//! Sample stream events, as `sam local generate-event` makes them: one Lambda DynamoDB Streams
//! event of INSERTs, MODIFYs or REMOVEs of message items, exactly the shape Lambda sends (each
//! record is built as a DynamoDB Streams record and turned into Lambda's JSON by
//! [`crate::event_source_mapping::lambda_record`], as `ddb watch` does).

use super::write::Participant;
use crate::event_source_mapping::lambda_record::{self, RecordError};
use aws_sdk_dynamodbstreams::types::{
    AttributeValue, OperationType, Record, StreamRecord, StreamViewType,
};
use aws_smithy_types::DateTime;
use chrono::{DateTime as ChronoTime, Utc};
use messaging_stream::model::{
    message_pk, MESSAGE_ATTR, MESSAGE_UUID_ATTR, PK_ATTR, SK_ATTR, USER_DISPLAY_NAME_ATTR,
    USER_HANDLE_ATTR, USER_UUID_ATTR,
};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Which change the records describe (`ddb event`'s first argument: insert, modify, remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Change {
    Insert,
    Modify,
    Remove,
}

/// What to put in the event.
#[derive(Debug, Clone)]
pub struct Sample {
    pub change: Change,
    pub group: String,
    /// The first message's sort key, as given (any ISO form the function accepts).
    pub at: String,
    pub text: String,
    pub from: Participant,
    /// Records in the event: the first at `at`, each next one a second later (in Cruddur's form).
    pub count: usize,
    /// The table named in the stream ARN.
    pub table: String,
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(
        "--at {0:?} is not a timestamp: give an ISO 8601 instant, e.g. 2026-01-15T10:00:00+00:00"
    )]
    BadTimestamp(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

/// The event: `{"Records": [...]}`.
pub fn event(sample: &Sample) -> Result<Value, SampleError> {
    let first = messaging_stream::timestamp::parse_instant(&sample.at)
        .ok_or_else(|| SampleError::BadTimestamp(sample.at.clone()))?;
    let label = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f");
    let arn = format!(
        "arn:aws:dynamodb:{}:000000000000:table/{}/stream/{label}",
        sample.region, sample.table
    );
    let base = Utc::now().timestamp_micros().unsigned_abs();
    let records = (0..sample.count.max(1))
        .map(|i| {
            let at = if i == 0 {
                sample.at.clone()
            } else {
                (first + chrono::Duration::seconds(i as i64))
                    .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                    .to_string()
            };
            let record = stream_record(sample, &at, first, base + i as u64);
            lambda_record::lambda_record(&record, &arn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "Records": records }))
}

fn stream_record(sample: &Sample, at: &str, first: ChronoTime<Utc>, sequence: u64) -> Record {
    let pk = message_pk(&sample.group);
    let keys = HashMap::from([(PK_ATTR.to_owned(), s(&pk)), (SK_ATTR.to_owned(), s(at))]);
    let mut change = StreamRecord::builder()
        .approximate_creation_date_time(DateTime::from_secs(first.timestamp()))
        .set_keys(Some(keys.clone()))
        .sequence_number(format!("{sequence:021}"))
        .stream_view_type(StreamViewType::NewImage);
    let size = if sample.change == Change::Remove {
        item_size(&keys)
    } else {
        let mut image = keys.clone();
        image.extend([
            (
                MESSAGE_UUID_ATTR.to_owned(),
                s(&uuid::Uuid::new_v4().to_string()),
            ),
            (MESSAGE_ATTR.to_owned(), s(&sample.text)),
            (USER_UUID_ATTR.to_owned(), s(&sample.from.uuid)),
            (
                USER_DISPLAY_NAME_ATTR.to_owned(),
                s(&sample.from.display_name),
            ),
            (USER_HANDLE_ATTR.to_owned(), s(&sample.from.handle)),
        ]);
        let size = item_size(&keys) + item_size(&image);
        change = change.set_new_image(Some(image));
        size
    };
    let name = match sample.change {
        Change::Insert => OperationType::Insert,
        Change::Modify => OperationType::Modify,
        Change::Remove => OperationType::Remove,
    };
    Record::builder()
        .event_id(uuid::Uuid::new_v4().simple().to_string())
        .event_name(name)
        .event_version("1.1")
        .event_source("aws:dynamodb")
        .aws_region(&sample.region)
        .dynamodb(change.size_bytes(size as i64).build())
        .build()
}

/// DynamoDB's size of a stream image (names and string values in UTF-8 bytes).
fn item_size(image: &HashMap<String, AttributeValue>) -> usize {
    image
        .iter()
        .map(|(name, value)| name.len() + value.as_s().map_or(0, String::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(change: Change, count: usize) -> Sample {
        Sample {
            change,
            group: "g1".into(),
            at: "2026-01-15T10:00:00+00:00".into(),
            text: "hi".into(),
            from: (&crate::commands::seed::LONDO).into(),
            count,
            table: "t".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn records_have_lambdas_shape_and_the_functions_rules_read_them() {
        let event = event(&sample(Change::Insert, 3)).unwrap();
        let records = event["Records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        let typed: Vec<aws_lambda_events::dynamodb::EventRecord> =
            serde_json::from_value(event["Records"].clone()).unwrap();
        assert_eq!(typed[0].event_name, "INSERT");
        assert_eq!(
            records[0]["dynamodb"]["Keys"]["sk"]["S"],
            "2026-01-15T10:00:00+00:00"
        );
        assert_eq!(
            records[2]["dynamodb"]["NewImage"]["sk"]["S"],
            "2026-01-15T10:00:02.000000+00:00"
        );
        assert!(records.iter().all(messaging_stream::event::is_relevant));
        let seq = |i: usize| {
            records[i]["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(seq(0) < seq(1) && seq(1) < seq(2));
        let removed = super::event(&sample(Change::Remove, 1)).unwrap();
        assert!(removed["Records"][0]["dynamodb"].get("NewImage").is_none());
        assert_eq!(removed["Records"][0]["eventName"], "REMOVE");
        assert!(super::event(&Sample {
            at: "yesterday".into(),
            ..sample(Change::Modify, 1)
        })
        .is_err());
    }
}
