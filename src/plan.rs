//! Pure planning: what a batch leaves each group's messages at, and what each of a group's rows
//! must become.
//!
//! [`coalesce`] folds a batch's changes per group: per message key the later record wins (stream
//! order per item), then the group's newest written message (by instant, see [`crate::timestamp`])
//! and the keys the batch removed are what matters. [`plan_row`] decides one row: move it forward
//! to a newer message, rewrite its text in place (an edit of the message it previews), fall back
//! after the message it previews was removed, or leave it. [`transactions`] cuts the writes into
//! transactions by DynamoDB's limits. No I/O here.

use crate::event::{Change, MessageChange, MessageText, RecordRef};
use crate::model::{MESSAGE_ATTR, MESSAGE_SK_ATTR, PK_ATTR, SK_ATTR, TRUNCATED_ATTR};
use crate::size::{self, MAX_ITEM_BYTES};
use crate::timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap};

/// One transaction holds at most 100 actions (a move is two: Delete and Put).
pub const MAX_ACTIONS_PER_TRANSACTION: usize = 100;
/// One transaction's items may add up to 4 MB; we stop short of it so that the request's
/// expressions and keys fit too.
pub const MAX_TRANSACTION_BYTES: usize = 4_000_000;

/// How much longer a nudge may make the sort key (a fraction added to a form without one, and
/// more). Kept free, with room for `message_sk` and its value, when sizing the text, so that a
/// nudge never pushes a row over the item limit.
const NUDGE_RESERVE: usize = 16;

/// A DynamoDB item with every attribute, as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// A message as a group row previews it: its sort key and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sk: String,
    pub text: MessageText,
}

/// What one batch leaves a group at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUpdate {
    pub group_uuid: String,
    /// The newest message the batch wrote (INSERT or MODIFY) and did not remove afterwards.
    pub latest: Option<Message>,
    /// Keys whose last record in the batch was a REMOVE.
    pub removed: BTreeSet<String>,
    /// The group's earliest record in batch order: where Lambda must retry from if the group fails.
    pub first_record: RecordRef,
    /// How many relevant records of the batch named this group.
    pub records: usize,
}

