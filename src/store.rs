//! The table's requests: with `cache::dynamo` (the cache table), the function's only modules that call DynamoDB.
//!
//! It reads a group's rows from the GSI (all pages), re-reads one owner's row with a strongly
//! consistent query of the base table, reads the group's newest remaining messages after a
//! REMOVE, lists the keys an owner holds around an instant (to find a free one), and writes rows in
//! one transaction: a move is a conditional Delete of the old key plus a conditional Put of the
//! new one (a row is never lost and never doubled), an in-place rewrite is a conditional Update.
//! Retrying throttling and 5xx is the SDK's job (see [`crate::config::Config::retry_config`]);
//! deciding what to do about a cancelled transaction is the caller's.
//!
//! [`Store::dry_run`] is the same store for a dry run (`ddb redrive --dry-run`): it reads the table
//! as ever, but keeps its writes in memory (a [`Draft`]), checks their conditions as DynamoDB would,
//! and every later read sees them. So the handler runs unchanged, and a dry run counts exactly what
//! the real run would, batch after batch.

use crate::aws::{Failure, Setup};
use crate::config::Config;
use crate::event::MessageText;
use crate::model::{
    message_pk, GROUP_ATTR, GROUP_PK_PREFIX, MESSAGE_ATTR, MESSAGE_SK_ATTR, PK_ATTR, SK_ATTR,
    TRUNCATED_ATTR,
};
use crate::plan::{Fallback, GroupRow, Item, Message, RowWrite};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many of a group's newest messages (by sort key string) the fallback after a REMOVE reads.
/// Sort key strings order like instants except across timestamp forms; the newest instant among
/// these is taken. Ten small messages cost the same read unit as one.
pub const FALLBACK_CANDIDATES: i32 = 10;

/// A request DynamoDB (or the network) refused after the SDK's retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("querying index {index} for group {group}: {detail}")]
    QueryGroup {
        index: String,
        group: String,
        detail: Failure,
    },
    #[error("consistent read of {pk} for group {group}: {detail}")]
    ReadOwner {
        pk: String,
        group: String,
        detail: Failure,
    },
    #[error("reading the newest messages of group {group}: {detail}")]
    ReadMessages { group: String, detail: Failure },
    #[error("writing {rows} rows of group {group}: {detail}")]
    Transaction {
        group: String,
        rows: usize,
        detail: Failure,
    },
}

impl StoreError {
    /// The set-up problem (unreachable, credentials, missing table or index) behind it, if any.
    pub fn setup(&self) -> Option<Setup> {
        match self {
            Self::QueryGroup { detail, .. }
            | Self::ReadOwner { detail, .. }
            | Self::ReadMessages { detail, .. }
            | Self::Transaction { detail, .. } => detail.setup,
        }
    }
}

/// Why DynamoDB cancelled one row's part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowFailure {
    /// The row is no longer at its old key as this group's row (another invocation wrote it, or
    /// the GSI was stale): re-read it.
    OldKey,
    /// The old key was fine but the new key is taken: by another conversation of the owner (a
    /// same-instant collision) or by this group's own row.
    NewKeyTaken,
    /// Another transaction was writing the same item.
    Conflict,
    /// The item's partition was throttled.
    Throttled,
    /// Anything else, by DynamoDB's code.
    Other(String),
}

/// The result of one write transaction that DynamoDB answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Nothing was written. One entry per row, in order; `None` for rows that were not at fault.
    /// Empty when DynamoDB gave no reasons.
    Cancelled(Vec<Option<RowFailure>>),
}

/// DynamoDB access for one table and its group index.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
    index: String,
    /// A dry run's writes (`None`: writes go to DynamoDB).
    draft: Option<Arc<Mutex<Draft>>>,
}

/// The items a dry run wrote, by key: `Some` put (or updated), `None` deleted. Shared by the clones
/// of one dry-run store.
#[derive(Default)]
pub struct Draft {
    items: HashMap<(String, String), Option<Item>>,
}

/// The items hold message text: their number only.
impl std::fmt::Debug for Draft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draft")
            .field("items", &self.items.len())
            .finish()
    }
}

