//! `ddb seed`: deterministic Cruddur seed data: users, conversations and their messages.
//!
//! Fixed ids and timestamps (spring 2024, mixing naive and offset forms as real data does), so
//! `events/*.json` can name the groups and every run seeds the same table. Seeding is idempotent:
//! a message is put only if absent, and a group row only if its owner has no row for that group yet
//! (the function may have moved it to a newer sort key since).

use super::CommandError;
use crate::connect::Target;
use crate::output::{LocalError, Output};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{Duration, NaiveDate};
use messaging_stream::config::Config;
use messaging_stream::model::{
    group_pk, message_pk, GROUP_ATTR, MESSAGE_ATTR, MESSAGE_UUID_ATTR, PK_ATTR, SK_ATTR,
    USER_DISPLAY_NAME_ATTR, USER_HANDLE_ATTR, USER_UUID_ATTR,
};
use messaging_stream::plan::Item;
use messaging_stream::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uuid: &'static str,
    pub handle: &'static str,
    pub display_name: &'static str,
}

pub const ANDREW: User = User {
    uuid: "90f1c8d4-6c0a-4c41-9d55-8a8a5a0f1e01",
    handle: "andrewbrown",
    display_name: "Andrew Brown",
};
pub const BAYKO: User = User {
    uuid: "2b8f6d1e-3e57-4b0a-a1c2-7c1f9e0d2e02",
    handle: "bayko",
    display_name: "Andrew Bayko",
};
pub const LONDO: User = User {
    uuid: "6c4a0b3f-9d2e-4f81-b7a6-1e5d8c9f3e03",
    handle: "londo",
    display_name: "Londo Mollari",
};
pub const VLAD: User = User {
    uuid: "d3e7f5a9-1b4c-4e6d-8f2a-5c9b0a7e4e04",
    handle: "vlad",
    display_name: "Vlad Lasky",
};
pub const USERS: [User; 4] = [ANDREW, BAYKO, LONDO, VLAD];

/// Andrew and Bayko's direct conversation.
pub const GROUP_ANDREW_BAYKO: &str = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
/// Andrew and Londo's direct conversation (the older one in Andrew's list).
pub const GROUP_ANDREW_LONDO: &str = "8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05";
/// A group chat of all four users.
pub const GROUP_CREW: &str = "c2d4e6f8-0a1b-4c3d-9e5f-7a8b9c0d1e06";

/// One conversation: its group id, members, title for group chats, and how many messages.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub group_uuid: &'static str,
    pub members: Vec<User>,
    pub title: Option<&'static str>,
    pub messages: usize,
    /// Minutes after the seed's epoch of the first message.
    pub start_minute: i64,
}

pub fn conversations() -> Vec<Conversation> {
    vec![
        Conversation {
            group_uuid: GROUP_ANDREW_LONDO,
            members: vec![ANDREW, LONDO],
            title: None,
            messages: 24,
            start_minute: 0,
        },
        Conversation {
            group_uuid: GROUP_CREW,
            members: vec![ANDREW, BAYKO, LONDO, VLAD],
            title: Some("Babylon 5 crew"),
            messages: 36,
            start_minute: 600,
        },
        Conversation {
            group_uuid: GROUP_ANDREW_BAYKO,
            members: vec![ANDREW, BAYKO],
            title: None,
            messages: 30,
            start_minute: 1440,
        },
    ]
}

const LINES: [&str; 8] = [
    "Are you joining the study session tonight?",
    "I pushed the DynamoDB changes, can you review?",
    "The stream trigger fired twice, is that expected?",
    "Yes, at-least-once delivery. Make it idempotent.",
    "Coffee first, then the GSI.",
    "Single table design is growing on me.",
    "Did the deploy go through?",
    "All green. See you tomorrow!",
];

/// A message of the seed, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedMessage {
    pub group_uuid: &'static str,
    pub created_at: String,
    pub sender: User,
    pub text: String,
}

/// The i-th timestamp of a conversation, in one of the forms real data mixes.
fn timestamp(minute: i64, i: usize) -> String {
    let epoch = NaiveDate::from_ymd_opt(2024, 5, 6)
        .and_then(|d| d.and_hms_micro_opt(9, 0, 0, 0))
        .expect("valid date");
    let at =
        epoch + Duration::minutes(minute) + Duration::microseconds(((i * 7919) % 1_000_000) as i64);
    match i % 3 {
        0 => at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
        1 => at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        _ => at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
    }
}

/// Every message of a conversation, oldest first.
pub fn messages(conversation: &Conversation) -> Vec<SeedMessage> {
    (0..conversation.messages)
        .map(|i| SeedMessage {
            group_uuid: conversation.group_uuid,
            created_at: timestamp(conversation.start_minute + 7 * i as i64, i),
            sender: conversation.members[i % conversation.members.len()],
            text: LINES[i % LINES.len()].to_owned(),
        })
        .collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A message item: pk `MSG#<group>`, sk = created_at.
pub fn message_item(message: &SeedMessage, message_uuid: &str) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), s(&message_pk(message.group_uuid))),
        (SK_ATTR.to_owned(), s(&message.created_at)),
        (MESSAGE_UUID_ATTR.to_owned(), s(message_uuid)),
        (MESSAGE_ATTR.to_owned(), s(&message.text)),
        (USER_UUID_ATTR.to_owned(), s(message.sender.uuid)),
        (
            USER_DISPLAY_NAME_ATTR.to_owned(),
            s(message.sender.display_name),
        ),
        (USER_HANDLE_ATTR.to_owned(), s(message.sender.handle)),
    ])
}