/// Folds a batch's changes per group. For one message key the later record wins, so an INSERT,
/// an edit and a REMOVE of one message end as the last of them; among the written keys the newest
/// instant wins, ties to the later record. Groups come out in order of first appearance.
pub fn coalesce(changes: impl IntoIterator<Item = MessageChange>) -> Vec<GroupUpdate> {
    struct Fold {
        first_record: RecordRef,
        records: usize,
        /// Per message key: the last change and its batch position.
        keys: HashMap<String, (usize, Change)>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Fold> = HashMap::new();
    for change in changes {
        let fold = groups.entry(change.group_uuid.clone()).or_insert_with(|| {
            order.push(change.group_uuid.clone());
            Fold {
                first_record: change.record.clone(),
                records: 0,
                keys: HashMap::new(),
            }
        });
        fold.records += 1;
        let position = change.record.position;
        if position < fold.first_record.position {
            fold.first_record = change.record;
        }
        match fold.keys.get(&change.created_at) {
            Some((seen, _)) if *seen > position => {}
            _ => {
                fold.keys
                    .insert(change.created_at, (position, change.change));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|group| {
            let fold = groups.remove(&group)?;
            let mut latest: Option<(usize, Message)> = None;
            let mut removed = BTreeSet::new();
            for (sk, (position, change)) in fold.keys {
                match change {
                    Change::Remove => {
                        removed.insert(sk);
                    }
                    Change::Write(text) => {
                        let wins =
                            latest.as_ref().is_none_or(|(at, kept)| {
                                match timestamp::compare(&sk, &kept.sk) {
                                    std::cmp::Ordering::Greater => true,
                                    std::cmp::Ordering::Equal => position > *at,
                                    std::cmp::Ordering::Less => false,
                                }
                            });
                        if wins {
                            latest = Some((position, Message { sk, text }));
                        }
                    }
                }
            }
            Some(GroupUpdate {
                group_uuid: group,
                latest: latest.map(|(_, message)| message),
                removed,
                first_record: fold.first_record,
                records: fold.records,
            })
        })
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
        let pk = item.get(PK_ATTR)?.as_s().ok()?.clone();
        let sk = item.get(SK_ATTR)?.as_s().ok()?.clone();
        Some(Self { pk, sk, item })
    }

    /// The sort key of the message this row previews: its own, unless it was nudged.
    pub fn previewed_sk(&self) -> &str {
        match self.item.get(MESSAGE_SK_ATTR) {
            Some(AttributeValue::S(sk)) => sk,
            _ => &self.sk,
        }
    }

    /// The row at `key` previewing the message at `message_sk` with `text`, every other attribute
    /// kept. The text is cut at a character boundary to fit the item limit (room kept for a
    /// nudge) and `preview_max_bytes`; `message_truncated` says whether it was.
    fn previewing(
        &self,
        key: &str,
        message_sk: &str,
        text: &str,
        preview_max_bytes: Option<usize>,
    ) -> (Item, bool) {
        let mut item = self.item.clone();
        item.insert(SK_ATTR.into(), AttributeValue::S(key.to_owned()));
        if key == message_sk {
            item.remove(MESSAGE_SK_ATTR);
        } else {
            item.insert(
                MESSAGE_SK_ATTR.into(),
                AttributeValue::S(message_sk.to_owned()),
            );
        }
        item.remove(MESSAGE_ATTR);
        item.remove(TRUNCATED_ATTR);
        let reserved = size::item_size(&item)
            + MESSAGE_ATTR.len()
            + TRUNCATED_ATTR.len()
            + 1
            + NUDGE_RESERVE
            + if item.contains_key(MESSAGE_SK_ATTR) {
                0
            } else {
                MESSAGE_SK_ATTR.len() + message_sk.len()
            };
        let room = MAX_ITEM_BYTES.saturating_sub(reserved);
        let limit = preview_max_bytes.map_or(room, |cap| cap.min(room));
        let preview = size::cut_at_char_boundary(text, limit);
        let truncated = preview.len() < text.len();
        item.insert(MESSAGE_ATTR.into(), AttributeValue::S(preview.to_owned()));
        if truncated {
            item.insert(TRUNCATED_ATTR.into(), AttributeValue::Bool(true));
        }
        (item, truncated)
    }
}

/// The group's newest remaining message, read after a REMOVE of the one some rows previewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Newest(Message),
    /// The group has no message left: rows keep their sort key and preview the empty string.
    NoMessageLeft,
}

/// Why a row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    /// A newer message: the row moves forward.
    Newer,
    /// The message it previews was edited: its text is rewritten in place.
    Edited,
    /// The message it previews was removed: it falls back to the group's newest remaining one.
    Removed,
}

/// One row's write: where it goes and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    /// The row as read: its key is the one the write replaces (or updates, in place).
    pub row: GroupRow,
    /// The row as it must be; its `sk` is the new key.
    pub item: Item,
    /// The sort key of the message it previews (the new key, unless nudged).
    pub message_sk: String,
    pub reason: WriteReason,
    pub truncated: bool,
}

impl RowWrite {
    /// The new sort key.
    pub fn key(&self) -> &str {
        self.item
            .get(SK_ATTR)
            .and_then(|sk| sk.as_s().ok())
            .map_or("", String::as_str)
    }

    /// True when the key does not change: the row is updated where it is.
    pub fn in_place(&self) -> bool {
        self.key() == self.row.sk
    }

    /// True when the new key is not the message's own (another conversation held it).
    pub fn nudged(&self) -> bool {
        self.key() != self.message_sk
    }

    /// DynamoDB actions this write takes in a transaction: Delete + Put, or one Update.
    pub fn actions(&self) -> usize {
        if self.in_place() {
            1
        } else {
            2
        }
    }

    /// Bytes this write counts for in a transaction: the new item, plus the old key for a move.
    pub fn bytes(&self) -> usize {
        let item = size::item_size(&self.item);
        if self.in_place() {
            item
        } else {
            item + PK_ATTR.len() + self.row.pk.len() + SK_ATTR.len() + self.row.sk.len()
        }
    }

