//! Putting the bench table into a workload's starting state, directly on DynamoDB Local.
//!
//! The seed hard-codes its table name (`cruddur-messages`), so both sides use that table, and every
//! measured run starts from the workload's rows alone: every item deleted, then the rows written. The
//! table itself stays (DynamoDB Local answers the first requests on a newly created table tens of ms
//! slower, which is not what a long-lived table does). These requests bypass the delay proxy and the
//! request counters: they are set-up, not measurement.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use ddb::commands::schema;
use messaging_stream::model::DEFAULT_GROUP_INDEX_NAME;
use messaging_stream::plan::Item;

/// The seed's hard-coded table name.
pub const TABLE: &str = "cruddur-messages";

/// Creates the table if it is not there, deletes every item, and writes `rows`.
pub async fn reset(client: &Client, rows: &[Item]) -> anyhow::Result<()> {
    schema::create_table(client, TABLE, DEFAULT_GROUP_INDEX_NAME).await?;
    let keys: Vec<Item> = client
        .scan()
        .table_name(TABLE)
        .consistent_read(true)
        .projection_expression("pk, sk")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| anyhow::anyhow!("Scan: {}", DisplayErrorContext(e)))?;
    let deletes = keys.into_iter().map(|key| {
        WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .expect("key is set"),
            )
            .build()
    });
    let puts = rows.iter().map(|item| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .expect("item is set"),
            )
            .build()
    });
    // Deletes first: the new rows may share keys with what is there.
    write_all(client, deletes.collect()).await?;
    write_all(client, puts.collect()).await
}

async fn write_all(client: &Client, requests: Vec<WriteRequest>) -> anyhow::Result<()> {
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let output = client
                .batch_write_item()
                .request_items(TABLE, pending)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("BatchWriteItem: {}", DisplayErrorContext(e)))?;
            pending = output
                .unprocessed_items()
                .and_then(|items| items.get(TABLE))
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(())
}

/// Every item of the table, read strongly consistently (the cost table's item sizes after a run).
pub async fn items(client: &Client) -> anyhow::Result<Vec<Item>> {
    client
        .scan()
        .table_name(TABLE)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| anyhow::anyhow!("Scan: {}", DisplayErrorContext(e)))
}
