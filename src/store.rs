//! The only module that talks to DynamoDB.
//!
//! It reads a group's rows from the GSI (all pages), re-reads one owner's row with a strongly
//! consistent query of the base table, and moves rows to a new sort key in transactions of at
//! most [`MAX_ROWS_PER_TRANSACTION`] rows, each row a conditional Delete of the old key plus a
//! conditional Put of the new one, so a row is never lost and never doubled. Retrying throttling
//! and 5xx is the SDK's job (see [`crate::config::Config::retry_config`]); deciding what to do about
//! a cancelled transaction is the caller's.

use crate::config::Config;
use crate::plan::{GroupRow, GroupUpdate, Item, GROUP_PK_PREFIX, MAX_ROWS_PER_TRANSACTION};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

/// A request DynamoDB (or the network) refused after the SDK's retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("querying index {index} for group {group}: {detail}")]
    QueryGroup {
        index: String,
        group: String,
        detail: String,
    },
    #[error("consistent read of {pk} for group {group}: {detail}")]
    ReadOwner {
        pk: String,
        group: String,
        detail: String,
    },
    #[error("moving {rows} rows of group {group}: {detail}")]
    Transaction {
        group: String,
        rows: usize,
        detail: String,
    },
    #[error("too many rows for one transaction: {0} (at most {MAX_ROWS_PER_TRANSACTION})")]
    TooManyRows(usize),
}

/// Why DynamoDB cancelled one row's part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// The old key was gone or no longer this group's, or the new key was taken.
    Condition,
    /// Another transaction was writing the same item.
    Conflict,
    /// The item's partition was throttled.
    Throttled,
    /// Anything else, by DynamoDB's code.
    Other(String),
}

/// The result of one move transaction that DynamoDB answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved,
    /// Nothing was written. One entry per row, in order; `None` for rows that were not at fault.
    /// Empty when DynamoDB gave no reasons.
    Cancelled(Vec<Option<CancelReason>>),
}

/// DynamoDB access for one table and its group index.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
    index: String,
}

impl Store {
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            table: config.table_name.clone(),
            index: config.group_index_name.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every row of a group, from the GSI (eventually consistent: may lag the table briefly).
    pub async fn group_rows(&self, group: &str) -> Result<Vec<GroupRow>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(&self.index)
            .key_condition_expression("message_group_uuid = :g")
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<Item>, _>>()
            .await
            .map_err(|error| StoreError::QueryGroup {
                index: self.index.clone(),
                group: group.to_owned(),
                detail: DisplayErrorContext(error).to_string(),
            })?;
        // Only group rows carry `message_group_uuid`, so the index holds nothing else; a row
        // without string keys cannot be moved and is left alone.
        Ok(pages
            .into_iter()
            .filter_map(GroupRow::from_item)
            .filter(|row| row.pk.starts_with(GROUP_PK_PREFIX))
            .collect())
    }

    /// The current row of `group` under owner partition `pk`, read strongly consistently from the
    /// base table; the newest if there were ever several, `None` if there is none.
    pub async fn owner_row(&self, pk: &str, group: &str) -> Result<Option<GroupRow>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .filter_expression("message_group_uuid = :g")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<Item>, _>>()
            .await
            .map_err(|error| StoreError::ReadOwner {
                pk: pk.to_owned(),
                group: group.to_owned(),
                detail: DisplayErrorContext(error).to_string(),
            })?;
        Ok(items
            .into_iter()
            .filter_map(GroupRow::from_item)
            .max_by(|a, b| crate::timestamp::compare(&a.sk, &b.sk)))
    }

    /// Moves `rows` to the update's sort key and text in one transaction: all or nothing.
    ///
    /// Each row is a Delete of the old key, conditioned on it still being this group's row, and a
    /// Put of the new key, conditioned on it not existing. The client request token makes the SDK's
    /// own retry of a transaction that did apply (its response lost) succeed instead of failing.
    pub async fn move_rows(
        &self,
        rows: &[GroupRow],
        update: &GroupUpdate,
    ) -> Result<MoveOutcome, StoreError> {
        if rows.len() > MAX_ROWS_PER_TRANSACTION {
            return Err(StoreError::TooManyRows(rows.len()));
        }
        if rows.is_empty() {
            return Ok(MoveOutcome::Moved);
        }
        let group = AttributeValue::S(update.group_uuid.clone());
        let mut actions = Vec::with_capacity(rows.len() * 2);
        for row in rows {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(row.pk.clone()))
                .key("sk", AttributeValue::S(row.sk.clone()))
                .condition_expression("message_group_uuid = :g")
                .expression_attribute_values(":g", group.clone())
                .build()
                .expect("table, key and condition are set");
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(row.moved_to(update)))
                .condition_expression("attribute_not_exists(pk)")
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
        match result {
            Ok(_) => Ok(MoveOutcome::Moved),
            Err(SdkError::ServiceError(service))
                if service.err().is_transaction_canceled_exception() =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    service.err()
                else {
                    unreachable!("checked just above")
                };
                Ok(MoveOutcome::Cancelled(row_reasons(
                    cancelled.cancellation_reasons(),
                    rows.len(),
                )))
            }
            Err(error) => Err(StoreError::Transaction {
                group: update.group_uuid.clone(),
                rows: rows.len(),
                detail: DisplayErrorContext(error).to_string(),
            }),
        }
    }
}

/// Folds DynamoDB's per-item reasons (Delete, Put, Delete, Put, ...) into one per row.
fn row_reasons(
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
    rows: usize,
) -> Vec<Option<CancelReason>> {
    if reasons.len() != rows * 2 {
        return Vec::new();
    }
    reasons
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .filter_map(|reason| match reason.code() {
                    None | Some("None") => None,
                    Some("ConditionalCheckFailed") => Some(CancelReason::Condition),
                    Some("TransactionConflict") => Some(CancelReason::Conflict),
                    Some("ThrottlingError") | Some("ProvisionedThroughputExceeded") => {
                        Some(CancelReason::Throttled)
                    }
                    Some(other) => Some(CancelReason::Other(other.to_owned())),
                })
                // A condition failure needs a re-read, so it outranks a transient reason.
                .min_by_key(|reason| match reason {
                    CancelReason::Condition => 0,
                    CancelReason::Other(_) => 1,
                    CancelReason::Conflict | CancelReason::Throttled => 2,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn reasons_fold_per_row() {
        let folded = row_reasons(
            &[
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("TransactionConflict"),
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("ValidationError"),
            ],
            4,
        );
        assert_eq!(
            folded,
            vec![
                None,
                Some(CancelReason::Condition),
                Some(CancelReason::Condition),
                Some(CancelReason::Other("ValidationError".into()))
            ]
        );
    }

    #[test]
    fn missing_or_mismatched_reasons_are_unknown() {
        assert!(row_reasons(&[], 2).is_empty());
        assert!(row_reasons(&[reason("None")], 1).is_empty());
    }
}