    /// The same write to `key` instead, because the message's own key is held by another
    /// conversation of the owner.
    pub fn to_key(mut self, key: &str) -> Self {
        self.item
            .insert(SK_ATTR.into(), AttributeValue::S(key.to_owned()));
        if key == self.message_sk {
            self.item.remove(MESSAGE_SK_ATTR);
        } else {
            self.item.insert(
                MESSAGE_SK_ATTR.into(),
                AttributeValue::S(self.message_sk.clone()),
            );
        }
        self
    }
}

/// What to do with one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowPlan {
    /// Already what the batch leaves it at (replays, out-of-order records, lost races).
    Current,
    /// It previews a removed message: the group's newest remaining message is needed to decide.
    NeedsFallback,
    Write(RowWrite),
}

/// Decides one row. Only a newer message moves a row forward; an edit rewrites the text of the
/// row previewing exactly that message; a REMOVE of exactly the previewed message falls back to
/// `fallback` (the one case a row may move back in time). Anything else leaves the row alone.
pub fn plan_row(
    row: &GroupRow,
    update: &GroupUpdate,
    fallback: Option<&Fallback>,
    preview_max_bytes: Option<usize>,
) -> RowPlan {
    let previewed = row.previewed_sk();
    let newer = update
        .latest
        .as_ref()
        .filter(|latest| timestamp::is_newer(&latest.sk, previewed));
    let (message_sk, text, reason) = if let Some(latest) = newer {
        (latest.sk.as_str(), latest.text.as_str(), WriteReason::Newer)
    } else if update.removed.contains(previewed) {
        match fallback {
            None => return RowPlan::NeedsFallback,
            Some(Fallback::Newest(message)) => (
                message.sk.as_str(),
                message.text.as_str(),
                WriteReason::Removed,
            ),
            Some(Fallback::NoMessageLeft) => (previewed, "", WriteReason::Removed),
        }
    } else if let Some(edited) = update
        .latest
        .as_ref()
        .filter(|latest| latest.sk == previewed)
    {
        (
            edited.sk.as_str(),
            edited.text.as_str(),
            WriteReason::Edited,
        )
    } else {
        return RowPlan::Current;
    };
    // A row that keeps previewing the same message keeps its key (nudged or not).
    let key = if message_sk == previewed {
        row.sk.as_str()
    } else {
        message_sk
    };
    let (item, truncated) = row.previewing(key, message_sk, text, preview_max_bytes);
    if key == row.sk && item == row.item {
        return RowPlan::Current;
    }
    RowPlan::Write(RowWrite {
        row: row.clone(),
        item,
        message_sk: message_sk.to_owned(),
        reason,
        truncated,
    })
}

/// Keeps one row per owner, the newest: a stale index shows a moved row at its old and new key
/// for a while. Returns the rows kept and how many were shadowed.
pub fn one_per_owner(rows: Vec<GroupRow>) -> (Vec<GroupRow>, usize) {
    let mut kept: Vec<GroupRow> = Vec::with_capacity(rows.len());
    let mut shadowed = 0;
    for row in rows {
        match kept.iter_mut().find(|k| k.pk == row.pk) {
            Some(k) => {
                shadowed += 1;
                if timestamp::is_newer(&row.sk, &k.sk) {
                    *k = row;
                }
            }
            None => kept.push(row),
        }
    }
    (kept, shadowed)
}

