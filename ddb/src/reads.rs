//! The app's two reads, written once: a user's conversations (pattern B) and a group's messages
//! (pattern A), read from the table ([`List::rows`], every page through the SDK's paginator), or
//! served from the cache and filled.
//!
//! Rendering an item into the JSON the app returns is pure ([`conversation_entry`],
//! [`message_entry`]); [`read_through`] is the protocol (get; on a miss take the lease, *then* read
//! the table strongly consistently, then set on the lease); [`Reader`] ties both to a table. A reader
//! never fails because of the cache: only the table's own read can fail it.

use crate::output::LocalError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use messaging_stream::cache::{Cache, CacheKey, Cached, Filled};
use messaging_stream::config::ConfigError;
use messaging_stream::model::{
    group_pk, message_pk, GROUP_ATTR, MESSAGE_ATTR, MESSAGE_UUID_ATTR, PK_ATTR, SK_ATTR,
    USER_DISPLAY_NAME_ATTR, USER_HANDLE_ATTR,
};
use messaging_stream::plan::Item;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One line of either list, as the Cruddur app returns it (docs/CACHE.md).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The conversation's `message_group_uuid` (conversation list) or the `message_uuid` (messages).
    pub uuid: String,
    /// The other participant (conversations) or the sender (messages).
    pub display_name: String,
    pub handle: String,
    /// The last message's text (conversations) or the message's text.
    pub message: String,
    /// The sort key: last message time (conversations) or the message's time.
    pub created_at: String,
}

/// Never shows the message text.
impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("uuid", &self.uuid)
            .field("handle", &self.handle)
            .field("message", &format_args!("<{} bytes>", self.message.len()))
            .field("created_at", &self.created_at)
            .finish()
    }
}

fn text(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// A `GRP#<user>` row as a conversation-list entry. Missing attributes render as "".
pub fn conversation_entry(item: &Item) -> Entry {
    Entry {
        uuid: text(item, GROUP_ATTR),
        display_name: text(item, USER_DISPLAY_NAME_ATTR),
        handle: text(item, USER_HANDLE_ATTR),
        message: text(item, MESSAGE_ATTR),
        created_at: text(item, SK_ATTR),
    }
}

/// A `MSG#<group>` item as a message-list entry. Missing attributes render as "".
pub fn message_entry(item: &Item) -> Entry {
    Entry {
        uuid: text(item, MESSAGE_UUID_ATTR),
        display_name: text(item, USER_DISPLAY_NAME_ATTR),
        handle: text(item, USER_HANDLE_ATTR),
        message: text(item, MESSAGE_ATTR),
        created_at: text(item, SK_ATTR),
    }
}

/// `CACHE_TTL_SECONDS`: how long a reader keeps the list it fills (1-86400; default [`messaging_stream::cache::DEFAULT_TTL`]).
/// Read here, by the readers that fill, and only when a cache is in use: the function never fills,
/// so a bad value must not stop it.
pub fn ttl_from_env() -> Result<Duration, ConfigError> {
    ttl_from_lookup(|name| std::env::var(name).ok())
}

/// [`ttl_from_env`] through `lookup` (a map in tests).
pub fn ttl_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    const VARIABLE: &str = "CACHE_TTL_SECONDS";
    match lookup(VARIABLE) {
        None => Ok(messaging_stream::cache::DEFAULT_TTL),
        Some(value) => match value.trim().parse::<u64>() {
            Ok(seconds) if (1..=86_400).contains(&seconds) => Ok(Duration::from_secs(seconds)),
            _ => Err(ConfigError {
                variable: VARIABLE,
                value,
                expected: "seconds from 1 to 86400",
            }),
        },
    }
}

/// What `limit` entries of a list of `len` cover: the whole list when it came back short.
pub fn covers(limit: Option<u32>, len: usize) -> Option<u32> {
    limit.filter(|&l| len >= l as usize)
}