/// A group row for `owner`: the other participant (or the group's title) and the last message.
pub fn group_row_item(owner: &User, other: &User, group_uuid: &str, last: &SeedMessage) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), s(&group_pk(owner.uuid))),
        (SK_ATTR.to_owned(), s(&last.created_at)),
        (GROUP_ATTR.to_owned(), s(group_uuid)),
        (MESSAGE_ATTR.to_owned(), s(&last.text)),
        (USER_UUID_ATTR.to_owned(), s(other.uuid)),
        (USER_DISPLAY_NAME_ATTR.to_owned(), s(other.display_name)),
        (USER_HANDLE_ATTR.to_owned(), s(other.handle)),
    ])
}

/// Every item of the seed: messages first, then group rows (one per member of each conversation).
pub fn items() -> (Vec<Item>, Vec<Item>) {
    let mut message_items = Vec::new();
    let mut row_items = Vec::new();
    for conversation in conversations() {
        let all = messages(&conversation);
        for (i, message) in all.iter().enumerate() {
            let message_uuid = format!("{}-{:04}", &conversation.group_uuid[..23], i);
            message_items.push(message_item(message, &message_uuid));
        }
        let last = all.last().expect("conversations have messages");
        for owner in &conversation.members {
            let other = match conversation.title {
                Some(title) => User {
                    uuid: conversation.group_uuid,
                    handle: "group",
                    display_name: title,
                },
                None => *conversation
                    .members
                    .iter()
                    .find(|m| m.uuid != owner.uuid)
                    .expect("direct conversations have two members"),
            };
            row_items.push(group_row_item(owner, &other, conversation.group_uuid, last));
        }
    }
    (message_items, row_items)
}

/// How many items seeding wrote (the rest were there already).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    pub messages: usize,
    pub group_rows: usize,
    pub skipped: usize,
}

/// Writes the seed into `table`; safe to run again.
pub async fn seed(client: &Client, table: &str) -> Result<Seeded, LocalError> {
    let (message_items, row_items) = items();
    let store = Store::new(
        client.clone(),
        &Config {
            table_name: table.to_owned(),
            ..Config::default()
        },
    );
    let mut seeded = Seeded::default();
    for item in message_items {
        if put_if_absent(client, table, item).await? {
            seeded.messages += 1;
        } else {
            seeded.skipped += 1;
        }
    }
    for item in row_items {
        let pk = item[PK_ATTR]
            .as_s()
            .expect("seed rows have a string pk")
            .clone();
        let group = item[GROUP_ATTR]
            .as_s()
            .expect("seed rows have a string group")
            .clone();
        // The function may have moved the row to a newer sort key: look for the owner's row of this
        // group as the function itself does, not for the seed's key.
        let existing = store
            .owner_row(&pk, &group)
            .await
            .map_err(|e| LocalError::other("Query", e.to_string()).on(table))?;
        if existing.is_some() || !put_if_absent(client, table, item).await? {
            seeded.skipped += 1;
        } else {
            seeded.group_rows += 1;
        }
    }
    Ok(seeded)
}

async fn put_if_absent(client: &Client, table: &str, item: Item) -> Result<bool, LocalError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(LocalError::sdk("PutItem", error).on(table)),
    }
}

/// `ddb seed`: writes the seed to the table (idempotent) and says what it added.
pub async fn run(target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    session.say_writing();
    let table = session.table();
    let seeded = seed(&session.client, table).await?;
    out.result(
        serde_json::json!({
            "table": table,
            "messages": seeded.messages,
            "group_rows": seeded.group_rows,
            "already_there": seeded.skipped,
        }),
        format_args!(
            "seeded {table}: {} messages, {} group rows ({} already there)",
            seeded.messages, seeded.group_rows, seeded.skipped
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_stream::timestamp;

    #[test]
    fn every_member_gets_one_row_at_the_last_message() {
        let (message_items, rows) = items();
        assert_eq!(message_items.len(), 24 + 36 + 30);
        assert_eq!(rows.len(), 2 + 4 + 2);
        for conversation in conversations() {
            let last = messages(&conversation).pop().unwrap();
            let group_rows: Vec<_> = rows
                .iter()
                .filter(|r| r["message_group_uuid"].as_s().unwrap() == conversation.group_uuid)
                .collect();
            assert_eq!(group_rows.len(), conversation.members.len());
            assert!(group_rows
                .iter()
                .all(|r| r["sk"].as_s().unwrap() == &last.created_at));
        }
    }

    #[test]
    fn timestamps_increase_by_instant_and_mix_forms() {
        for conversation in conversations() {
            let all = messages(&conversation);
            assert!(all
                .windows(2)
                .all(|w| timestamp::is_newer(&w[1].created_at, &w[0].created_at)));
            assert!(all.iter().any(|m| m.created_at.ends_with("+00:00")));
            assert!(all.iter().any(|m| !m.created_at.contains('+')));
        }
    }

    #[test]
    fn andrew_bayko_is_the_newest_conversation() {
        let newest = conversations()
            .into_iter()
            .max_by(|a, b| {
                timestamp::compare(
                    &messages(a).pop().unwrap().created_at,
                    &messages(b).pop().unwrap().created_at,
                )
            })
            .unwrap();
        assert_eq!(newest.group_uuid, GROUP_ANDREW_BAYKO);
    }
}
