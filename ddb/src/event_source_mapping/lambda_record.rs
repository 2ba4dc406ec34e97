//! One DynamoDB Streams record, as `GetRecords` returns it, turned into the record Lambda puts in an
//! event's `Records`: the same field names and shapes, attribute maps converted by serde_dynamo.
//!
//! Fields the stream did not give are left out, as Lambda leaves them out (a NEW_IMAGE stream has
//! no `OldImage`). Only the sequence number is required: the trigger checkpoints by it.

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use aws_smithy_types::DateTime;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A stream record the trigger cannot hand on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("stream record {event_id:?} has no dynamodb.SequenceNumber")]
    NoSequenceNumber { event_id: Option<String> },
}

/// The record's sequence number (what Lambda's `itemIdentifier` names).
pub fn sequence_number(record: &Record) -> Result<&str, RecordError> {
    record
        .dynamodb()
        .and_then(|change| change.sequence_number())
        .ok_or_else(|| RecordError::NoSequenceNumber {
            event_id: record.event_id().map(str::to_owned),
        })
}

/// The Lambda event record for `record`, read from the stream `stream_arn`.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Result<Value, RecordError> {
    let sequence_number = sequence_number(record)?;
    let change = record
        .dynamodb()
        .expect("a sequence number implies dynamodb");
    let mut dynamodb = Map::new();
    if let Some(at) = change.approximate_creation_date_time() {
        dynamodb.insert("ApproximateCreationDateTime".into(), epoch_seconds(at));
    }
    for (name, image) in [
        ("Keys", change.keys()),
        ("NewImage", change.new_image()),
        ("OldImage", change.old_image()),
    ] {
        if let Some(image) = image {
            dynamodb.insert(name.into(), attributes(image));
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    if let Some(size) = change.size_bytes() {
        dynamodb.insert("SizeBytes".into(), json!(size));
    }
    if let Some(view) = change.stream_view_type() {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }

    let mut out = Map::new();
    let mut text = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            out.insert(name.into(), json!(value));
        }
    };
    text("eventID", record.event_id());
    text("eventName", record.event_name().map(|n| n.as_str()));
    text("eventVersion", record.event_version());
    text("eventSource", record.event_source());
    text("awsRegion", record.aws_region());
    out.insert("dynamodb".into(), Value::Object(dynamodb));
    out.insert("eventSourceARN".into(), json!(stream_arn));
    if let Some(identity) = record.user_identity() {
        // TTL deletions: {"type": "Service", "principalId": "dynamodb.amazonaws.com"}.
        out.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    Ok(Value::Object(out))
}

/// Lambda gives whole epoch seconds as an integer (DynamoDB Streams' precision); anything finer as a float.
fn epoch_seconds(at: &DateTime) -> Value {
    if at.subsec_nanos() == 0 {
        json!(at.secs())
    } else {
        json!(at.as_secs_f64())
    }
}

fn attributes(image: &HashMap<String, AttributeValue>) -> Value {
    let item = serde_dynamo::Item::from(image.clone());
    // serde_dynamo serialises an item as DynamoDB JSON ({"S": ...}); into a `Value` it cannot fail.
    serde_json::to_value(&item).expect("DynamoDB JSON is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord, StreamViewType};

    const ARN: &str =
        "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-01-01T00:00:00.000";

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn record(at: DateTime) -> Record {
        let change = StreamRecord::builder()
            .approximate_creation_date_time(at)
            .keys("pk", s("MSG#g1"))
            .keys("sk", s("2026-01-01T00:00:00.000001+00:00"))
            .new_image("pk", s("MSG#g1"))
            .new_image("sk", s("2026-01-01T00:00:00.000001+00:00"))
            .new_image("message", s("hello"))
            .new_image("n", AttributeValue::N("42".into()))
            .new_image(
                "tags",
                AttributeValue::L(vec![s("a"), AttributeValue::Bool(true)]),
            )
            .sequence_number("000000000000000000042")
            .size_bytes(123)
            .stream_view_type(StreamViewType::NewImage)
            .build();
        Record::builder()
            .event_id("e-42")
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("ddblocal")
            .dynamodb(change)
            .build()
    }

    #[test]
    fn has_exactly_the_fields_lambda_sends() {
        let value = lambda_record(&record(DateTime::from_secs(1_767_225_600)), ARN).unwrap();
        assert_eq!(
            value,
            json!({
                "eventID": "e-42",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "ddblocal",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_767_225_600,
                    "Keys": {"pk": {"S": "MSG#g1"}, "sk": {"S": "2026-01-01T00:00:00.000001+00:00"}},
                    "NewImage": {
                        "pk": {"S": "MSG#g1"},
                        "sk": {"S": "2026-01-01T00:00:00.000001+00:00"},
                        "message": {"S": "hello"},
                        "n": {"N": "42"},
                        "tags": {"L": [{"S": "a"}, {"BOOL": true}]}
                    },
                    "SequenceNumber": "000000000000000000042",
                    "SizeBytes": 123,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": ARN
            })
        );
    }

    #[test]
    fn parses_as_the_lambda_event_type_and_is_relevant() {
        let value = lambda_record(
            &record(DateTime::from_fractional_secs(1_767_225_600, 0.5)),
            ARN,
        )
        .unwrap();
        assert_eq!(
            value["dynamodb"]["ApproximateCreationDateTime"],
            json!(1_767_225_600.5)
        );
        let typed: aws_lambda_events::dynamodb::EventRecord =
            serde_json::from_value(value.clone()).unwrap();
        assert_eq!(typed.change.size_bytes, 123);
        assert_eq!(
            typed.change.approximate_creation_date_time.timestamp(),
            1_767_225_600
        );
        assert!(messaging_stream::event::is_relevant(&value));
    }

    #[test]
    fn a_record_without_a_sequence_number_is_an_error() {
        let bare = Record::builder().event_id("e-1").build();
        assert_eq!(
            lambda_record(&bare, ARN).unwrap_err(),
            RecordError::NoSequenceNumber {
                event_id: Some("e-1".into())
            }
        );
    }
}
