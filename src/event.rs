//! Parsing a Lambda DynamoDB Streams event, one record at a time.
//!
//! The event is taken as raw JSON and each record is parsed on its own into
//! `aws_lambda_events`' `EventRecord`: deserialising the whole event at once would fail the batch
//! on a single bad record and block the shard. This module decides what each record is
//! (a new message, something to ignore, or malformed); it does no I/O.
//!
//! Its two adapters turn a payload into the records the handler takes, or an [`EventError`]:
//! [`parse_event`] from a JSON tree (tests, `ddb replay`, `ddb watch`) and [`parse_raw_event`]
//! from a [`RawEvent`] (the Lambda binary).

use crate::model::{MESSAGE_ATTR, MESSAGE_PK_PREFIX, PK_ATTR, SK_ATTR};
use aws_lambda_events::dynamodb::EventRecord;
use serde::Deserialize;
use serde_dynamo::AttributeValue;
use serde_json::Value;
use std::fmt;

/// Where a record sits in the batch and how Lambda identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Index in the event's `Records` array (batch order).
    pub position: usize,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
}

/// A user's message text. Private: its `Debug` never shows the content, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageText(<{} bytes>)", self.0.len())
    }
}

/// What a record did to one message item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// INSERT or MODIFY: the message now holds this text (a MODIFY of an existing key is an edit).
    Write(MessageText),
    /// REMOVE: the message was deleted by its author or expired by TTL (a NEW_IMAGE stream gives the
    /// keys only).
    Remove,
}

/// One record's change to a message of a group: what the group's rows may have to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageChange {
    pub record: RecordRef,
    pub group_uuid: String,
    /// The message's sort key (its `created_at`): the rows' sort key when it is their last message.
    pub created_at: String,
    pub change: Change,
}

impl MessageChange {
    /// An INSERT or MODIFY of the message at `created_at`.
    pub fn write(record: RecordRef, group: &str, created_at: &str, text: MessageText) -> Self {
        Self {
            record,
            group_uuid: group.to_owned(),
            created_at: created_at.to_owned(),
            change: Change::Write(text),
        }
    }

    /// A REMOVE of the message at `created_at`.
    pub fn remove(record: RecordRef, group: &str, created_at: &str) -> Self {
        Self {
            record,
            group_uuid: group.to_owned(),
            created_at: created_at.to_owned(),
            change: Change::Remove,
        }
    }
}

/// Why a well-formed record needs no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// An event name other than INSERT, MODIFY and REMOVE.
    UnknownEventName,
    /// Not a message item: group rows (including this function's own writes) and other types.
    NotAMessage,
    /// An INSERT or MODIFY of a message item whose new image has no string `message` (e.g. a
    /// KEYS_ONLY stream).
    NoMessageText,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownEventName => "unknown_event_name",
            Self::NotAMessage => "not_a_message",
            Self::NoMessageText => "no_message_text",
        }
    }
}

/// What one record of the batch is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Relevant(MessageChange),
    Ignored {
        record: RecordRef,
        reason: IgnoreReason,
    },
    Malformed {
        record: RecordRef,
        reason: String,
    },
}

impl Parsed {
    pub fn record(&self) -> &RecordRef {
        match self {
            Parsed::Relevant(message) => &message.record,
            Parsed::Ignored { record, .. } | Parsed::Malformed { record, .. } => record,
        }
    }
}

/// The event as a whole is not a DynamoDB Streams event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event has no `Records` array; is this function triggered by a DynamoDB stream?")]
    NoRecords,
}

/// Parses every record of `event`, each on its own, in batch order.
pub fn parse_event(event: &Value) -> Result<Vec<Parsed>, EventError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(EventError::NoRecords)?;
    Ok(records
        .iter()
        .enumerate()
        .map(|(position, raw)| parse_record(position, raw))
        .collect())
}

