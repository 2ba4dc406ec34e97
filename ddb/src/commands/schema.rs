//! `ddb schema-load`: the Cruddur single table (pk/sk, the group GSI, and a NEW_IMAGE stream),
//! created, or checked against what the function needs and fixed; and the read-path cache's table
//! (key `id`, time to live on `expires_at`, docs/CACHE.md).

use super::CommandError;
use crate::cli::{SchemaLoadArgs, EXIT_ERROR};
use crate::connect::{Session, Target};
use crate::output::{self, LocalError, Output};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, SseSpecification, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use messaging_stream::model::{GROUP_ATTR, PK_ATTR, SK_ATTR};

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

/// The table's keys, as created and as checked.
fn table_keys() -> Vec<KeySchemaElement> {
    vec![key(PK_ATTR, KeyType::Hash), key(SK_ATTR, KeyType::Range)]
}

/// The GSI's keys (a group's rows, by last message): created with the table, added to a table
/// without it, and checked.
fn group_index_keys() -> Vec<KeySchemaElement> {
    vec![key(GROUP_ATTR, KeyType::Hash), key(SK_ATTR, KeyType::Range)]
}

/// The GSI's projection: every attribute.
fn all_attributes() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

/// Creates the table with its GSI and stream (on-demand billing); an existing table is fine.
pub async fn create_table(
    client: &Client,
    table: &str,
    index: &str,
) -> Result<Created, LocalError> {
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(index)
        .set_key_schema(Some(group_index_keys()))
        .projection(all_attributes())
        .build()
        .expect("name and key schema are set");
    let result = client
        .create_table()
        .table_name(table)
        .attribute_definitions(string_attribute(PK_ATTR))
        .attribute_definitions(string_attribute(SK_ATTR))
        .attribute_definitions(string_attribute(GROUP_ATTR))
        .set_key_schema(Some(table_keys()))
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
        Err(error) => Err(LocalError::sdk("CreateTable", error).on(table)),
    }
}

/// The table's latest stream ARN, if streams are on.
pub async fn stream_arn(client: &Client, table: &str) -> Result<Option<String>, LocalError> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| LocalError::sdk("DescribeTable", e).on(table))?;
    Ok(described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned))
}

/// One way an existing table differs from what the function needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "difference", rename_all = "snake_case")]
pub enum Difference {
    /// The table's key is not `pk` (HASH, S) + `sk` (RANGE, S): the data model cannot live there.
    Keys { found: String },
    /// No GSI of that name (fixable: UpdateTable adds it).
    NoIndex { index: String },
    /// The GSI exists with other keys or another projection (not fixable in place).
    IndexShape { index: String, found: String },
    /// No stream (fixable: UpdateTable enables a NEW_IMAGE stream).
    NoStream,
    /// A stream without the new image (fixable: disabled, then enabled as NEW_IMAGE; a new stream).
    StreamView { found: String },
}

impl Difference {
    /// Whether `--fix` can repair it with UpdateTable.
    pub fn fixable(&self) -> bool {
        matches!(
            self,
            Self::NoIndex { .. } | Self::NoStream | Self::StreamView { .. }
        )
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keys { found } => write!(
                f,
                "key schema is {found}; the function needs {}",
                describe_string_keys(&table_keys())
            ),
            Self::NoIndex { index } => write!(
                f,
                "no index {index}; the function needs it: {}, projection ALL",
                describe_string_keys(&group_index_keys())
            ),
            Self::IndexShape { index, found } => write!(
                f,
                "index {index} is {found}; the function needs {}, projection ALL",
                describe_string_keys(&group_index_keys())
            ),
            Self::NoStream => write!(f, "no stream; the function needs a NEW_IMAGE stream"),
            Self::StreamView { found } => write!(
                f,
                "the stream is {found}; the function needs the new image (NEW_IMAGE)"
            ),
        }
    }
}