/// Where a read's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache.
    Hit,
    /// From the table; `fill` is what became of the fill, `None` when no lease was had (another
    /// reader holds it, a live entry that does not cover the read, or the cache is unreachable).
    Miss { fill: Option<Filled> },
    /// From the table, with no cache configured (or bypassed).
    NoCache,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Served::Hit => "hit",
            Served::Miss {
                fill: Some(Filled::Stored),
            } => "miss (filled)",
            Served::Miss {
                fill: Some(Filled::LeaseLost),
            } => "miss (fill dropped: invalidated meanwhile)",
            Served::Miss {
                fill: Some(Filled::TooLarge),
            } => "miss (not filled: too large for one item)",
            Served::Miss {
                fill: Some(Filled::Failed),
            } => "miss (fill failed)",
            Served::Miss { fill: None } => "miss (not filled: no lease)",
            Served::NoCache => "no cache",
        })
    }
}

/// A list and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub entries: Vec<Entry>,
    pub served: Served,
}

/// The table's read failed (the cache never fails a read): the failed Query, said as `ddb` says
/// any failed request.
pub type ReadError = LocalError;

/// Serves `key` from `cache`, or loads it with `load` and fills the cache under a lease.
///
/// The order matters: the lease is taken before `load` reads the table, so an invalidation after
/// that read removes the lease and the (possibly stale) fill is dropped.
pub async fn read_through<F, Fut>(
    cache: &dyn Cache,
    key: &CacheKey,
    limit: Option<u32>,
    ttl: Duration,
    load: F,
) -> Result<Read, ReadError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<Entry>, ReadError>>,
{
    if let Some(cached) = cache.get(key).await {
        if cached.answers(limit) {
            match serde_json::from_str::<Vec<Entry>>(&cached.value) {
                Ok(mut entries) => {
                    if let Some(limit) = limit {
                        entries.truncate(limit as usize);
                    }
                    return Ok(Read {
                        entries,
                        served: Served::Hit,
                    });
                }
                Err(error) => {
                    tracing::warn!(key = %key, error = %error, "cached value is not a list of entries: a miss")
                }
            }
        }
    }
    let lease = cache.lease(key).await;
    let entries = load().await?;
    let fill = match &lease {
        Some(lease) => {
            let cached = Cached {
                value: serde_json::to_string(&entries).expect("entries serialise"),
                covers: covers(limit, entries.len()),
            };
            Some(cache.set(key, lease, &cached, ttl).await)
        }
        None => None,
    };
    Ok(Read {
        entries,
        served: Served::Miss { fill },
    })
}

/// DynamoDB's largest page of a Scan or Query is 1 MB; ask for no more than this many items a page.
const PAGE: usize = 1000;

/// The page size for a read of at most `limit` items (none: DynamoDB's own, 1 MB).
pub fn page_size(limit: Option<usize>) -> Option<i32> {
    limit.map(|l| l.min(PAGE) as i32)
}

/// Which of the app's two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Pattern B: a user's `GRP#<user>` rows.
    Conversations,
    /// Pattern A: a group's `MSG#<group>` items.
    Messages,
}

/// How a table read reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// As the app reads its lists today (half the capacity).
    Eventual,
    /// What a fill needs: every write acknowledged before the read began (the lease protocol).
    Strong,
}

impl List {
    /// The partition key of `id`'s list.
    pub fn pk(self, id: &str) -> String {
        match self {
            Self::Conversations => group_pk(id),
            Self::Messages => message_pk(id),
        }
    }

    /// The list's key in the cache (`conversations#<user>`, `messages#<group>`).
    pub fn cache_key(self, id: &str) -> CacheKey {
        match self {
            Self::Conversations => CacheKey::Conversations(id.to_owned()),
            Self::Messages => CacheKey::Messages(id.to_owned()),
        }
    }

    /// An item of the list as the app returns it.
    pub fn entry(self, item: &Item) -> Entry {
        match self {
            Self::Conversations => conversation_entry(item),
            Self::Messages => message_entry(item),
        }
    }

    /// `id`'s items, newest first (by sort key, descending), at most `limit`: the one table read
    /// of both lists, every page through the SDK's paginator.
    pub async fn rows(
        self,
        client: &Client,
        table: &str,
        id: &str,
        limit: Option<usize>,
        consistency: Consistency,
    ) -> Result<Vec<Item>, ReadError> {
        let mut pages = client
            .query()
            .table_name(table)
            .set_consistent_read((consistency == Consistency::Strong).then_some(true))
            .key_condition_expression(format!("{PK_ATTR} = :pk"))
            .expression_attribute_values(":pk", AttributeValue::S(self.pk(id)))
            .scan_index_forward(false)
            .set_limit(page_size(limit))
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while limit.is_none_or(|l| items.len() < l) {
            match pages.next().await {
                Some(item) => items.push(item.map_err(|e| LocalError::sdk("Query", e).on(table))?),
                None => break,
            }
        }
        Ok(items)
    }

