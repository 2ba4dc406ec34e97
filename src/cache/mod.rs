//! The read-path cache of the two lists the app reads: a user's conversations and a group's messages.
//!
//! This module owns the cache's contract, with no I/O: the keys (`conversations#<user_uuid>`,
//! `messages#<group_uuid>`), the time-to-live arithmetic (an entry is live while `now < expires_at`,
//! so an expired entry is a miss even while DynamoDB's TTL has not deleted it yet), the clock (injectable,
//! so tests never sleep), and the [`Cache`] trait every backend implements: `get`, `lease`, `set` with a
//! TTL, `invalidate`. [`dynamo`] is the DynamoDB backend, [`valkey`] the Valkey one (authenticated by
//! [`iam`] tokens in AWS); the read-through readers (the app's read path) are `ddb`'s `reads` module,
//! not the Lambda's: the stream consumer only invalidates, through [`crate::handler`].
//!
//! **No stale fill: leases**, as in Facebook's memcache ("Scaling Memcache at Facebook", NSDI 2013).
//! On a miss the reader takes a lease (a token written with a conditional write that succeeds only if
//! the key holds no live entry and no live lease), *then* reads the table (strongly consistently), then
//! sets the value conditioned on its token still being there. An invalidation deletes the item, token
//! included. So a fill whose read started before an invalidation finds its token gone and is dropped;
//! a fill whose lease was taken after the invalidation read the table after the write that caused it.
//! Safety needs no clock: only conditional writes. The lease's own expiry (`LEASE_SECONDS`) only lets
//! another reader take over from one that died. docs/CACHE.md states the protocol for other languages.
//!
//! **A cache never fails a reader.** `get`, `lease` and `set` return a miss, no lease, or a dropped fill
//! on any error (logged, after at most one short retry); only `invalidate` returns an error, because the
//! consumer must fail the group (and have Lambda retry it) rather than leave a stale list behind.
//!
//! Another backend (Momento, the seeds' hosted cache, has no local server, so none is built here) would
//! implement [`Cache`]: `get` as a Momento get, `lease` as set-if-absent of a lease token, `set` as a
//! compare-and-set on that token, `invalidate` as delete; then pass it to [`crate::App::with_cache`].

pub mod dynamo;
pub mod iam;
pub mod valkey;

use crate::model::{CONVERSATIONS_PREFIX, GROUP_PK_PREFIX, MESSAGES_PREFIX};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Default time to live of an entry: 600 s, the seed's Momento TTL (`CACHE_TTL_SECONDS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// How long a fill lease holds other readers off. Only liveness depends on it, never correctness.
pub const LEASE_SECONDS: i64 = 10;

/// An entry's fields, named the same in every backend (DynamoDB attributes, Valkey hash fields, and
/// the Lua scripts of src/cache/valkey.rs, which spell them): the rendered JSON.
pub const CACHED_VALUE: &str = "cached_value";
/// How many entries the value answers for (absent: the whole list).
pub const COVERS_LIMIT: &str = "covers_limit";
/// A fill lease's token.
pub const LEASE: &str = "lease";

/// Most delete requests in one BatchWriteItem.
pub const MAX_BATCH_WRITE: usize = 25;

/// What a cache entry holds: one of the app's two lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheKey {
    /// A user's conversation list (pattern B), by user uuid.
    Conversations(String),
    /// A group's messages (pattern A), by message group uuid.
    Messages(String),
}

impl CacheKey {
    /// The item key: `conversations#<user_uuid>` or `messages#<group_uuid>`.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheKey::Conversations(user) => write!(f, "{CONVERSATIONS_PREFIX}{user}"),
            CacheKey::Messages(group) => write!(f, "{MESSAGES_PREFIX}{group}"),
        }
    }
}

/// The keys a processed group makes stale: its message list, and the conversation list of every
/// owner whose row changed (`GRP#<owner>` partition keys). Sorted and without duplicates: one
/// BatchWriteItem may not name a key twice.
pub fn invalidation_keys(group_uuid: &str, changed_owner_pks: &[String]) -> Vec<CacheKey> {
    let mut keys: Vec<CacheKey> = changed_owner_pks
        .iter()
        .map(|pk| {
            let owner = pk.strip_prefix(GROUP_PK_PREFIX).unwrap_or(pk);
            CacheKey::Conversations(owner.to_owned())
        })
        .chain([CacheKey::Messages(group_uuid.to_owned())])
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Seconds since the Unix epoch, from somewhere a test can control.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(seconds(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// When an entry set at `now` with `ttl` expires (epoch seconds, the `expires_at` attribute).
pub fn expires_at(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(seconds(ttl))
}

/// An entry (or lease) is live strictly before its `expires_at`: a TTL of 0 caches nothing.
pub fn is_live(expires_at: i64, now: i64) -> bool {
    now < expires_at
}

/// A list as cached: the rendered JSON, and how far it answers.
#[derive(Clone, PartialEq, Eq)]
pub struct Cached {
    /// The JSON array the app returns (docs/CACHE.md).
    pub value: String,
    /// `None`: the whole list. `Some(n)`: the newest `n` entries of a list that may be longer.
    pub covers: Option<u32>,
}

impl Cached {
    /// True when this entry answers a read of at most `wanted` entries (`None`: all of them).
    pub fn answers(&self, wanted: Option<u32>) -> bool {
        match (self.covers, wanted) {
            (None, _) => true,
            (Some(covers), Some(wanted)) => wanted <= covers,
            (Some(_), None) => false,
        }
    }
}

/// Never shows the value: it holds message text.
impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("covers", &self.covers)
            .finish()
    }
}

/// The right to fill one key, until an invalidation (or another reader, after `LEASE_SECONDS`) takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
}