fn describe_keys(keys: &[KeySchemaElement], types: &[AttributeDefinition]) -> String {
    keys.iter()
        .map(|k| {
            let ty = types
                .iter()
                .find(|d| d.attribute_name() == k.attribute_name())
                .map_or("?", |d| d.attribute_type().as_str());
            format!("{} ({}, {ty})", k.attribute_name(), k.key_type().as_str())
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// How [`describe_keys`] shows `keys` when each is a string attribute, as the function needs.
fn describe_string_keys(keys: &[KeySchemaElement]) -> String {
    let types: Vec<AttributeDefinition> = keys
        .iter()
        .map(|k| string_attribute(k.attribute_name()))
        .collect();
    describe_keys(keys, &types)
}

/// Compares the existing `table` with what the function needs: keys, the GSI, the stream.
pub async fn check(
    client: &Client,
    table: &str,
    index: &str,
) -> Result<Vec<Difference>, LocalError> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| LocalError::sdk("DescribeTable", e).on(table))?;
    let Some(t) = described.table() else {
        return Ok(vec![Difference::NoStream]);
    };
    let types = t.attribute_definitions();
    let mut differences = Vec::new();
    let keys = describe_keys(t.key_schema(), types);
    if keys != describe_string_keys(&table_keys()) {
        differences.push(Difference::Keys { found: keys });
    }
    match t
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(index))
    {
        None => differences.push(Difference::NoIndex {
            index: index.to_owned(),
        }),
        Some(gsi) => {
            let keys = describe_keys(gsi.key_schema(), types);
            let projection = gsi
                .projection()
                .and_then(|p| p.projection_type())
                .map_or("no projection", |p| p.as_str());
            if keys != describe_string_keys(&group_index_keys())
                || projection != ProjectionType::All.as_str()
            {
                differences.push(Difference::IndexShape {
                    index: index.to_owned(),
                    found: format!("{keys}, projection {projection}"),
                });
            }
        }
    }
    let stream = t.stream_specification();
    match stream.filter(|s| s.stream_enabled()) {
        None => differences.push(Difference::NoStream),
        Some(spec) => match spec.stream_view_type() {
            Some(StreamViewType::NewImage) | Some(StreamViewType::NewAndOldImages) => {}
            other => differences.push(Difference::StreamView {
                found: other
                    .map_or("a stream of no view type", |v| v.as_str())
                    .to_owned(),
            }),
        },
    }
    Ok(differences)
}

/// Repairs what [`check`] found, if every difference is [`Difference::fixable`]; returns what was done.
pub async fn fix(
    client: &Client,
    table: &str,
    index: &str,
    differences: &[Difference],
) -> Result<Vec<String>, LocalError> {
    let mut done = Vec::new();
    for difference in differences {
        match difference {
            Difference::NoIndex { .. } => {
                let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                    .index_name(index)
                    .set_key_schema(Some(group_index_keys()))
                    .projection(all_attributes())
                    .build()
                    .expect("name, keys and projection are set");
                client
                    .update_table()
                    .table_name(table)
                    .attribute_definitions(string_attribute(GROUP_ATTR))
                    .attribute_definitions(string_attribute(SK_ATTR))
                    .global_secondary_index_updates(
                        aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                            .create(create)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| LocalError::sdk("UpdateTable", e).on(table))?;
                done.push(format!("added index {index}"));
            }
            Difference::NoStream | Difference::StreamView { .. } => {
                if matches!(difference, Difference::StreamView { .. }) {
                    update_stream(client, table, None).await?;
                    done.push("disabled the old stream".to_owned());
                }
                update_stream(client, table, Some(StreamViewType::NewImage)).await?;
                done.push("enabled a NEW_IMAGE stream".to_owned());
            }
            Difference::Keys { .. } | Difference::IndexShape { .. } => {}
        }
        wait_active(client, table).await?;
    }
    Ok(done)
}

async fn update_stream(
    client: &Client,
    table: &str,
    view: Option<StreamViewType>,
) -> Result<(), LocalError> {
    let spec = StreamSpecification::builder()
        .stream_enabled(view.is_some())
        .set_stream_view_type(view)
        .build()
        .expect("stream enabled is set");
    client
        .update_table()
        .table_name(table)
        .stream_specification(spec)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| LocalError::sdk("UpdateTable", e).on(table))
}

/// Waits (up to a minute) until the table and its indexes are ACTIVE again after an update.
async fn wait_active(client: &Client, table: &str) -> Result<(), LocalError> {
    for _ in 0..600 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| LocalError::sdk("DescribeTable", e).on(table))?;
        let active = described.table().is_some_and(|t| {
            t.table_status() == Some(&aws_sdk_dynamodb::types::TableStatus::Active)
                && t.global_secondary_indexes().iter().all(|g| {
                    g.index_status() == Some(&aws_sdk_dynamodb::types::IndexStatus::Active)
                })
        });
        if active {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Creates the cache table (key `id`, on-demand, SSE) and turns its time to live on, on
/// `expires_at`; an existing table is fine, and its TTL is (re)enabled either way.
pub async fn create_cache_table(client: &Client, table: &str) -> Result<Created, LocalError> {
    use messaging_stream::cache::dynamo::{EXPIRES_AT, ID};
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
        Err(error) => return Err(LocalError::sdk("CreateTable", error).on(table)),
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
        Err(error) => Err(LocalError::sdk("UpdateTimeToLive", error).on(table)),
    }
}

