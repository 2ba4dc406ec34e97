//! Reading a table's stream through DynamoDB Streams (`aws-sdk-dynamodbstreams`): finding the
//! stream, listing its shards, getting iterators and pages of records. No decisions here: which
//! shard to read when, and what to do with the records, is `watch`'s.

use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use messaging_stream::config::Config;

/// A DynamoDB Streams request that failed after the SDK's retries.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("table {table} has no stream: create it with `ddb schema-load` (a NEW_IMAGE stream)")]
    NoStream { table: String },
    #[error("the shard iterator expired")]
    ExpiredIterator,
    /// The position is older than the shard's oldest record. In AWS, records older than 24 hours
    /// were trimmed. DynamoDB Local also says this when a shard was empty at the position and
    /// other tables' writes moved its sequence numbers (they are global there) past it.
    #[error("the shard's records at that position were trimmed")]
    Trimmed,
    #[error("{operation} failed {detail}")]
    Request {
        operation: &'static str,
        detail: String,
    },
}

impl StreamError {
    fn request<E>(operation: &'static str, error: E) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        tracing::debug!(operation, error = %DisplayErrorContext(&error), "DynamoDB Streams request failed");
        let (code, message) = messaging_stream::aws::describe_error(&error);
        Self::Request {
            operation,
            detail: format!("({code}) {message}"),
        }
    }
}

/// A DynamoDB Streams client for `config` (same endpoint, credentials and retry policy as the
/// DynamoDB client; DynamoDB Local serves both on one port).
pub async fn client(config: &Config) -> Client {
    Client::new(&messaging_stream::aws::sdk_config(config).await)
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    TrimHorizon,
    Latest,
    At(String),
    After(String),
}

/// One shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parent_id: Option<String>,
    /// A closed shard has an ending sequence number: nothing more will be written to it.
    pub closed: bool,
}

/// One GetRecords page.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Record>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
}

/// The newest stream of `table` (the highest stream label, an ISO timestamp).
pub async fn stream_arn(client: &Client, table: &str) -> Result<String, StreamError> {
    let mut newest: Option<(String, String)> = None;
    let mut start = None;
    loop {
        let page = client
            .list_streams()
            .table_name(table)
            .set_exclusive_start_stream_arn(start)
            .send()
            .await
            .map_err(|e| StreamError::request("ListStreams", e))?;
        for stream in page.streams() {
            let (Some(arn), label) = (stream.stream_arn(), stream.stream_label().unwrap_or(""))
            else {
                continue;
            };
            if newest.as_ref().is_none_or(|(l, _)| label > l.as_str()) {
                newest = Some((label.to_owned(), arn.to_owned()));
            }
        }
        start = page.last_evaluated_stream_arn().map(str::to_owned);
        if start.is_none() {
            break;
        }
    }
    newest
        .map(|(_, arn)| arn)
        .ok_or_else(|| StreamError::NoStream {
            table: table.to_owned(),
        })
}

/// Every shard of the stream (all DescribeStream pages).
pub async fn shards(client: &Client, stream_arn: &str) -> Result<Vec<Shard>, StreamError> {
    let mut shards = Vec::new();
    let mut start = None;
    loop {
        let described = client
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start)
            .send()
            .await
            .map_err(|e| StreamError::request("DescribeStream", e))?;
        let Some(description) = described.stream_description() else {
            break;
        };
        shards.extend(description.shards().iter().filter_map(|shard| {
            Some(Shard {
                id: shard.shard_id()?.to_owned(),
                parent_id: shard.parent_shard_id().map(str::to_owned),
                closed: shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            })
        }));
        start = description.last_evaluated_shard_id().map(str::to_owned);
        if start.is_none() {
            break;
        }
    }
    Ok(shards)
}

/// A shard iterator at `position`.
pub async fn iterator(
    client: &Client,
    stream_arn: &str,
    shard_id: &str,
    position: &Position,
) -> Result<Option<String>, StreamError> {
    let (kind, sequence_number) = match position {
        Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
        Position::Latest => (ShardIteratorType::Latest, None),
        Position::At(seq) => (ShardIteratorType::AtSequenceNumber, Some(seq.clone())),
        Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
    };
    let output = client
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard_id)
        .shard_iterator_type(kind)
        .set_sequence_number(sequence_number)
        .send()
        .await
        .map_err(|error| {
            if error
                .as_service_error()
                .is_some_and(|e| e.is_trimmed_data_access_exception())
            {
                StreamError::Trimmed
            } else {
                StreamError::request("GetShardIterator", error)
            }
        })?;
    Ok(output.shard_iterator().map(str::to_owned))
}

/// Up to 1000 records (the API's maximum) from `iterator`.
pub async fn records(client: &Client, iterator: &str) -> Result<Page, StreamError> {
    let output = client
        .get_records()
        .shard_iterator(iterator)
        .limit(1000)
        .send()
        .await
        .map_err(|error| match error.as_service_error() {
            Some(e) if e.is_expired_iterator_exception() => StreamError::ExpiredIterator,
            Some(e) if e.is_trimmed_data_access_exception() => StreamError::Trimmed,
            _ => StreamError::request("GetRecords", error),
        })?;
    Ok(Page {
        records: output.records().to_vec(),
        next_iterator: output.next_shard_iterator().map(str::to_owned),
    })
}
