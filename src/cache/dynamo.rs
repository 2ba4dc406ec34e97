//! The DynamoDB backend of [`Cache`]: one item per key in the cache table (`${AppName}-cache-${Env}`).
//!
//! An entry is `{id, cached_value, expires_at, covers_limit?}`; a lease is `{id, lease, expires_at}`
//! (its own short expiry). `get` is a strongly consistent GetItem (an eventually consistent read could
//! return an entry an invalidation already deleted); `lease` a conditional UpdateItem; `set` a PutItem
//! conditioned on the lease token; `invalidate` BatchWriteItems of up to 25 deletes, unprocessed items
//! retried. Reads and fills make at most one short retry and never fail the caller; invalidation uses
//! the client's own retry policy (the consumer's `AWS_MAX_ATTEMPTS`) and reports what still failed.
//! The table's TimeToLiveSpecification on `expires_at` deletes old items eventually; until then an
//! expired item is a miss here.

use super::{
    expires_at, is_live, Cache, CacheError, CacheFuture, CacheKey, Cached, Clock, Filled, Lease,
    SystemClock, CACHED_VALUE, COVERS_LIMIT, LEASE, LEASE_SECONDS, MAX_BATCH_WRITE,
};
use crate::backoff::backoff;
use crate::plan::Item;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::sync::Arc;
use std::time::Duration;

/// The key attribute of the cache table.
pub const ID: &str = "id";
/// Epoch seconds; the table's TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

/// Stay under DynamoDB's 400 KB item limit with room for the other attributes.
pub const MAX_VALUE_BYTES: usize = 390 * 1024;

/// Rounds of BatchWriteItem for items DynamoDB left unprocessed before the invalidation fails.
pub const UNPROCESSED_ROUNDS: u32 = 6;

/// The cache table through the SDK.
#[derive(Debug, Clone)]
pub struct DynamoCache {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    read_attempt_timeout: Duration,
}

impl DynamoCache {
    /// A cache in `table`, on the system clock. `client`'s retry policy is the invalidations'.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
            read_attempt_timeout: Duration::from_secs(1),
        }
    }

    /// The same cache on another clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long one attempt of a read, lease or fill may take before it is retried (once).
    pub fn with_read_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.read_attempt_timeout = timeout;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The reader's side never waits long: two attempts, 10-50 ms apart, short timeouts.
    fn reader_override(&self) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::config::Builder::default()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_max_backoff(Duration::from_millis(50)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(self.read_attempt_timeout)
                    .operation_timeout(self.read_attempt_timeout * 2 + Duration::from_millis(100))
                    .build(),
            )
    }

    async fn get_entry(&self, key: &CacheKey) -> Option<Cached> {
        let id = key.id();
        let result = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(id.clone()))
            .consistent_read(true)
            .customize()
            .config_override(self.reader_override())
            .send()
            .await;
        match result {
            Ok(output) => output
                .item()
                .and_then(|item| live_entry(item, self.clock.now())),
            Err(error) => {
                tracing::warn!(key = %id, error = %DisplayErrorContext(error), "cache get failed: a miss");
                None
            }
        }
    }

    async fn take_lease(&self, key: &CacheKey) -> Option<Lease> {
        let id = key.id();
        let lease = Lease::new();
        let now = self.clock.now();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(id.clone()))
            .update_expression(
                "SET #lease = :token, #expires = :lease_expires REMOVE #value, #covers",
            )
            .condition_expression(
                "attribute_not_exists(#id) OR attribute_not_exists(#expires) OR #expires <= :now",
            )
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#lease", LEASE)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#value", CACHED_VALUE)
            .expression_attribute_names("#covers", COVERS_LIMIT)
            .expression_attribute_values(":token", AttributeValue::S(lease.token.clone()))
            .expression_attribute_values(
                ":lease_expires",
                number(expires_at(now, Duration::from_secs(LEASE_SECONDS as u64))),
            )
            .expression_attribute_values(":now", number(now))
            .customize()
            .config_override(self.reader_override())
            .send()
            .await;
        match result {
            Ok(_) => Some(lease),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::debug!(key = %id, "cache lease held elsewhere (or a live entry): no fill");
                None
            }
            Err(error) => {
                tracing::warn!(key = %id, error = %DisplayErrorContext(error), "cache lease failed: no fill");
                None
            }
        }
    }

    async fn fill(&self, key: &CacheKey, lease: &Lease, value: &Cached, ttl: Duration) -> Filled {
        let id = key.id();
        if value.value.len() > MAX_VALUE_BYTES {
            tracing::warn!(key = %id, bytes = value.value.len(), "cache fill too large: dropped");
            return Filled::TooLarge;
        }
        let mut item = Item::from([
            (ID.to_owned(), AttributeValue::S(id.clone())),
            (
                CACHED_VALUE.to_owned(),
                AttributeValue::S(value.value.clone()),
            ),
            (
                EXPIRES_AT.to_owned(),
                number(expires_at(self.clock.now(), ttl)),
            ),
        ]);
        if let Some(covers) = value.covers {
            item.insert(COVERS_LIMIT.to_owned(), number(i64::from(covers)));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#lease = :token")
            .expression_attribute_names("#lease", LEASE)
            .expression_attribute_values(":token", AttributeValue::S(lease.token.clone()))
            .customize()
            .config_override(self.reader_override())
            .send()
            .await;
        match result {
            Ok(_) => Filled::Stored,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::debug!(key = %id, "cache fill dropped: its lease was invalidated");
                Filled::LeaseLost
            }
            Err(error) => {
                tracing::warn!(key = %id, error = %DisplayErrorContext(error), "cache fill failed: dropped");
                Filled::Failed
            }
        }
    }

    /// Deletes up to 25 keys in one BatchWriteItem, then again what DynamoDB left unprocessed.
    async fn delete_batch(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut requests: Vec<WriteRequest> = keys
            .iter()
            .map(|key| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .key(ID, AttributeValue::S(key.id()))
                            .build()
                            .expect("key is set"),
                    )
                    .build()
            })
            .collect();
        for round in 0..UNPROCESSED_ROUNDS {
            if round > 0 {
                tokio::time::sleep(backoff(round)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|error| CacheError::Invalidate {
                    table: self.table.clone(),
                    keys: keys.len(),
                    detail: crate::aws::Failure::of(&error),
                })?;
            requests = output
                .unprocessed_items()
                .and_then(|tables| tables.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(CacheError::Unprocessed {
            table: self.table.clone(),
            keys: requests.len(),
            rounds: UNPROCESSED_ROUNDS,
        })
    }

    async fn delete_all(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let batches = keys
            .chunks(MAX_BATCH_WRITE)
            .map(|batch| self.delete_batch(batch));
        futures::future::join_all(batches)
            .await
            .into_iter()
            .collect()
    }
}

impl Cache for DynamoCache {
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Cached>> {
        Box::pin(self.get_entry(key))
    }

    fn lease<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Lease>> {
        Box::pin(self.take_lease(key))
    }

    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        lease: &'a Lease,
        value: &'a Cached,
        ttl: Duration,
    ) -> CacheFuture<'a, Filled> {
        Box::pin(self.fill(key, lease, value, ttl))
    }

    fn invalidate<'a>(&'a self, keys: &'a [CacheKey]) -> CacheFuture<'a, Result<(), CacheError>> {
        Box::pin(self.delete_all(keys))
    }
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// Reads an `N` that may carry a fraction (the seed wrote `expires_at` as a float), rounded down.
fn epoch_seconds(value: &AttributeValue) -> Option<i64> {
    let text = value.as_n().ok()?.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f.floor() as i64))
}

