//! Table chores of the developer CLI: list the tables, drop one, scan a table or an index, each
//! over every page with the SDK's paginators.

use crate::output::LocalError;
use crate::reads::page_size;
use aws_sdk_dynamodb::Client;
use messaging_stream::plan::Item;

/// Every table name at the endpoint (all pages).
pub async fn list_tables(client: &Client) -> Result<Vec<String>, LocalError> {
    client
        .list_tables()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| LocalError::sdk("ListTables", e))
}

/// Deletes `table` and everything in it.
pub async fn drop_table(client: &Client, table: &str) -> Result<(), LocalError> {
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| LocalError::sdk("DeleteTable", e).on(table))
}

/// Every item of `table` (or of its index `index`), page by page, stopping once `limit` items are in.
pub async fn scan(
    client: &Client,
    table: &str,
    index: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Item>, LocalError> {
    let mut pages = client
        .scan()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .set_limit(page_size(limit))
        .into_paginator()
        .items()
        .send();
    let mut items = Vec::new();
    while limit.is_none_or(|l| items.len() < l) {
        match pages.next().await {
            Some(item) => items.push(item.map_err(|e| LocalError::sdk("Scan", e).on(table))?),
            None => break,
        }
    }
    Ok(items)
}