/// A stream event as the Lambda binary receives it: each record stays JSON text until it is parsed
/// on its own. A `Value` tree of a whole batch takes about 12 times the batch's JSON size (measured
/// by the benchmark, docs/PERFORMANCE.md); this way only one record's tree exists at a time.
#[derive(Debug, serde::Deserialize)]
pub struct RawEvent {
    #[serde(rename = "Records", default)]
    pub records: Option<Vec<Box<serde_json::value::RawValue>>>,
}

/// Parses every record of a [`RawEvent`], each on its own, in batch order.
pub fn parse_raw_event(event: &RawEvent) -> Result<Vec<Parsed>, EventError> {
    let records = event.records.as_ref().ok_or(EventError::NoRecords)?;
    Ok(records
        .iter()
        .enumerate()
        .map(|(position, raw)| {
            // RawValue holds valid JSON by construction, so this only fails on absurd nesting.
            let value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            parse_record(position, &value)
        })
        .collect())
}

/// The relevance rule, on a raw record: a change to a `MSG#` item, either an INSERT or MODIFY whose
/// new image has a string `message`, or a REMOVE. The template's FilterCriteria states the same
/// rule as two alternative patterns (a test keeps them equal).
pub fn is_relevant(raw: &Value) -> bool {
    let event_name = raw.get("eventName").and_then(Value::as_str);
    let change = raw.get("dynamodb");
    let is_message = change
        .and_then(|c| c.pointer("/Keys/pk/S"))
        .and_then(Value::as_str)
        .is_some_and(|pk| pk.starts_with(MESSAGE_PK_PREFIX));
    let has_text = change
        .and_then(|c| c.pointer("/NewImage/message/S"))
        .is_some_and(Value::is_string);
    match event_name {
        Some("INSERT" | "MODIFY") => is_message && has_text,
        Some("REMOVE") => is_message,
        _ => false,
    }
}