async fn time_to_live_already_on(client: &Client, table: &str) -> bool {
    time_to_live(client, table)
        .await
        .ok()
        .flatten()
        .is_some_and(|(status, attribute)| {
            status == "ENABLED" && attribute == messaging_stream::cache::dynamo::EXPIRES_AT
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
        .map_err(|e| LocalError::sdk("DescribeTimeToLive", e).on(table))?;
    Ok(described.time_to_live_description().and_then(|d| {
        Some((
            d.time_to_live_status()?.as_str().to_owned(),
            d.attribute_name()?.to_owned(),
        ))
    }))
}

/// The cache table `schema-load --cache` creates when none is named.
const LOCAL_CACHE_TABLE: &str = "cruddur-cache-local";

/// What `schema-load` found the table to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It was not there: made as the function needs it.
    Created,
    /// It was there, as the function needs it.
    Matches,
    /// It differed, and `--fix` repaired it.
    Fixed,
    /// It differs (not fixed: no `--fix`, or not fixable in place).
    Differs,
}

impl Status {
    /// From what [`check`] found and what [`fix`] did.
    pub fn of(differences: &[Difference], fixed: &[String]) -> Self {
        match (differences.is_empty(), fixed.is_empty()) {
            (true, _) => Self::Matches,
            (false, false) => Self::Fixed,
            (false, true) => Self::Differs,
        }
    }
}

/// `ddb schema-load [--fix] [--cache]`: fails unless the table ends as the function needs it.
pub async fn run(args: SchemaLoadArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    session.say_writing();
    if args.cache {
        cache_table(&session, out).await?;
    }
    let (client, table, index) = (
        &session.client,
        session.table(),
        &session.config.group_index_name,
    );
    if create_table(client, table, index).await? == Created::New {
        return out.result(
            serde_json::json!({"table": table, "status": Status::Created}),
            format_args!("table {table}: created (pk/sk, index {index}, NEW_IMAGE stream)"),
        );
    }
    let differences = check(client, table, index).await?;
    let fixable = differences.iter().all(Difference::fixable);
    let fixed = if args.fix && fixable && !differences.is_empty() {
        fix(client, table, index, &differences).await?
    } else {
        Vec::new()
    };
    let status = Status::of(&differences, &fixed);
    out.result(
        serde_json::json!({
            "table": table,
            "status": status,
            "differences": differences,
            "fixed": fixed,
        }),
        Found {
            table,
            differences: &differences,
            fixed: &fixed,
        },
    )?;
    if status != Status::Differs {
        return Ok(());
    }
    let message = if fixable {
        format!("table {table} is not as the function needs it: run ddb schema-load --fix --table {table}")
    } else {
        format!("table {table} cannot be fixed in place: make another (--table NAME) or drop it and run schema-load again")
    };
    Err(CommandError::status(EXIT_ERROR, message))
}

/// `--cache`: the cache table, named or [`LOCAL_CACHE_TABLE`].
async fn cache_table(session: &Session, out: &Output) -> Result<(), CommandError> {
    let named = session.config.cache_table_name.as_deref();
    let cache_table = named.unwrap_or(LOCAL_CACHE_TABLE);
    let created = create_cache_table(&session.client, cache_table).await?;
    out.result(
        serde_json::json!({"cache_table": cache_table, "status": format!("{created:?}")}),
        format_args!("cache table {cache_table}: {created:?} (time to live on expires_at)"),
    )?;
    if named.is_none() {
        output::note(format_args!(
            "reads use it with --cache-table {cache_table} or CACHE_TABLE_NAME={cache_table}"
        ));
    }
    Ok(())
}

/// An existing table as a person reads it: whether it matches, each difference, each fix.
struct Found<'a> {
    table: &'a str,
    differences: &'a [Difference],
    fixed: &'a [String],
}

impl std::fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.table;
        if self.differences.is_empty() {
            return write!(f, "table {table}: already there, as the function needs it");
        }
        write!(
            f,
            "table {table}: already there, and differs from what the function needs:"
        )?;
        for difference in self.differences {
            write!(f, "\n  - {difference}")?;
        }
        for done in self.fixed {
            write!(f, "\nfixed: {done}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_names_the_keys_the_table_is_created_with() {
        let keys = Difference::Keys {
            found: "id (HASH, S)".into(),
        };
        assert_eq!(
            keys.to_string(),
            "key schema is id (HASH, S); the function needs pk (HASH, S) + sk (RANGE, S)"
        );
        let index = Difference::NoIndex { index: "g".into() };
        assert_eq!(
            index.to_string(),
            "no index g; the function needs it: message_group_uuid (HASH, S) + sk (RANGE, S), projection ALL"
        );
    }

    #[test]
    fn the_status_says_whether_the_table_ends_as_the_function_needs_it() {
        let missing = [Difference::NoStream];
        assert_eq!(Status::of(&[], &[]), Status::Matches);
        assert_eq!(Status::of(&missing, &[]), Status::Differs);
        assert_eq!(
            Status::of(&missing, &["stream enabled".to_owned()]),
            Status::Fixed
        );
        let json = |status: Status| serde_json::to_value(status).unwrap();
        assert_eq!(json(Status::Differs), serde_json::json!("differs"));
        assert_eq!(json(Status::Created), serde_json::json!("created"));
    }
}
