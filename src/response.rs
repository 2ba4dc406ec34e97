//! The batch response Lambda reads to know where to retry from.
//!
//! With `ReportBatchItemFailures` on a stream, Lambda retries from the lowest sequence number it is
//! given, so one identifier is enough: the earliest failed record's. An empty or null identifier
//! would make Lambda fail the whole batch, so a record without a sequence number becomes an error
//! (an invocation error retries the whole batch, which is safe because moves are idempotent).

use crate::event::RecordRef;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record {position} (eventID {event_id:?}) failed and has no SequenceNumber to retry from")]
pub struct NoSequenceNumber {
    pub position: usize,
    pub event_id: Option<String>,
}

/// Builds the response: empty when nothing failed, else the earliest failed record's sequence number.
pub fn batch_response(
    earliest_failed: Option<&RecordRef>,
) -> Result<DynamoDbEventResponse, NoSequenceNumber> {
    let mut response = DynamoDbEventResponse::default();
    let Some(record) = earliest_failed else {
        return Ok(response);
    };
    match record.sequence_number.as_deref().map(str::trim) {
        Some(sequence_number) if !sequence_number.is_empty() => {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number.to_owned());
            response.batch_item_failures.push(failure);
            Ok(response)
        }
        _ => Err(NoSequenceNumber {
            position: record.position,
            event_id: record.event_id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(sequence_number: Option<&str>) -> RecordRef {
        RecordRef {
            position: 2,
            event_id: Some("e2".into()),
            sequence_number: sequence_number.map(str::to_owned),
        }
    }

    #[test]
    fn nothing_failed_is_an_empty_list() {
        let response = batch_response(None).unwrap();
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn a_failure_names_its_sequence_number() {
        let response = batch_response(Some(&record(Some("4200")))).unwrap();
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "4200"}]})
        );
    }

    #[test]
    fn never_an_empty_or_null_identifier() {
        for missing in [None, Some(""), Some("  ")] {
            let error = batch_response(Some(&record(missing))).unwrap_err();
            assert_eq!(error.position, 2);
        }
    }
}
