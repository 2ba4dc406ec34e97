//! The app's read patterns: a user's conversation list (B) and a group's messages (A).

use super::LocalError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use messaging_stream::model::{group_pk, message_pk, PK_ATTR};
use messaging_stream::plan::Item;

/// Pattern B: `GRP#<user>` rows, newest first (by sort key, descending), at most `limit`.
pub async fn conversations(
    client: &Client,
    table: &str,
    user_uuid: &str,
    limit: Option<usize>,
) -> Result<Vec<Item>, LocalError> {
    newest_first(client, table, &group_pk(user_uuid), limit).await
}

/// Pattern A: `MSG#<group>` items, newest first, at most `limit`.
pub async fn messages(
    client: &Client,
    table: &str,
    group_uuid: &str,
    limit: Option<usize>,
) -> Result<Vec<Item>, LocalError> {
    newest_first(client, table, &message_pk(group_uuid), limit).await
}

/// Reads a partition newest first, page by page, stopping once `limit` items are in.
async fn newest_first(
    client: &Client,
    table: &str,
    pk: &str,
    limit: Option<usize>,
) -> Result<Vec<Item>, LocalError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression(format!("{PK_ATTR} = :pk"))
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .scan_index_forward(false)
            .set_limit(limit.map(|l| (l - items.len()).min(1000) as i32))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("Query", e).on(table))?;
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    Ok(items)
}