/// Cuts writes into transactions of at most [`MAX_ACTIONS_PER_TRANSACTION`] actions and
/// [`MAX_TRANSACTION_BYTES`] bytes, in order.
pub fn transactions(writes: Vec<RowWrite>) -> Vec<Vec<RowWrite>> {
    let mut out: Vec<Vec<RowWrite>> = Vec::new();
    let (mut actions, mut bytes) = (0, 0);
    for write in writes {
        let (a, b) = (write.actions(), write.bytes());
        let fits = actions + a <= MAX_ACTIONS_PER_TRANSACTION && bytes + b <= MAX_TRANSACTION_BYTES;
        match out.last_mut() {
            Some(current) if fits => current.push(write),
            _ => {
                (actions, bytes) = (0, 0);
                out.push(vec![write]);
            }
        }
        actions += a;
        bytes += b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GROUP_ATTR;

    fn record(position: usize) -> RecordRef {
        RecordRef {
            position,
            event_id: Some(format!("e{position}")),
            sequence_number: Some(format!("{}", 1000 + position)),
        }
    }

    fn write(position: usize, group: &str, sk: &str, text: &str) -> MessageChange {
        MessageChange::write(record(position), group, sk, MessageText::new(text))
    }

    fn remove(position: usize, group: &str, sk: &str) -> MessageChange {
        MessageChange::remove(record(position), group, sk)
    }

    fn row(owner: &str, sk: &str, text: &str) -> GroupRow {
        let mut item = Item::new();
        item.insert(
            PK_ATTR.into(),
            AttributeValue::S(crate::model::group_pk(owner)),
        );
        item.insert(SK_ATTR.into(), AttributeValue::S(sk.into()));
        item.insert(GROUP_ATTR.into(), AttributeValue::S("g".into()));
        item.insert(MESSAGE_ATTR.into(), AttributeValue::S(text.into()));
        item.insert(
            crate::model::USER_HANDLE_ATTR.into(),
            AttributeValue::S("bayko".into()),
        );
        GroupRow::from_item(item).unwrap()
    }

    fn update(changes: Vec<MessageChange>) -> GroupUpdate {
        coalesce(changes).remove(0)
    }

    fn planned(row: &GroupRow, update: &GroupUpdate, fallback: Option<&Fallback>) -> RowWrite {
        match plan_row(row, update, fallback, None) {
            RowPlan::Write(write) => write,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn text(item: &Item) -> &str {
        item[MESSAGE_ATTR].as_s().unwrap()
    }

    #[test]
    fn coalesce_keeps_newest_by_instant_and_earliest_record() {
        let updates = coalesce([
            write(0, "a", "2023-03-25T18:00:02+00:00", "a-newest"),
            write(1, "b", "2023-03-25T18:00:00", "b-only"),
            write(2, "a", "2023-03-25T18:00:01.5", "a-older"),
            // Later as a string ("18:00:03+05:30" > "18:00:02"), earlier as an instant.
            write(3, "a", "2023-03-25T18:00:03+05:30", "a-offset"),
        ]);
        assert_eq!(updates.len(), 2);
        let a = &updates[0];
        let latest = a.latest.as_ref().unwrap();
        assert_eq!(
            (a.group_uuid.as_str(), latest.text.as_str(), a.records),
            ("a", "a-newest", 3)
        );
        assert_eq!(a.first_record.position, 0);
        assert_eq!(updates[1].group_uuid, "b");
    }

    #[test]
    fn coalesce_tie_goes_to_later_record_and_first_record_is_earliest() {
        let a = update(vec![
            write(4, "a", "2023-03-25T18:00:00", "first"),
            write(2, "a", "2023-03-25T18:00:00+00:00", "second"),
            write(5, "a", "2023-03-25T18:00:00+00:00", "third"),
        ]);
        assert_eq!(a.latest.unwrap().text.as_str(), "third");
        assert_eq!(a.first_record.position, 2);
    }

    #[test]
    fn coalesce_per_key_the_last_record_wins() {
        let t1 = "2023-03-25T18:00:01";
        let t2 = "2023-03-25T18:00:02";
        // Write then remove the newest: the older one is latest and the newest is removed.
        let a = update(vec![
            write(0, "g", t1, "one"),
            write(1, "g", t2, "two"),
            remove(2, "g", t2),
        ]);
        assert_eq!(a.latest.as_ref().unwrap().sk, t1);
        assert_eq!(a.removed, BTreeSet::from([t2.to_owned()]));
        // Remove then a newer write of the same key (and an edit of it): the last text wins.
        let b = update(vec![
            remove(0, "g", t2),
            write(1, "g", t2, "again"),
            write(2, "g", t2, "edited"),
        ]);
        assert_eq!(b.latest.as_ref().unwrap().text.as_str(), "edited");
        assert!(b.removed.is_empty());
    }

    #[test]
    fn only_older_rows_move_forward() {
        let u = update(vec![write(0, "g", "2023-03-25T18:00:00", "new")]);
        for (sk, moves) in [
            ("2023-03-25T17:00:00", true),
            ("2023-03-25T18:00:00+00:00", false),
            ("2023-03-25T19:00:00", false),
        ] {
            let plan = plan_row(&row("u", sk, "old"), &u, None, None);
            assert_eq!(matches!(plan, RowPlan::Write(_)), moves, "{sk}: {plan:?}");
        }
        let moved = planned(&row("u", "2023-03-25T17:00:00", "old"), &u, None);
        assert_eq!(moved.reason, WriteReason::Newer);
        assert_eq!(moved.key(), "2023-03-25T18:00:00");
        assert_eq!(text(&moved.item), "new");
        assert_eq!(moved.item["user_handle"], AttributeValue::S("bayko".into()));
        assert!(!moved.in_place() && !moved.nudged() && !moved.truncated);
    }

    #[test]
    fn an_edit_rewrites_only_the_row_previewing_that_message() {
        let t = "2023-03-25T18:00:00+00:00";
        let u = update(vec![write(0, "g", t, "edited")]);
        let edit = planned(&row("u", t, "typo"), &u, None);
        assert_eq!(
            (edit.reason, edit.in_place(), text(&edit.item)),
            (WriteReason::Edited, true, "edited")
        );
        // The same instant written another way is another message item: not an edit of this one.
        assert_eq!(
            plan_row(&row("u", "2023-03-25T18:00:00", "typo"), &u, None, None),
            RowPlan::Current
        );
        // Replayed: the row already says it.
        assert_eq!(
            plan_row(&row("u", t, "edited"), &u, None, None),
            RowPlan::Current
        );
    }

    #[test]
    fn a_removed_preview_falls_back_and_other_rows_stay() {
        let (t1, t2) = ("2023-03-25T18:00:01", "2023-03-25T18:00:02");
        let u = update(vec![remove(0, "g", t2)]);
        let at_removed = row("u", t2, "gone soon");
        assert_eq!(
            plan_row(&at_removed, &u, None, None),
            RowPlan::NeedsFallback
        );
        let back = Fallback::Newest(Message {
            sk: t1.into(),
            text: MessageText::new("older"),
        });
        let fell = planned(&at_removed, &u, Some(&back));
        assert_eq!(
            (fell.reason, fell.key(), text(&fell.item)),
            (WriteReason::Removed, t1, "older")
        );
        let emptied = planned(&at_removed, &u, Some(&Fallback::NoMessageLeft));
        assert_eq!(
            (emptied.key(), text(&emptied.item), emptied.in_place()),
            (t2, "", true)
        );
        // A row at any other key is untouched, with or without the fallback.
        assert_eq!(
            plan_row(&row("v", t1, "older"), &u, None, None),
            RowPlan::Current
        );
        // A replayed REMOVE finds the row already fallen back.
        assert_eq!(
            plan_row(&row("u", t1, "older"), &u, Some(&back), None),
            RowPlan::Current
        );
    }

    #[test]
    fn a_newer_message_after_a_remove_needs_no_fallback() {
        let (t2, t3) = ("2023-03-25T18:00:02", "2023-03-25T18:00:03");
        let u = update(vec![remove(0, "g", t2), write(1, "g", t3, "newest")]);
        let moved = planned(&row("u", t2, "removed"), &u, None);
        assert_eq!((moved.reason, moved.key()), (WriteReason::Newer, t3));
    }

    #[test]
    fn a_nudged_row_previews_its_message_and_a_replay_is_current() {
        let t = "2023-03-25T18:00:00+00:00";
        let u = update(vec![write(0, "g", t, "same instant")]);
        let moved = planned(&row("u", "2023-03-25T17:00:00", "old"), &u, None);
        let nudged = moved.clone().to_key("2023-03-25T18:00:00.000001+00:00");
        assert!(nudged.nudged());
        assert_eq!(nudged.item[MESSAGE_SK_ATTR], AttributeValue::S(t.into()));
        let stored = GroupRow::from_item(nudged.item.clone()).unwrap();
        assert_eq!(stored.previewed_sk(), t);
        assert_eq!(plan_row(&stored, &u, None, None), RowPlan::Current);
        // An edit of that message rewrites the nudged row in place.
        let edit = update(vec![write(0, "g", t, "edited")]);
        let rewritten = planned(&stored, &edit, None);
        assert!(rewritten.in_place() && rewritten.nudged());
        // Back to its own key: no `message_sk`.
        assert!(!nudged.to_key(t).item.contains_key(MESSAGE_SK_ATTR));
    }

    #[test]
    fn text_is_cut_to_the_item_limit_and_the_cap() {
        let t = "2023-03-25T18:00:00";
        let long = "é".repeat(MAX_ITEM_BYTES / 2);
        let u = update(vec![write(0, "g", t, &long)]);
        let cut = planned(&row("u", "2023-03-25T17:00:00", "old"), &u, None);
        assert!(cut.truncated);
        assert_eq!(cut.item[TRUNCATED_ATTR], AttributeValue::Bool(true));
        assert!(
            size::item_size(&cut.clone().to_key("2023-03-25T18:00:00.000001").item)
                <= MAX_ITEM_BYTES
        );
        assert!(long.starts_with(text(&cut.item)));
        let capped = match plan_row(&row("u", "2023-03-25T17:00:00", "old"), &u, None, Some(5)) {
            RowPlan::Write(w) => w,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(&capped.item), "éé");
        // A later message that fits clears the flag.
        let mut stored = GroupRow::from_item(capped.item).unwrap();
        stored
            .item
            .insert(TRUNCATED_ATTR.into(), AttributeValue::Bool(true));
        let fits = update(vec![write(0, "g", "2023-03-25T19:00:00", "short")]);
        assert!(!planned(&stored, &fits, None)
            .item
            .contains_key(TRUNCATED_ATTR));
    }

    #[test]
    fn one_row_per_owner_the_newest() {
        let (rows, shadowed) = one_per_owner(vec![
            row("u1", "2023-03-25T17:00:00", "a"),
            row("u1", "2023-03-25T17:30:00", "b"),
            row("u2", "2023-03-25T17:00:00", "c"),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].sk, "2023-03-25T17:30:00");
        assert_eq!(shadowed, 1);
    }

    #[test]
    fn transactions_respect_actions_and_bytes() {
        let t = "2023-03-25T18:00:00";
        let small = update(vec![write(0, "g", t, "hi")]);
        let writes: Vec<_> = (0..120)
            .map(|i| {
                planned(
                    &row(&format!("u{i}"), "2023-03-25T17:00:00", "old"),
                    &small,
                    None,
                )
            })
            .collect();
        let sizes: Vec<usize> = transactions(writes).iter().map(Vec::len).collect();
        assert_eq!(sizes, [50, 50, 20]);
        let big = update(vec![write(0, "g", t, &"x".repeat(100_000))]);
        let writes: Vec<_> = (0..60)
            .map(|i| {
                planned(
                    &row(&format!("u{i}"), "2023-03-25T17:00:00", "old"),
                    &big,
                    None,
                )
            })
            .collect();
        let chunks = transactions(writes);
        assert!(chunks.len() >= 2, "{} transactions", chunks.len());
        for chunk in &chunks {
            assert!(chunk.iter().map(RowWrite::bytes).sum::<usize>() <= MAX_TRANSACTION_BYTES);
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 60);
    }

    #[test]
    fn rows_without_string_keys_are_rejected() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::N("1".into()));
        item.insert("sk".into(), AttributeValue::S("x".into()));
        assert!(GroupRow::from_item(item).is_none());
    }
}
