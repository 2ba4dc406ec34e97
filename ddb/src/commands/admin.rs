//! Table chores of the developer CLI: list the tables, drop one, scan a table or an index.

use super::LocalError;
use aws_sdk_dynamodb::Client;
use messaging_stream::plan::Item;

/// Every table name at the endpoint (all pages).
pub async fn list_tables(client: &Client) -> Result<Vec<String>, LocalError> {
    let mut names = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("ListTables", e))?;
        names.extend(page.table_names().iter().cloned());
        start = page.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() {
            return Ok(names);
        }
    }
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
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_index_name(index.map(str::to_owned))
            .set_limit(limit.map(|l| (l - items.len()).min(1000) as i32))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("Scan", e).on(table))?;
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
            return Ok(items);
        }
    }
}
