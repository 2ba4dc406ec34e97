//! The Cruddur single table: pk/sk, the group GSI, and a NEW_IMAGE stream; and the read-path cache's
//! table: key `id`, time to live on `expires_at` (docs/CACHE.md).

use super::LocalError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, SseSpecification, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

/// Whether `create_table` made the table or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyThere,
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("name and type are set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

/// Creates the table with its GSI and stream (on-demand billing); an existing table is fine.
pub async fn create_table(
    client: &Client,
    table: &str,
    index: &str,
) -> Result<Created, LocalError> {
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(index)
        .key_schema(key("message_group_uuid", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("name and key schema are set");
    let result = client
        .create_table()
        .table_name(table)
        .attribute_definitions(string_attribute("pk"))
        .attribute_definitions(string_attribute("sk"))
        .attribute_definitions(string_attribute("message_group_uuid"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .expect("stream enabled is set"),
        )
        .send()
        .await;
    match result {
        Ok(_) => Ok(Created::New),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(Created::AlreadyThere)
        }
        Err(error) => Err(LocalError::sdk("CreateTable", error)),
    }
}

/// The table's latest stream ARN, if streams are on.
pub async fn stream_arn(client: &Client, table: &str) -> Result<Option<String>, LocalError> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| LocalError::sdk("DescribeTable", e))?;
    Ok(described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned))
}

/// Creates the cache table (key `id`, on-demand, SSE) and turns its time to live on, on
/// `expires_at`; an existing table is fine, and its TTL is (re)enabled either way.
pub async fn create_cache_table(client: &Client, table: &str) -> Result<Created, LocalError> {
    use crate::cache::dynamo::{EXPIRES_AT, ID};
    let result = client
        .create_table()
        .table_name(table)
        .attribute_definitions(string_attribute(ID))
        .key_schema(key(ID, KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    let created = match result {
        Ok(_) => Created::New,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Created::AlreadyThere
        }
        Err(error) => return Err(LocalError::sdk("CreateTable", error)),
    };
    let enabled = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(EXPIRES_AT)
                .build()
                .expect("enabled and attribute are set"),
        )
        .send()
        .await;
    match enabled {
        Ok(_) => Ok(created),
        // Already enabled on this attribute: DynamoDB refuses to enable it twice.
        Err(error) if time_to_live_already_on(client, table).await => {
            tracing::debug!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(error), "TTL already on");
            Ok(created)
        }
        Err(error) => Err(LocalError::sdk("UpdateTimeToLive", error)),
    }
}

async fn time_to_live_already_on(client: &Client, table: &str) -> bool {
    time_to_live(client, table)
        .await
        .ok()
        .flatten()
        .is_some_and(|(status, attribute)| {
            status == "ENABLED" && attribute == crate::cache::dynamo::EXPIRES_AT
        })
}

/// The table's time-to-live status and attribute (`("ENABLED", "expires_at")`), if it has one.
pub async fn time_to_live(
    client: &Client,
    table: &str,
) -> Result<Option<(String, String)>, LocalError> {
    let described = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| LocalError::sdk("DescribeTimeToLive", e))?;
    Ok(described.time_to_live_description().and_then(|d| {
        Some((
            d.time_to_live_status()?.as_str().to_owned(),
            d.attribute_name()?.to_owned(),
        ))
    }))
}
