//! Pure planning: which group each batch must update, and which of a group's rows move.
//!
//! Within a batch only the newest message of each group matters (by instant, see
//! [`crate::timestamp`]). Given a group's rows, a row moves only when it is older than that
//! message, so replays and out-of-order deliveries never move a row backwards. No I/O here.

use crate::event::{MessageText, NewMessage, RecordRef};
use crate::timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One DynamoDB transaction holds at most 100 items; a move is a Delete plus a Put.
pub const MAX_ROWS_PER_TRANSACTION: usize = 50;

/// Prefix of group rows' partition key: `GRP#<owner_user_uuid>`.
pub const GROUP_PK_PREFIX: &str = "GRP#";

/// A DynamoDB item with every attribute, as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// The newest message a batch carries for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUpdate {
    pub group_uuid: String,
    /// The newest message's sort key: the rows' new sort key.
    pub created_at: String,
    pub text: MessageText,
    /// The group's earliest record in batch order: where Lambda must retry from if the group fails.
    pub first_record: RecordRef,
    /// How many relevant records of the batch named this group.
    pub records: usize,
}

/// Keeps the newest message of each group. Ties on the instant go to the later record, so the
/// result does not depend on anything but the batch. Groups come out in order of first appearance.
pub fn coalesce(messages: impl IntoIterator<Item = NewMessage>) -> Vec<GroupUpdate> {
    let mut order: Vec<String> = Vec::new();
    let mut newest: HashMap<String, GroupUpdate> = HashMap::new();
    for message in messages {
        match newest.get_mut(&message.group_uuid) {
            None => {
                order.push(message.group_uuid.clone());
                newest.insert(
                    message.group_uuid.clone(),
                    GroupUpdate {
                        group_uuid: message.group_uuid,
                        created_at: message.created_at,
                        text: message.text,
                        first_record: message.record,
                        records: 1,
                    },
                );
            }
            Some(update) => {
                update.records += 1;
                if message.record.position < update.first_record.position {
                    update.first_record = message.record;
                }
                if !timestamp::is_newer(&update.created_at, &message.created_at) {
                    update.created_at = message.created_at;
                    update.text = message.text;
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|group| newest.remove(&group))
        .collect()
}

/// A group row as stored: `pk` = `GRP#<owner>`, `sk` = last_message_at, plus every other attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub pk: String,
    pub sk: String,
    pub item: Item,
}

impl GroupRow {
    /// Reads the keys out of a stored item; `None` when they are not strings.
    pub fn from_item(item: Item) -> Option<Self> {
        let pk = item.get("pk")?.as_s().ok()?.clone();
        let sk = item.get("sk")?.as_s().ok()?.clone();
        Some(Self { pk, sk, item })
    }

    /// The row as it must be after the move: new sort key and last message, all else kept.
    pub fn moved_to(&self, update: &GroupUpdate) -> Item {
        let mut item = self.item.clone();
        item.insert("sk".into(), AttributeValue::S(update.created_at.clone()));
        item.insert(
            "message".into(),
            AttributeValue::S(update.text.as_str().to_owned()),
        );
        item
    }
}

/// What to do with a group's rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupPlan {
    /// Rows older than the message, one per owner.
    pub moves: Vec<GroupRow>,
    /// Rows already at or past the message.
    pub current: usize,
    /// Extra rows for an owner that already had one in the read (a stale index shows a moved row
    /// at its old and new key for a while); the newest of each owner is the one planned.
    pub shadowed: usize,
}

/// True when `row_sk` is older than the update, i.e. the row must move.
pub fn needs_move(row_sk: &str, update: &GroupUpdate) -> bool {
    timestamp::is_newer(&update.created_at, row_sk)
}

/// Decides which rows move, keeping one row per owner: the newest.
pub fn plan_group(rows: Vec<GroupRow>, update: &GroupUpdate) -> GroupPlan {
    let mut per_owner: Vec<GroupRow> = Vec::with_capacity(rows.len());
    let mut shadowed = 0;
    for row in rows {
        match per_owner.iter_mut().find(|kept| kept.pk == row.pk) {
            Some(kept) => {
                shadowed += 1;
                if timestamp::is_newer(&row.sk, &kept.sk) {
                    *kept = row;
                }
            }
            None => per_owner.push(row),
        }
    }
    let (moves, current): (Vec<_>, Vec<_>) = per_owner
        .into_iter()
        .partition(|row| needs_move(&row.sk, update));
    GroupPlan {
        moves,
        current: current.len(),
        shadowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(position: usize, group: &str, created_at: &str, text: &str) -> NewMessage {
        NewMessage {
            record: RecordRef {
                position,
                event_id: Some(format!("e{position}")),
                sequence_number: Some(format!("{}", 1000 + position)),
            },
            group_uuid: group.into(),
            created_at: created_at.into(),
            text: MessageText::new(text),
        }
    }

    fn row(owner: &str, sk: &str) -> GroupRow {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S(format!("GRP#{owner}")));
        item.insert("sk".into(), AttributeValue::S(sk.into()));
        item.insert("user_handle".into(), AttributeValue::S("bayko".into()));
        GroupRow::from_item(item).unwrap()
    }

    fn update(created_at: &str) -> GroupUpdate {
        coalesce([message(0, "g", created_at, "new")]).remove(0)
    }

    #[test]
    fn coalesce_keeps_newest_by_instant_and_earliest_record() {
        let updates = coalesce([
            message(0, "a", "2023-03-25T18:00:02+00:00", "a-newest"),
            message(1, "b", "2023-03-25T18:00:00", "b-only"),
            message(2, "a", "2023-03-25T18:00:01.5", "a-older"),
            // Later as a string ("18:00:03+05:30" > "18:00:02"), earlier as an instant.
            message(3, "a", "2023-03-25T18:00:03+05:30", "a-offset"),
        ]);
        assert_eq!(updates.len(), 2);
        let a = &updates[0];
        assert_eq!(
            (a.group_uuid.as_str(), a.text.as_str(), a.records),
            ("a", "a-newest", 3)
        );
        assert_eq!(a.first_record.position, 0);
        assert_eq!(updates[1].group_uuid, "b");
    }

    #[test]
    fn coalesce_tie_goes_to_later_record_and_first_record_is_earliest() {
        let updates = coalesce([
            message(4, "a", "2023-03-25T18:00:00", "first"),
            message(2, "a", "2023-03-25T18:00:00+00:00", "second"),
        ]);
        assert_eq!(updates[0].text.as_str(), "second");
        assert_eq!(updates[0].first_record.position, 2);
    }

    #[test]
    fn only_older_rows_move() {
        let plan = plan_group(
            vec![
                row("u1", "2023-03-25T17:00:00"),
                row("u2", "2023-03-25T18:00:00+00:00"),
                row("u3", "2023-03-25T19:00:00"),
            ],
            &update("2023-03-25T18:00:00"),
        );
        assert_eq!(
            plan.moves.iter().map(|r| r.pk.as_str()).collect::<Vec<_>>(),
            ["GRP#u1"]
        );
        assert_eq!(plan.current, 2);
    }

    #[test]
    fn one_row_per_owner_the_newest() {
        let plan = plan_group(
            vec![
                row("u1", "2023-03-25T17:00:00"),
                row("u1", "2023-03-25T17:30:00"),
            ],
            &update("2023-03-25T18:00:00"),
        );
        assert_eq!(plan.moves.len(), 1);
        assert_eq!(plan.moves[0].sk, "2023-03-25T17:30:00");
        assert_eq!(plan.shadowed, 1);
    }

    #[test]
    fn moved_row_keeps_every_attribute() {
        let original = row("u1", "2023-03-25T17:00:00");
        let moved = original.moved_to(&update("2023-03-25T18:00:00"));
        assert_eq!(moved["sk"], AttributeValue::S("2023-03-25T18:00:00".into()));
        assert_eq!(moved["message"], AttributeValue::S("new".into()));
        assert_eq!(moved["user_handle"], original.item["user_handle"]);
        assert_eq!(moved["pk"], original.item["pk"]);
    }

    #[test]
    fn rows_without_string_keys_are_rejected() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::N("1".into()));
        item.insert("sk".into(), AttributeValue::S("x".into()));
        assert!(GroupRow::from_item(item).is_none());
    }
}