impl Draft {
    /// `found` (read from the table) with the draft's writes over it: items it rewrote or deleted
    /// replaced, and its own items that `keep` accepts added.
    fn over(&self, found: Vec<Item>, keep: impl Fn(&Item) -> bool) -> Vec<Item> {
        let mut items: Vec<Item> = found
            .into_iter()
            .filter(|item| key(item).is_none_or(|k| !self.items.contains_key(&k)))
            .collect();
        items.extend(self.items.values().flatten().filter(|i| keep(i)).cloned());
        items
    }
}

/// An item's (pk, sk), when both are strings.
fn key(item: &Item) -> Option<(String, String)> {
    Some((
        item.get(PK_ATTR)?.as_s().ok()?.clone(),
        item.get(SK_ATTR)?.as_s().ok()?.clone(),
    ))
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl Store {
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            table: config.table_name.clone(),
            index: config.group_index_name.clone(),
            draft: None,
        }
    }

    /// The same store, keeping its writes in a new, empty [`Draft`] instead of sending them.
    pub fn dry_run(&self) -> Self {
        Self {
            draft: Some(Arc::default()),
            ..self.clone()
        }
    }

    fn draft(&self) -> Option<std::sync::MutexGuard<'_, Draft>> {
        self.draft
            .as_ref()
            .map(|d| d.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every row of a group, from the GSI (eventually consistent: may lag the table briefly).
    pub async fn group_rows(&self, group: &str) -> Result<Vec<GroupRow>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(&self.index)
            .key_condition_expression(format!("{GROUP_ATTR} = :g"))
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()));
        let items = self
            .all_pages(query, |detail| StoreError::QueryGroup {
                index: self.index.clone(),
                group: group.to_owned(),
                detail,
            })
            .await?;
        let items = match self.draft() {
            Some(draft) => draft.over(items, |i| string_attr(i, GROUP_ATTR) == Some(group)),
            None => items,
        };
        // Only group rows carry `message_group_uuid`, so the index holds nothing else; a row
        // without string keys cannot be moved and is left alone.
        Ok(items
            .into_iter()
            .filter_map(GroupRow::from_item)
            .filter(|row| row.pk.starts_with(GROUP_PK_PREFIX))
            .collect())
    }

    /// The current row of `group` under owner partition `pk`, read strongly consistently from the
    /// base table; the newest if there were ever several, `None` if there is none.
    pub async fn owner_row(&self, pk: &str, group: &str) -> Result<Option<GroupRow>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(format!("{PK_ATTR} = :pk"))
            .filter_expression(format!("{GROUP_ATTR} = :g"))
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()));
        let items = self
            .all_pages(query, |detail| read_owner(pk, group, detail))
            .await?;
        let items = match self.draft() {
            Some(draft) => draft
                .over(items, |i| {
                    string_attr(i, PK_ATTR) == Some(pk) && string_attr(i, GROUP_ATTR) == Some(group)
                })
                .into_iter()
                .filter(|i| string_attr(i, GROUP_ATTR) == Some(group))
                .collect(),
            None => items,
        };
        Ok(items
            .into_iter()
            .filter_map(GroupRow::from_item)
            .max_by(|a, b| crate::timestamp::compare(&a.sk, &b.sk)))
    }

    /// The sort keys under owner partition `pk` from `low` to `high` (string order, inclusive),
    /// strongly consistent, each with the group whose row holds it.
    pub async fn owner_keys_between(
        &self,
        pk: &str,
        low: &str,
        high: &str,
        group: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(format!(
                "{PK_ATTR} = :pk AND {SK_ATTR} BETWEEN :low AND :high"
            ))
            .projection_expression(format!("{SK_ATTR}, {GROUP_ATTR}"))
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":low", AttributeValue::S(low.to_owned()))
            .expression_attribute_values(":high", AttributeValue::S(high.to_owned()));
        let items = self
            .all_pages(query, |detail| read_owner(pk, group, detail))
            .await?;
        let items = match self.draft() {
            Some(draft) => draft.over(items, |i| {
                string_attr(i, PK_ATTR) == Some(pk)
                    && string_attr(i, SK_ATTR).is_some_and(|sk| (low..=high).contains(&sk))
            }),
            None => items,
        };
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let sk = item.get(SK_ATTR)?.as_s().ok()?.clone();
                let holder = item.get(GROUP_ATTR).and_then(|g| g.as_s().ok()).cloned();
                Some((sk, holder))
            })
            .collect())
    }

    /// Every page of `query`; a failure becomes `error(detail)`.
    async fn all_pages(
        &self,
        query: QueryFluentBuilder,
        error: impl Fn(Failure) -> StoreError,
    ) -> Result<Vec<Item>, StoreError> {
        let pages = query
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| error(Failure::of(&e)))?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.items.unwrap_or_default())
            .collect())
    }

    /// The group's newest remaining message, read strongly consistently from its `MSG#` partition
    /// (see [`FALLBACK_CANDIDATES`]); [`Fallback::NoMessageLeft`] when it has none.
    pub async fn newest_message(&self, group: &str) -> Result<Fallback, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(format!("{PK_ATTR} = :pk"))
            .expression_attribute_values(":pk", AttributeValue::S(message_pk(group)))
            .scan_index_forward(false)
            .limit(FALLBACK_CANDIDATES)
            .send()
            .await
            .map_err(|error| StoreError::ReadMessages {
                group: group.to_owned(),
                detail: Failure::of(&error),
            })?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut item| {
                let Some(AttributeValue::S(sk)) = item.remove(SK_ATTR) else {
                    return None;
                };
                let Some(AttributeValue::S(text)) = item.remove(MESSAGE_ATTR) else {
                    return None;
                };
                Some(Message {
                    sk,
                    text: MessageText::new(text),
                })
            })
            .max_by(|a, b| crate::timestamp::compare(&a.sk, &b.sk))
            .map_or(Fallback::NoMessageLeft, Fallback::Newest))
    }

    /// Writes `rows` in one transaction: all or nothing.
    ///
    /// A move is a Delete of the old key, conditioned on it still being this group's row, and a
    /// Put of the new key, conditioned on it not existing. An in-place rewrite is an Update of the
    /// text (and the flags beside it), conditioned on the row still being this group's row
    /// previewing the same message. The client request token makes the SDK's own retry of a
    /// transaction that did apply (its response lost) succeed instead of failing.
    pub async fn write_rows(
        &self,
        rows: &[RowWrite],
        group: &str,
    ) -> Result<WriteOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(WriteOutcome::Written);
        }
        if self.draft.is_some() {
            return self.write_draft(rows, group).await;
        }
        let group_value = AttributeValue::S(group.to_owned());
        let mut actions = Vec::with_capacity(rows.len() * 2);
        for write in rows {
            if write.in_place() {
                actions.push(
                    TransactWriteItem::builder()
                        .update(self.update(write, &group_value))
                        .build(),
                );
                continue;
            }
            let delete = Delete::builder()
                .table_name(&self.table)
                .key(PK_ATTR, AttributeValue::S(write.row.pk.clone()))
                .key(SK_ATTR, AttributeValue::S(write.row.sk.clone()))
                .condition_expression(format!("{GROUP_ATTR} = :g"))
                .expression_attribute_values(":g", group_value.clone())
                .build()
                .expect("table, key and condition are set");
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(write.item.clone()))
                .condition_expression(format!("attribute_not_exists({PK_ATTR})"))
                .build()
                .expect("table and item are set");
            actions.push(TransactWriteItem::builder().delete(delete).build());
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(WriteOutcome::Written),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Ok(
                WriteOutcome::Cancelled(row_failures(cancelled.cancellation_reasons(), rows)),
            ),
            _ => Err(StoreError::Transaction {
                group: group.to_owned(),
                rows: rows.len(),
                detail: Failure::of(&error),
            }),
        }
    }

    /// The Update of a row rewritten where it is: SET the text and whichever flags it has now,
    /// REMOVE those it no longer has.
    fn update(&self, write: &RowWrite, group: &AttributeValue) -> Update {
        let mut set = vec!["#message = :message".to_owned()];
        let mut remove = Vec::new();
        let mut builder = Update::builder()
            .table_name(&self.table)
            .key(PK_ATTR, AttributeValue::S(write.row.pk.clone()))
            .key(SK_ATTR, AttributeValue::S(write.row.sk.clone()))
            .expression_attribute_names("#message", MESSAGE_ATTR)
            .expression_attribute_values(":g", group.clone());
        if let Some(text) = write.item.get(MESSAGE_ATTR) {
            builder = builder.expression_attribute_values(":message", text.clone());
        }
        for (name, placeholder) in [
            (TRUNCATED_ATTR, ":truncated"),
            (MESSAGE_SK_ATTR, ":message_sk"),
        ] {
            match write.item.get(name) {
                Some(value) => {
                    set.push(format!("{name} = {placeholder}"));
                    builder = builder.expression_attribute_values(placeholder, value.clone());
                }
                None if write.row.item.contains_key(name) => remove.push(name),
                None => {}
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        // Still this group's row, still previewing the message it previewed when read.
        let condition = match write.row.item.get(MESSAGE_SK_ATTR) {
            Some(previewed) => {
                builder = builder.expression_attribute_values(":previewed", previewed.clone());
                format!("{GROUP_ATTR} = :g AND {MESSAGE_SK_ATTR} = :previewed")
            }
            None => format!("{GROUP_ATTR} = :g AND attribute_not_exists({MESSAGE_SK_ATTR})"),
        };
        builder
            .update_expression(expression)
            .condition_expression(condition)
            .build()
            .expect("table, key and expressions are set")
    }
}

impl Store {
    /// A dry run's [`Store::write_rows`]: the same conditions, checked on the table with the draft
    /// over it; all rows into the draft, or none (a cancellation with each row's reason).
    async fn write_draft(
        &self,
        rows: &[RowWrite],
        group: &str,
    ) -> Result<WriteOutcome, StoreError> {
        let mut failures = Vec::with_capacity(rows.len());
        for write in rows {
            let old = self.item_at(&write.row.pk, &write.row.sk, group).await?;
            let ours = old
                .as_ref()
                .is_some_and(|item| string_attr(item, GROUP_ATTR) == Some(group));
            let failure = if write.in_place() {
                let previewed = |item: &Item| string_attr(item, MESSAGE_SK_ATTR).map(str::to_owned);
                let same = old.as_ref().map(previewed) == Some(previewed(&write.row.item));
                (!(ours && same)).then_some(RowFailure::OldKey)
            } else if !ours {
                Some(RowFailure::OldKey)
            } else {
                let taken = self.item_at(&write.row.pk, write.key(), group).await?;
                taken.is_some().then_some(RowFailure::NewKeyTaken)
            };
            failures.push(failure);
        }
        if failures.iter().any(Option::is_some) {
            return Ok(WriteOutcome::Cancelled(failures));
        }
        let mut draft = self.draft().expect("a dry-run store");
        for write in rows {
            let old = (write.row.pk.clone(), write.row.sk.clone());
            if write.in_place() {
                // An Update changes the text and its flags; every other attribute stays as stored.
                let mut item = match draft.items.get(&old) {
                    Some(Some(item)) => item.clone(),
                    _ => write.row.item.clone(),
                };
                for name in [MESSAGE_ATTR, TRUNCATED_ATTR, MESSAGE_SK_ATTR] {
                    match write.item.get(name) {
                        Some(value) => item.insert(name.to_owned(), value.clone()),
                        None => item.remove(name),
                    };
                }
                draft.items.insert(old, Some(item));
            } else {
                draft.items.insert(old, None);
                let new = (write.row.pk.clone(), write.key().to_owned());
                draft.items.insert(new, Some(write.item.clone()));
            }
        }
        Ok(WriteOutcome::Written)
    }

    /// The item at (`pk`, `sk`) as a dry run sees it: the draft's, else the table's (a strongly
    /// consistent Query of that one key: the reads the real run is allowed, no GetItem).
    async fn item_at(&self, pk: &str, sk: &str, group: &str) -> Result<Option<Item>, StoreError> {
        let key = (pk.to_owned(), sk.to_owned());
        let drafted = self.draft().and_then(|d| d.items.get(&key).cloned());
        if let Some(drafted) = drafted {
            return Ok(drafted);
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(format!("{PK_ATTR} = :pk AND {SK_ATTR} = :sk"))
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":sk", AttributeValue::S(sk.to_owned()));
        let items = self
            .all_pages(query, |detail| read_owner(pk, group, detail))
            .await?;
        Ok(items.into_iter().next())
    }
}

fn read_owner(pk: &str, group: &str, detail: Failure) -> StoreError {
    StoreError::ReadOwner {
        pk: pk.to_owned(),
        group: group.to_owned(),
        detail,
    }
}

/// Folds DynamoDB's per-action reasons (Delete + Put for a move, Update for an in-place rewrite)
/// into one per row.
fn row_failures(
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
    rows: &[RowWrite],
) -> Vec<Option<RowFailure>> {
    let actions: usize = rows.iter().map(RowWrite::actions).sum();
    if reasons.len() != actions {
        return Vec::new();
    }
    let code = |reason: &aws_sdk_dynamodb::types::CancellationReason| match reason.code() {
        None | Some("None") => None,
        Some("ConditionalCheckFailed") => Some(RowFailure::OldKey),
        Some("TransactionConflict") => Some(RowFailure::Conflict),
        Some("ThrottlingError") | Some("ProvisionedThroughputExceeded") => {
            Some(RowFailure::Throttled)
        }
        Some(other) => Some(RowFailure::Other(other.to_owned())),
    };
    let mut at = 0;
    rows.iter()
        .map(|write| {
            let first = code(&reasons[at]);
            let second = (write.actions() == 2)
                .then(|| code(&reasons[at + 1]))
                .flatten();
            at += write.actions();
            // The Put's condition alone failing means its new key is held (the Delete's passed).
            let second = match (&first, second) {
                (None, Some(RowFailure::OldKey)) => Some(RowFailure::NewKeyTaken),
                (_, other) => other,
            };
            // A condition failure needs a re-read, so it outranks a transient reason.
            [first, second]
                .into_iter()
                .flatten()
                .min_by_key(|failure| match failure {
                    RowFailure::OldKey => 0,
                    RowFailure::NewKeyTaken => 1,
                    RowFailure::Other(_) => 2,
                    RowFailure::Conflict | RowFailure::Throttled => 3,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MessageChange, RecordRef};
    use crate::plan::{self, RowPlan};
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    /// A move (two actions) when `sk` is older than the message, an in-place edit (one) when equal.
    fn write(sk: &str) -> RowWrite {
        let t = "2023-03-25T18:00:00";
        let update = plan::coalesce([MessageChange::write(
            RecordRef {
                position: 0,
                event_id: None,
                sequence_number: None,
            },
            "g",
            t,
            MessageText::new("new"),
        )])
        .remove(0);
        let mut item = Item::new();
        item.insert(
            PK_ATTR.into(),
            AttributeValue::S(crate::model::group_pk("u")),
        );
        item.insert(SK_ATTR.into(), AttributeValue::S(sk.into()));
        item.insert(MESSAGE_ATTR.into(), AttributeValue::S("old".into()));
        match plan::plan_row(&GroupRow::from_item(item).unwrap(), &update, None, None) {
            RowPlan::Write(w) => w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reasons_fold_per_row() {
        let rows = [
            write("2023-03-25T17:00:00"),
            write("2023-03-25T17:00:00"),
            write("2023-03-25T18:00:00"),
            write("2023-03-25T17:00:00"),
            write("2023-03-25T17:00:00"),
            write("2023-03-25T17:00:00"),
        ];
        let folded = row_failures(
            &[
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("TransactionConflict"),
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("ValidationError"),
            ],
            &rows,
        );
        assert_eq!(
            folded,
            vec![
                None,
                Some(RowFailure::OldKey),
                Some(RowFailure::OldKey),
                Some(RowFailure::Conflict),
                Some(RowFailure::NewKeyTaken),
                Some(RowFailure::Other("ValidationError".into()))
            ]
        );
    }

    #[test]
    fn missing_or_mismatched_reasons_are_unknown() {
        let rows = [write("2023-03-25T17:00:00")];
        assert!(row_failures(&[], &rows).is_empty());
        assert!(row_failures(&[reason("None")], &rows).is_empty());
    }
}
