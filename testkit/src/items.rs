//! Builders of the table's items and of the stream records and events Lambda delivers, as the
//! app and DynamoDB Streams write them: one copy for every test and the bench.

use aws_sdk_dynamodb::types::AttributeValue;
use messaging_stream::model::{
    group_pk, message_pk, GROUP_ATTR, MESSAGE_ATTR, MESSAGE_UUID_ATTR, PK_ATTR, SK_ATTR,
    USER_DISPLAY_NAME_ATTR, USER_HANDLE_ATTR, USER_UUID_ATTR,
};
use messaging_stream::plan::Item;

/// A string attribute of an item ("" when absent).
pub fn s(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn attr(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A group row item for `owner` in `group` at `sk`.
pub fn group_row(owner: &str, group: &str, sk: &str, message: &str) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), attr(&group_pk(owner))),
        (SK_ATTR.to_owned(), attr(sk)),
        (GROUP_ATTR.to_owned(), attr(group)),
        (MESSAGE_ATTR.to_owned(), attr(message)),
        (
            USER_UUID_ATTR.to_owned(),
            attr(&format!("other-of-{owner}")),
        ),
        (USER_DISPLAY_NAME_ATTR.to_owned(), attr("Other Person")),
        (USER_HANDLE_ATTR.to_owned(), attr("other")),
    ])
}

/// One Lambda stream record for a new message, as DynamoDB Streams delivers it.
pub fn message_record(
    group: &str,
    created_at: &str,
    text: &str,
    sequence_number: &str,
) -> serde_json::Value {
    serde_json::json!({
        "eventID": format!("ev-{sequence_number}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/test/stream/2025-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1736935200.0,
            "Keys": {"pk": {"S": format!("MSG#{group}")}, "sk": {"S": created_at}},
            "NewImage": {
                "pk": {"S": format!("MSG#{group}")},
                "sk": {"S": created_at},
                "message_uuid": {"S": format!("m-{sequence_number}")},
                "message": {"S": text},
                "user_uuid": {"S": "sender"},
                "user_display_name": {"S": "Sender"},
                "user_handle": {"S": "sender"}
            },
            "SequenceNumber": sequence_number,
            "SizeBytes": 200,
            "StreamViewType": "NEW_IMAGE"
        }
    })
}

/// A message item as the app writes it (pattern C), for the table itself; its uuid is
/// `m-<created_at>`.
pub fn message_item(group: &str, created_at: &str, text: &str) -> Item {
    message_item_with_uuid(group, created_at, &format!("m-{created_at}"), text)
}

/// [`message_item`] with the message's uuid given (tests that read it back, or that keep one
/// uuid per group).
pub fn message_item_with_uuid(group: &str, created_at: &str, uuid: &str, text: &str) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), attr(&message_pk(group))),
        (SK_ATTR.to_owned(), attr(created_at)),
        (MESSAGE_UUID_ATTR.to_owned(), attr(uuid)),
        (MESSAGE_ATTR.to_owned(), attr(text)),
        (USER_UUID_ATTR.to_owned(), attr("sender")),
        (USER_DISPLAY_NAME_ATTR.to_owned(), attr("Sender")),
        (USER_HANDLE_ATTR.to_owned(), attr("sender")),
    ])
}

/// The stream record of an edit: a MODIFY of the message item at `created_at` with new text.
pub fn edit_record(
    group: &str,
    created_at: &str,
    text: &str,
    sequence_number: &str,
) -> serde_json::Value {
    let mut record = message_record(group, created_at, text, sequence_number);
    record["eventName"] = serde_json::json!("MODIFY");
    record
}

/// The stream record of a deleted message: a REMOVE, which a NEW_IMAGE stream sends with the keys only.
pub fn remove_record(group: &str, created_at: &str, sequence_number: &str) -> serde_json::Value {
    let mut record = message_record(group, created_at, "", sequence_number);
    record["eventName"] = serde_json::json!("REMOVE");
    let change = record["dynamodb"].as_object_mut().expect("an object");
    change.remove("NewImage");
    change.insert("SizeBytes".into(), serde_json::json!(60));
    record
}

/// A Lambda event of `records`.
pub fn event(records: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({ "Records": records })
}