    /// `id`'s entries from the table, newest first, read strongly consistently (a fill's read).
    pub async fn load(
        self,
        client: &Client,
        table: &str,
        id: &str,
        limit: Option<u32>,
    ) -> Result<Vec<Entry>, ReadError> {
        let limit = limit.map(|l| l as usize);
        let items = self
            .rows(client, table, id, limit, Consistency::Strong)
            .await?;
        Ok(items.iter().map(|item| self.entry(item)).collect())
    }
}

/// Pattern B from the table: `GRP#<user>` rows newest first, read strongly consistently.
pub async fn load_conversations(
    client: &Client,
    table: &str,
    user_uuid: &str,
    limit: Option<u32>,
) -> Result<Vec<Entry>, ReadError> {
    List::Conversations
        .load(client, table, user_uuid, limit)
        .await
}

/// Pattern A from the table: `MSG#<group>` items newest first, read strongly consistently.
pub async fn load_messages(
    client: &Client,
    table: &str,
    group_uuid: &str,
    limit: Option<u32>,
) -> Result<Vec<Entry>, ReadError> {
    List::Messages.load(client, table, group_uuid, limit).await
}

/// The app's two reads against one table, through a cache when there is one.
#[derive(Debug, Clone)]
pub struct Reader {
    client: Client,
    table: String,
    cache: Option<Arc<dyn Cache>>,
    ttl: Duration,
}