impl Lease {
    pub fn new() -> Self {
        Self {
            token: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

/// What became of a fill. Never an error: a failed fill is logged and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    Stored,
    /// The lease was gone: an invalidation (or a later reader) came first. The value may be stale.
    LeaseLost,
    /// Too large for one item (DynamoDB's 400 KB); the table serves this list.
    TooLarge,
    /// DynamoDB refused or could not be reached.
    Failed,
}

/// An invalidation that failed after the SDK's retries: the consumer fails the group.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalidating {keys} cache keys in {table}: {detail}")]
    Invalidate {
        table: String,
        keys: usize,
        detail: crate::aws::Failure,
    },
    #[error("invalidating cache keys in {table}: {keys} still unprocessed after {rounds} rounds")]
    Unprocessed {
        table: String,
        keys: usize,
        rounds: u32,
    },
    #[error("invalidating {keys} cache keys on Valkey at {host}: {detail}")]
    Valkey {
        host: String,
        keys: usize,
        detail: String,
    },
}

impl CacheError {
    /// The set-up problem (unreachable, credentials, a missing table) behind it, if any.
    pub fn setup(&self) -> Option<crate::aws::Setup> {
        match self {
            Self::Invalidate { detail, .. } => detail.setup,
            Self::Unprocessed { .. } | Self::Valkey { .. } => None,
        }
    }
}

/// A boxed future, so that [`Cache`] can be a trait object (`Arc<dyn Cache>` in [`crate::App`]).
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache with leases. `get`, `lease` and `set` never fail (errors are logged misses); see the
/// module documentation for the protocol.
pub trait Cache: Send + Sync + fmt::Debug {
    /// The live entry of `key`, or `None`: absent, expired, only a lease, or an error.
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Cached>>;

    /// Takes the fill lease of `key`; `None` if the key holds a live entry or another reader's live
    /// lease, or on an error. Take it *before* reading the table.
    fn lease<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Lease>>;

    /// Stores `value` under `key` for `ttl`, only if `lease` is still the key's lease.
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        lease: &'a Lease,
        value: &'a Cached,
        ttl: Duration,
    ) -> CacheFuture<'a, Filled>;

    /// Removes `keys`, entries and leases alike, in as few requests as the backend allows.
    fn invalidate<'a>(&'a self, keys: &'a [CacheKey]) -> CacheFuture<'a, Result<(), CacheError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_list_and_its_owner() {
        assert_eq!(
            CacheKey::Conversations("u-1".into()).id(),
            "conversations#u-1"
        );
        assert_eq!(CacheKey::Messages("g-1".into()).id(), "messages#g-1");
    }

    #[test]
    fn a_group_invalidates_its_messages_and_each_changed_owner_once() {
        let keys = invalidation_keys(
            "g",
            &["GRP#b".to_owned(), "GRP#a".to_owned(), "GRP#b".to_owned()],
        );
        assert_eq!(
            keys,
            vec![
                CacheKey::Conversations("a".into()),
                CacheKey::Conversations("b".into()),
                CacheKey::Messages("g".into()),
            ]
        );
        assert_eq!(
            invalidation_keys("g", &[]),
            vec![CacheKey::Messages("g".into())]
        );
    }

    #[test]
    fn ttl_arithmetic_adds_seconds_to_now() {
        assert_eq!(expires_at(1_700_000_000, DEFAULT_TTL), 1_700_000_600);
        assert_eq!(expires_at(5, Duration::ZERO), 5);
        assert_eq!(expires_at(i64::MAX - 1, DEFAULT_TTL), i64::MAX);
    }

    #[test]
    fn an_expiry_in_the_future_is_live_and_in_the_past_or_now_is_not() {
        let now = 1_700_000_000;
        assert!(is_live(now + 1, now));
        assert!(is_live(expires_at(now, DEFAULT_TTL), now));
        assert!(!is_live(now - 1, now));
        assert!(!is_live(now, now), "a TTL of 0 caches nothing");
        assert!(!is_live(expires_at(now, DEFAULT_TTL) - 3_600, now));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(100);
        assert_eq!(clock.now(), 100);
        clock.advance(Duration::from_secs(600));
        assert_eq!(clock.now(), 700);
        clock.set(5);
        assert_eq!(clock.now(), 5);
        assert!((SystemClock.now() - chrono::Utc::now().timestamp()).abs() <= 1);
    }

    #[test]
    fn an_entry_answers_reads_it_covers() {
        let whole = Cached {
            value: "[]".into(),
            covers: None,
        };
        let newest_20 = Cached {
            value: "[]".into(),
            covers: Some(20),
        };
        assert!(whole.answers(None) && whole.answers(Some(500)));
        assert!(newest_20.answers(Some(20)) && newest_20.answers(Some(1)));
        assert!(!newest_20.answers(Some(21)) && !newest_20.answers(None));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let cached = Cached {
            value: r#"[{"message":"private text"}]"#.into(),
            covers: None,
        };
        assert!(!format!("{cached:?}").contains("private"));
    }
}
