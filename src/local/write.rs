//! The app's writes, as the Cruddur backend does them: a new message in a group (Pattern C), and a
//! new conversation (both group rows and the first message in one transaction).
//!
//! Moving the other participants' group rows (Pattern D) is the function's job, triggered by the
//! stream; nothing here touches an existing group row. Users are the seed's (by uuid or handle):
//! the user directory lives outside this table.

use super::seed::{User, USERS};
use super::LocalError;
use crate::plan::Item;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("unknown user {who:?}: use a uuid or handle of the seed's users ({known})")]
    UnknownUser { who: String, known: String },
    #[error("{handle} has no conversation {group} (no GRP#{user} row for it): start one with `ddb new-conversation`")]
    NotAMember {
        handle: String,
        user: String,
        group: String,
    },
    #[error("a conversation needs two different users")]
    SameUser,
    #[error(transparent)]
    Request(#[from] LocalError),
}

/// A seed user by uuid or handle.
pub fn user(who: &str) -> Result<User, WriteError> {
    USERS
        .iter()
        .find(|u| u.uuid == who || u.handle == who)
        .copied()
        .ok_or_else(|| WriteError::UnknownUser {
            who: who.to_owned(),
            known: USERS
                .iter()
                .map(|u| u.handle)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What a write created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub message_group_uuid: String,
    pub message_uuid: String,
    /// The message's sort key: now, in UTC with an explicit offset.
    pub created_at: String,
}

/// Now, as Cruddur writes it (`datetime.now(timezone.utc).isoformat()`).
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn message_item(
    group: &str,
    created_at: &str,
    message_uuid: &str,
    from: &User,
    text: &str,
) -> Item {
    Item::from([
        ("pk".to_owned(), s(&format!("MSG#{group}"))),
        ("sk".to_owned(), s(created_at)),
        ("message_uuid".to_owned(), s(message_uuid)),
        ("message".to_owned(), s(text)),
        ("user_uuid".to_owned(), s(from.uuid)),
        ("user_display_name".to_owned(), s(from.display_name)),
        ("user_handle".to_owned(), s(from.handle)),
    ])
}

fn group_row(owner: &User, other: &User, group: &str, created_at: &str, text: &str) -> Item {
    Item::from([
        ("pk".to_owned(), s(&format!("GRP#{}", owner.uuid))),
        ("sk".to_owned(), s(created_at)),
        ("message_group_uuid".to_owned(), s(group)),
        ("message".to_owned(), s(text)),
        ("user_uuid".to_owned(), s(other.uuid)),
        ("user_display_name".to_owned(), s(other.display_name)),
        ("user_handle".to_owned(), s(other.handle)),
    ])
}

/// Pattern C: `from` writes `text` to `group`, of which they must be a member.
pub async fn send(
    client: &Client,
    table: &str,
    group: &str,
    from: &User,
    text: &str,
) -> Result<Written, WriteError> {
    if !is_member(client, table, from, group).await? {
        return Err(WriteError::NotAMember {
            handle: from.handle.to_owned(),
            user: from.uuid.to_owned(),
            group: group.to_owned(),
        });
    }
    let written = Written {
        message_group_uuid: group.to_owned(),
        message_uuid: uuid::Uuid::new_v4().to_string(),
        created_at: now(),
    };
    client
        .put_item()
        .table_name(table)
        .set_item(Some(message_item(
            group,
            &written.created_at,
            &written.message_uuid,
            from,
            text,
        )))
        // Two messages in one group in the same microsecond would share a key: never overwrite.
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| LocalError::sdk("PutItem", e))?;
    Ok(written)
}

/// A new direct conversation: `from`'s and `to`'s group rows and the first message, all or nothing.
pub async fn new_conversation(
    client: &Client,
    table: &str,
    from: &User,
    to: &User,
    text: &str,
) -> Result<Written, WriteError> {
    if from.uuid == to.uuid {
        return Err(WriteError::SameUser);
    }
    let written = Written {
        message_group_uuid: uuid::Uuid::new_v4().to_string(),
        message_uuid: uuid::Uuid::new_v4().to_string(),
        created_at: now(),
    };
    let group = &written.message_group_uuid;
    let at = &written.created_at;
    let items = [
        group_row(from, to, group, at, text),
        group_row(to, from, group, at, text),
        message_item(group, at, &written.message_uuid, from, text),
    ];
    let puts = items.into_iter().map(|item| {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    });
    client
        .transact_write_items()
        .set_transact_items(Some(puts.collect()))
        .send()
        .await
        .map_err(|e| LocalError::sdk("TransactWriteItems", e))?;
    Ok(written)
}

/// Whether `user` has a group row for `group` (read consistently, every page of their list).
async fn is_member(
    client: &Client,
    table: &str,
    user: &User,
    group: &str,
) -> Result<bool, LocalError> {
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .filter_expression("message_group_uuid = :g")
            .expression_attribute_values(":pk", s(&format!("GRP#{}", user.uuid)))
            .expression_attribute_values(":g", s(group))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("Query", e))?;
        if page.count() > 0 {
            return Ok(true);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_by_uuid_or_handle() {
        assert_eq!(user("londo").unwrap(), super::super::seed::LONDO);
        assert_eq!(
            user(super::super::seed::ANDREW.uuid).unwrap().handle,
            "andrewbrown"
        );
        let error = user("nobody").unwrap_err().to_string();
        assert!(
            error.contains("nobody") && error.contains("bayko"),
            "{error}"
        );
    }

    #[test]
    fn now_is_utc_with_an_offset_and_microseconds() {
        let at = now();
        assert!(at.ends_with("+00:00"), "{at}");
        assert_eq!(at.len(), "2026-01-01T00:00:00.000000+00:00".len(), "{at}");
        assert!(crate::timestamp::parse_instant(&at).is_some());
    }
}