impl Reader {
    /// Reads the table directly.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            cache: None,
            ttl: messaging_stream::cache::DEFAULT_TTL,
        }
    }

    /// Reads through `cache`, filling it for `ttl`.
    pub fn with_cache(mut self, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        self.cache = Some(cache);
        self.ttl = ttl;
        self
    }

    /// A user's conversations, newest first, at most `limit`.
    pub async fn conversations(
        &self,
        user_uuid: &str,
        limit: Option<u32>,
    ) -> Result<Read, ReadError> {
        self.read(List::Conversations, user_uuid, limit).await
    }

    /// A group's messages, newest first, at most `limit`.
    pub async fn messages(&self, group_uuid: &str, limit: Option<u32>) -> Result<Read, ReadError> {
        self.read(List::Messages, group_uuid, limit).await
    }

    /// `id`'s `list`, newest first, at most `limit`: through the cache when there is one.
    pub async fn read(&self, list: List, id: &str, limit: Option<u32>) -> Result<Read, ReadError> {
        let load = || list.load(&self.client, &self.table, id, limit);
        match &self.cache {
            Some(cache) => {
                read_through(cache.as_ref(), &list.cache_key(id), limit, self.ttl, load).await
            }
            None => Ok(Read {
                entries: load().await?,
                served: Served::NoCache,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
            .collect()
    }

    #[test]
    fn rows_render_as_the_app_returns_them() {
        let row = item(&[
            ("pk", "GRP#me"),
            ("sk", "2025-01-15T10:00:00+00:00"),
            ("message_group_uuid", "g-1"),
            ("message", "hi"),
            ("user_display_name", "Bayko"),
            ("user_handle", "bayko"),
        ]);
        let json = serde_json::to_value(conversation_entry(&row)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"uuid": "g-1", "display_name": "Bayko", "handle": "bayko",
                "message": "hi", "created_at": "2025-01-15T10:00:00+00:00"})
        );
        let message = item(&[("message_uuid", "m-1"), ("sk", "t"), ("message", "yo")]);
        let entry = message_entry(&message);
        assert_eq!((entry.uuid.as_str(), entry.handle.as_str()), ("m-1", ""));
        assert!(!format!("{entry:?}").contains("yo"));
    }

    #[test]
    fn the_readers_ttl_is_checked_where_they_fill() {
        let ttl = |value: Option<&str>| ttl_from_lookup(|_| value.map(str::to_owned));
        assert_eq!(ttl(None), Ok(Duration::from_secs(600)));
        assert_eq!(ttl(Some("60")), Ok(Duration::from_secs(60)));
        assert_eq!(ttl(Some(" 86400 ")), Ok(Duration::from_secs(86_400)));
        for bad in ["0", "86401", "ten", ""] {
            let error = ttl(Some(bad)).unwrap_err();
            assert_eq!(error.variable, "CACHE_TTL_SECONDS", "{bad:?}");
            assert!(error.to_string().contains("1 to 86400"), "{error}");
        }
    }

    /// A client whose requests the `rules` answer, in order, and no server.
    fn mocked(rules: &[&aws_smithy_mocks::Rule]) -> Client {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        use aws_smithy_mocks::{create_mock_http_client, MockResponseInterceptor, RuleMode};
        let interceptor = rules.iter().fold(
            MockResponseInterceptor::new().rule_mode(RuleMode::Sequential),
            |interceptor, rule| interceptor.with_rule(rule),
        );
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("mock", "mock", None, None, "mock"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        Client::from_conf(config)
    }

    /// A Query answered with `n` items (sort keys `prefix0`...) and, when `more`, a next page;
    /// each request's key, Limit and ConsistentRead go to `asked`.
    fn page(
        asked: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        prefix: &str,
        n: usize,
        more: bool,
    ) -> aws_smithy_mocks::Rule {
        use aws_sdk_dynamodb::operation::query::QueryOutput;
        let asked = asked.clone();
        let items: Vec<Item> = (0..n)
            .map(|i| item(&[("pk", "GRP#u"), ("sk", &format!("{prefix}{i}"))]))
            .collect();
        let next = more.then(|| item(&[("pk", "GRP#u"), ("sk", prefix)]));
        aws_smithy_mocks::mock!(Client::query)
            .match_requests(move |input| {
                asked.lock().unwrap().push(format!(
                    "{:?} {:?} {:?} start {}",
                    input
                        .expression_attribute_values()
                        .and_then(|v| v.get(":pk")),
                    input.limit(),
                    input.consistent_read(),
                    input.exclusive_start_key().is_some()
                ));
                true
            })
            .then_output(move || {
                QueryOutput::builder()
                    .set_items(Some(items.clone()))
                    .set_last_evaluated_key(next.clone())
                    .build()
            })
    }

    #[tokio::test]
    async fn the_table_read_follows_the_pages_and_stops_at_the_limit() {
        let asked = std::sync::Arc::default();
        let (first, second) = (page(&asked, "b", 2, true), page(&asked, "a", 2, true));
        let client = mocked(&[&first, &second]);
        let rows = List::Conversations
            .rows(&client, "t", "u", Some(3), Consistency::Eventual)
            .await
            .unwrap();
        let sks: Vec<&str> = rows
            .iter()
            .map(|r| r["sk"].as_s().unwrap().as_str())
            .collect();
        assert_eq!(sks, ["b0", "b1", "a0"]);
        assert_eq!(
            *asked.lock().unwrap(),
            [
                r#"Some(S("GRP#u")) Some(3) None start false"#,
                r#"Some(S("GRP#u")) Some(3) None start true"#
            ]
        );
        // A fill's read is strongly consistent, and reads every page without a limit.
        let asked = std::sync::Arc::default();
        let (first, last) = (page(&asked, "b", 2, true), page(&asked, "a", 1, false));
        let client = mocked(&[&first, &last]);
        let entries = List::Messages.load(&client, "t", "g", None).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            asked.lock().unwrap()[0],
            r#"Some(S("MSG#g")) None Some(true) start false"#
        );
    }

    #[tokio::test]
    async fn a_failed_read_is_said_as_ddb_says_a_failed_request() {
        use aws_sdk_dynamodb::operation::query::QueryError;
        use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
        let missing = aws_smithy_mocks::mock!(Client::query).then_error(|| {
            QueryError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Cannot do operations on a non-existent table")
                    .meta(
                        aws_sdk_dynamodb::error::ErrorMetadata::builder()
                            .code("ResourceNotFoundException")
                            .message("Cannot do operations on a non-existent table")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mocked(&[&missing]);
        let error = List::Conversations
            .rows(&client, "mine", "u", None, Consistency::Eventual)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Query on table mine failed (ResourceNotFoundException): Cannot do operations on a \
             non-existent table\n  create it with ddb schema-load --table mine"
        );
    }

    #[test]
    fn a_short_list_covers_everything() {
        assert_eq!(covers(None, 3), None);
        assert_eq!(covers(Some(20), 3), None);
        assert_eq!(covers(Some(20), 20), Some(20));
    }
}