/// The entry an item holds if it is a live entry at `now`: not expired, not a bare lease.
pub fn live_entry(item: &Item, now: i64) -> Option<Cached> {
    let expires = epoch_seconds(item.get(EXPIRES_AT)?)?;
    if !is_live(expires, now) {
        return None;
    }
    let value = item.get(CACHED_VALUE)?.as_s().ok()?.clone();
    let covers = item
        .get(COVERS_LIMIT)
        .and_then(epoch_seconds)
        .and_then(|n| u32::try_from(n).ok());
    Some(Cached { value, covers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn an_entry_is_live_until_its_expiry_and_a_lease_is_never_a_hit() {
        let entry = item(&[
            (ID, AttributeValue::S("k".into())),
            (CACHED_VALUE, AttributeValue::S("[1]".into())),
            (EXPIRES_AT, AttributeValue::N("1000".into())),
            (COVERS_LIMIT, AttributeValue::N("20".into())),
        ]);
        assert_eq!(
            live_entry(&entry, 999),
            Some(Cached {
                value: "[1]".into(),
                covers: Some(20)
            })
        );
        assert_eq!(live_entry(&entry, 1000), None);
        let lease = item(&[
            (ID, AttributeValue::S("k".into())),
            (LEASE, AttributeValue::S("t".into())),
            (EXPIRES_AT, AttributeValue::N("1000".into())),
        ]);
        assert_eq!(live_entry(&lease, 1), None);
    }

    #[test]
    fn the_seeds_float_expiry_and_bad_numbers_are_read_safely() {
        let float = item(&[
            (CACHED_VALUE, AttributeValue::S("[]".into())),
            (EXPIRES_AT, AttributeValue::N("1000.75".into())),
        ]);
        assert!(live_entry(&float, 999).is_some());
        assert!(live_entry(&float, 1000).is_none());
        let bad = item(&[
            (CACHED_VALUE, AttributeValue::S("[]".into())),
            (EXPIRES_AT, AttributeValue::S("soon".into())),
        ]);
        assert!(live_entry(&bad, 0).is_none());
    }
}