/// Parses one record. Never panics: anything unexpected is `Malformed` with a reason.
pub fn parse_record(position: usize, raw: &Value) -> Parsed {
    // Identity comes from the raw JSON so that even a record that fails to parse can be named in logs.
    let record = RecordRef {
        position,
        event_id: raw
            .get("eventID")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sequence_number: raw
            .pointer("/dynamodb/SequenceNumber")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    // `&Value` is itself a deserializer: no copy of the record on this per-record path.
    let typed = match EventRecord::deserialize(raw) {
        Ok(typed) => typed,
        Err(error) => {
            return Parsed::Malformed {
                record,
                reason: format!(
                    "not a DynamoDB stream record: {}",
                    redact_values(&error.to_string())
                ),
            }
        }
    };
    if !is_relevant(raw) {
        let reason = if !matches!(typed.event_name.as_str(), "INSERT" | "MODIFY" | "REMOVE") {
            IgnoreReason::UnknownEventName
        } else if !string_attr(&typed.change.keys, PK_ATTR)
            .is_some_and(|pk| pk.starts_with(MESSAGE_PK_PREFIX))
        {
            IgnoreReason::NotAMessage
        } else {
            IgnoreReason::NoMessageText
        };
        return Parsed::Ignored { record, reason };
    }
    let malformed = |reason: &str| Parsed::Malformed {
        record: record.clone(),
        reason: reason.to_owned(),
    };
    let Some(pk) = string_attr(&typed.change.keys, PK_ATTR) else {
        return malformed("Keys.pk is not a string");
    };
    let group_uuid = &pk[MESSAGE_PK_PREFIX.len()..];
    if group_uuid.is_empty() {
        return malformed("Keys.pk names no message group");
    }
    let Some(created_at) = string_attr(&typed.change.keys, SK_ATTR).filter(|sk| !sk.is_empty())
    else {
        return malformed("Keys.sk is missing, empty or not a string");
    };
    if typed.event_name == "REMOVE" {
        return Parsed::Relevant(MessageChange::remove(record, group_uuid, created_at));
    }
    let Some(text) = string_attr(&typed.change.new_image, MESSAGE_ATTR) else {
        return malformed("NewImage.message is not a string");
    };
    Parsed::Relevant(MessageChange::write(
        record,
        group_uuid,
        created_at,
        MessageText::new(text),
    ))
}

/// serde's messages quote the offending value (`invalid type: string "..."`, an enum's
/// `unknown variant `...``, serde_dynamo's `The key '...'`), which could be a user's text in a
/// mangled record: keep the message, drop what was quoted. A string value is printed escaped (`\"`
/// inside it), so an escaped quote does not end it; the others are printed raw, so they end at the
/// last occurrence of serde's own text after them.
fn redact_values(message: &str) -> String {
    // Printed raw: (what precedes the value, what may follow it).
    const RAW: [(&str, &[&str]); 2] = [
        (
            "unknown variant `",
            &["`, expected ", "`, there are no variants"],
        ),
        ("The key '", &["' is not a known DynamoDB prefix"]),
    ];
    let mut message = message.to_owned();
    for (before, after) in RAW {
        if let Some(start) = message.find(before).map(|at| at + before.len()) {
            let end = after
                .iter()
                .find_map(|tail| message[start..].rfind(tail))
                .map_or(message.len(), |at| start + at);
            message.replace_range(start..end, "<redacted>");
        }
    }
    let mut out = String::with_capacity(message.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in message.chars() {
        match (c, quoted, escaped) {
            ('"', false, _) => {
                quoted = true;
                out.push_str("\"<redacted>");
            }
            (_, false, _) => out.push(c),
            (_, true, true) => escaped = false,
            ('\\', true, false) => escaped = true,
            ('"', true, false) => {
                quoted = false;
                out.push('"');
            }
            (_, true, false) => {}
        }
    }
    out
}

fn string_attr<'a>(item: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event_name: &str, pk: &str, sk: &str, message: Option<&str>) -> Value {
        let mut image = json!({"pk": {"S": pk}, "sk": {"S": sk}});
        if let Some(text) = message {
            image["message"] = json!({"S": text});
        }
        json!({
            "eventID": format!("id-{pk}-{sk}"),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1679767875.0,
                "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                "NewImage": image,
                "SequenceNumber": "100",
                "SizeBytes": 120,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    #[test]
    fn a_message_insert_is_relevant() {
        let parsed = parse_record(
            3,
            &record("INSERT", "MSG#g1", "2023-03-25T18:11:15+00:00", Some("hi")),
        );
        let Parsed::Relevant(message) = parsed else {
            panic!("expected relevant, got {parsed:?}")
        };
        assert_eq!(message.group_uuid, "g1");
        assert_eq!(message.created_at, "2023-03-25T18:11:15+00:00");
        assert_eq!(message.change, Change::Write(MessageText::new("hi")));
        assert_eq!(message.record.position, 3);
        assert_eq!(message.record.sequence_number.as_deref(), Some("100"));
    }

    #[test]
    fn modify_and_remove_of_messages_are_relevant_group_rows_are_ignored() {
        assert!(matches!(
            parse_record(0, &record("MODIFY", "MSG#g", "t", Some("x"))),
            Parsed::Relevant(MessageChange {
                change: Change::Write(_),
                ..
            })
        ));
        // A NEW_IMAGE stream's REMOVE carries the keys only.
        let mut remove = record("REMOVE", "MSG#g", "t", None);
        remove["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
        let Parsed::Relevant(removed) = parse_record(0, &remove) else {
            panic!("a REMOVE of a message is relevant")
        };
        assert_eq!(
            (
                removed.group_uuid.as_str(),
                removed.created_at.as_str(),
                &removed.change
            ),
            ("g", "t", &Change::Remove)
        );
        let ignored = |raw: Value| match parse_record(0, &raw) {
            Parsed::Ignored { reason, .. } => reason,
            other => panic!("expected ignored, got {other:?}"),
        };
        assert_eq!(
            ignored(record("REMOVE", "GRP#u", "t", None)),
            IgnoreReason::NotAMessage
        );
        assert_eq!(
            ignored(record("TRUNCATE", "MSG#g", "t", Some("x"))),
            IgnoreReason::UnknownEventName
        );
        assert_eq!(
            ignored(record("INSERT", "GRP#u", "t", Some("x"))),
            IgnoreReason::NotAMessage
        );
        assert_eq!(
            ignored(record("INSERT", "MSG#g", "t", None)),
            IgnoreReason::NoMessageText
        );
    }

    #[test]
    fn a_ttl_expiry_is_a_remove_like_any_other() {
        // TTL deletes arrive as REMOVE records made by the DynamoDB service itself.
        let mut expiry = record("REMOVE", "MSG#g", "t", None);
        expiry["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
        expiry["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        assert!(matches!(
            parse_record(0, &expiry),
            Parsed::Relevant(MessageChange {
                change: Change::Remove,
                ..
            })
        ));
    }

    #[test]
    fn missing_required_field_is_malformed_with_identity() {
        let mut raw = record("INSERT", "MSG#g", "t", Some("x"));
        raw.as_object_mut().unwrap().remove("awsRegion");
        let parsed = parse_record(1, &raw);
        assert!(matches!(parsed, Parsed::Malformed { .. }), "{parsed:?}");
        assert_eq!(parsed.record().sequence_number.as_deref(), Some("100"));
        assert_eq!(parsed.record().event_id.as_deref(), Some("id-MSG#g-t"));
    }

    #[test]
    fn empty_group_or_sort_key_is_malformed() {
        assert!(matches!(
            parse_record(0, &record("INSERT", "MSG#", "t", Some("x"))),
            Parsed::Malformed { .. }
        ));
        assert!(matches!(
            parse_record(0, &record("INSERT", "MSG#g", "", Some("x"))),
            Parsed::Malformed { .. }
        ));
        let mut raw = record("INSERT", "MSG#g", "t", Some("x"));
        raw["dynamodb"]["Keys"]["sk"] = json!({"N": "5"});
        assert!(matches!(parse_record(0, &raw), Parsed::Malformed { .. }));
    }

    #[test]
    fn non_objects_are_malformed_not_panics() {
        for raw in [json!(null), json!(7), json!("x"), json!([]), json!({})] {
            assert!(
                matches!(parse_record(0, &raw), Parsed::Malformed { .. }),
                "{raw}"
            );
        }
    }

    #[test]
    fn event_without_records_is_an_error_and_empty_records_is_fine() {
        assert_eq!(parse_event(&json!({})), Err(EventError::NoRecords));
        assert_eq!(
            parse_event(&json!({"Records": {}})),
            Err(EventError::NoRecords)
        );
        assert_eq!(parse_event(&json!({"Records": []})).unwrap(), vec![]);
    }

    #[test]
    fn parse_errors_never_quote_values() {
        let mut raw = record("INSERT", "MSG#g", "t", Some("x"));
        raw["dynamodb"]["SizeBytes"] = json!("meet me at the docks");
        let Parsed::Malformed { reason, .. } = parse_record(0, &raw) else {
            panic!("expected malformed")
        };
        assert!(!reason.contains("docks"), "{reason}");
        assert!(
            reason.contains("invalid type: string \"<redacted>\""),
            "{reason}"
        );
    }

    #[test]
    fn raw_and_tree_events_parse_alike() {
        let event = json!({"Records": [record("INSERT", "MSG#g", "t", Some("x")), json!(7), record("REMOVE", "MSG#g", "t", None)]});
        let raw: RawEvent = serde_json::from_str(&event.to_string()).unwrap();
        assert_eq!(parse_raw_event(&raw).unwrap(), parse_event(&event).unwrap());
        let none: RawEvent = serde_json::from_str(r#"{"Records": null}"#).unwrap();
        assert_eq!(parse_raw_event(&none), Err(EventError::NoRecords));
        let missing: RawEvent = serde_json::from_str("{}").unwrap();
        assert_eq!(parse_raw_event(&missing), Err(EventError::NoRecords));
    }

    #[test]
    fn message_text_debug_is_redacted() {
        let shown = format!("{:?}", MessageText::new("secret plans"));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
