//! The Valkey backend of [`Cache`] (ElastiCache Serverless for Valkey, or any server speaking the Redis
//! protocol over TLS): one hash per key, named as in DynamoDB (`conversations#<user>`, `messages#<group>`).
//!
//! An entry is the hash `{cached_value, covers_limit?}` with the server's own TTL (`PEXPIRE`), so an
//! expired entry is gone, a miss by construction; a lease is the hash `{lease}` with the lease's TTL.
//! Keeping the lease in the entry's own key mirrors the DynamoDB item (a lease is taken only where no
//! live entry and no live lease is, and is never read as a hit: it has no `cached_value`), keeps every
//! script on one key (one hash slot, as a cluster-mode server requires) and lets one delete remove both.
//! `get` is `HMGET key cached_value covers_limit`; `lease` and `set` are one server-side script each
//! ([`LEASE_SCRIPT`], [`FILL_SCRIPT`]), atomic on the server; `invalidate` deletes every key of a group
//! in one round trip (a pipeline of `DEL`s: one command per key, so no command spans two hash slots).
//!
//! One multiplexed TLS connection is kept across invocations and re-opened after a failure (a server's
//! error answer, such as NOPERM, keeps it) and before [`MAX_CONNECTION_AGE`] (ElastiCache closes
//! IAM-authenticated connections after 12 hours). It authenticates with `AUTH <user> <token>`, the
//! token from a [`TokenProvider`]: a fixed password locally, a signed IAM token ([`super::iam`]) in
//! AWS. `get`, `lease` and `set` have a short timeout and never fail the caller (an error or a
//! timeout is a logged miss, no lease, a dropped fill); a failed `invalidate` is a [`CacheError`], so
//! the consumer fails the group as with DynamoDB.

use super::{
    Cache, CacheError, CacheFuture, CacheKey, Cached, Filled, Lease, CACHED_VALUE, COVERS_LIMIT,
    LEASE_SECONDS,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Script};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Takes the lease of `KEYS[1]` if it holds nothing live (an expired hash no longer exists):
/// `ARGV[1]` the token, `ARGV[2]` the lease's time to live in ms. 1: taken; 0: held elsewhere.
pub const LEASE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'lease', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

/// Replaces the lease of `KEYS[1]` with the entry, only while the lease is still `ARGV[1]`: `ARGV[2]`
/// the value, `ARGV[3]` its time to live in ms (0: nothing is kept), `ARGV[4]` covers_limit or "".
/// 1: stored; 0: the lease was gone (an invalidation, or another reader after it expired).
pub const FILL_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[3]) <= 0 then return 1 end
redis.call('HSET', KEYS[1], 'cached_value', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'covers_limit', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

/// A connection older than this is replaced (re-authenticated with a fresh token) before its next
/// use: ElastiCache disconnects IAM-authenticated connections after 12 hours.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(11 * 3600);

/// The default bound of one get, lease or fill, connecting included.
pub const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The default bound of one invalidation, connecting included.
pub const INVALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the server is: TLS always, verified against the system's roots or a given CA.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// A CA certificate (PEM) to trust instead of the system's roots (the tests' own CA).
    root_certificate: Option<Vec<u8>>,
    /// The logical database: 0 (ElastiCache Serverless has no other); tests give each fixture its own.
    database: i64,
}

impl Endpoint {
    /// `host:port` with TLS, verified against the system's roots (ElastiCache's certificates).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            root_certificate: None,
            database: 0,
        }
    }

    /// Trusts only `pem` (a CA certificate) for this endpoint.
    pub fn with_root_certificate(mut self, pem: Vec<u8>) -> Self {
        self.root_certificate = Some(pem);
        self
    }

    /// Selects logical database `n` on connecting (a local server's; ElastiCache Serverless has only 0).
    pub fn with_database(mut self, n: i64) -> Self {
        self.database = n;
        self
    }

    fn client(&self, user: &str, token: &str) -> Result<Client, RedisError> {
        let info = format!("rediss://{}:{}", self.host, self.port).into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_username(user)
            .set_password(token)
            .set_db(self.database)
            .set_skip_set_lib_name();
        // TCP_NODELAY, as redis-py sets it (redis-rs leaves it off): a command or pipeline goes out at
        // once instead of waiting behind Nagle's algorithm for the previous segment's ACK.
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: self.root_certificate.clone(),
            },
        )
    }

    /// A new multiplexed connection, authenticated as `user` with `token` (`AUTH user token`).
    pub async fn connect(
        &self,
        user: &str,
        token: &str,
    ) -> Result<MultiplexedConnection, RedisError> {
        self.connect_within(user, token, None).await
    }

    async fn connect_within(
        &self,
        user: &str,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(None);
        self.client(user, token)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("own_root", &self.root_certificate.is_some())
            .field("database", &self.database)
            .finish()
    }
}

/// Why no token could be had: the connection is not attempted.
#[derive(Debug, thiserror::Error)]
#[error("no Valkey authentication token: {0}")]
pub struct TokenError(pub String);

/// What `AUTH <user> <token>` sends as the token: a password locally, a signed IAM token in AWS.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// The token to authenticate a new connection with now.
    fn token(&self) -> CacheFuture<'_, Result<String, TokenError>>;
}

/// A fixed password (a local server's ACL user). Never shown by `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl TokenProvider for Password {
    fn token(&self) -> CacheFuture<'_, Result<String, TokenError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// Why a command did not answer: the server's error, or the time ran out, or no token.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Token(#[from] TokenError),
}

struct Open {
    connection: MultiplexedConnection,
    opened: Instant,
    id: u64,
}

/// The Valkey cache: its endpoint, user and token, and the one connection it keeps.
pub struct ValkeyCache {
    endpoint: Endpoint,
    user: String,
    tokens: Arc<dyn TokenProvider>,
    open: Mutex<Option<Open>>,
    opened: AtomicU64,
    max_connection_age: Duration,
    lease_ttl: Duration,
    read_timeout: Duration,
    invalidate_timeout: Duration,
    lease_script: Script,
    fill_script: Script,
}

impl fmt::Debug for ValkeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValkeyCache")
            .field("endpoint", &self.endpoint)
            .field("user", &self.user)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl ValkeyCache {
    /// A cache at `endpoint`, authenticating as `user` with `tokens`. Connects on first use.
    pub fn new(
        endpoint: Endpoint,
        user: impl Into<String>,
        tokens: Arc<dyn TokenProvider>,
    ) -> Self {
        Self {
            endpoint,
            user: user.into(),
            tokens,
            open: Mutex::new(None),
            opened: AtomicU64::new(0),
            max_connection_age: MAX_CONNECTION_AGE,
            lease_ttl: Duration::from_secs(LEASE_SECONDS as u64),
            read_timeout: READ_TIMEOUT,
            invalidate_timeout: INVALIDATE_TIMEOUT,
            lease_script: Script::new(LEASE_SCRIPT),
            fill_script: Script::new(FILL_SCRIPT),
        }
    }

    /// The function's cache in AWS: `settings`' endpoint over TLS (the system's roots), as its IAM-enabled
    /// user, with tokens signed from `credentials` for `region` (the SDK client's own).
    pub fn with_iam(
        settings: &crate::config::ValkeySettings,
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
        region: Option<String>,
    ) -> Self {
        let target = super::iam::Target {
            cache_name: settings.cache_name.clone(),
            user: settings.user.clone(),
            region: region.unwrap_or_default(),
            serverless: true,
        };
        let tokens = super::iam::IamToken::new(target, credentials);
        Self::new(
            Endpoint::new(settings.host.clone(), settings.port),
            settings.user.clone(),
            Arc::new(tokens),
        )
    }

    /// How long a lease holds other readers off (tests shorten it: the server's clock cannot be moved).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The bounds of one get, lease or fill, and of one invalidation, connecting included.
    pub fn with_timeouts(mut self, read: Duration, invalidate: Duration) -> Self {
        self.read_timeout = read;
        self.invalidate_timeout = invalidate;
        self
    }

    /// How long one connection serves before it is replaced by a newly authenticated one
    /// ([`MAX_CONNECTION_AGE`]; tests shorten it).
    pub fn with_max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = age;
        self
    }

    /// The same cache at another endpoint (before it connects: a kept connection stays where it is).
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How many connections this cache has opened (each one authenticated afresh).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The kept connection, or a new one if there is none or it is too old.
    async fn connection(&self, timeout: Duration) -> Result<(MultiplexedConnection, u64), Failure> {
        let mut open = self.open.lock().await;
        if let Some(current) = open.as_ref() {
            if current.opened.elapsed() < self.max_connection_age {
                return Ok((current.connection.clone(), current.id));
            }
        }
        let token = self.tokens.token().await?;
        let connection = self
            .endpoint
            .connect_within(&self.user, &token, Some(timeout))
            .await?;
        let id = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        *open = Some(Open {
            connection: connection.clone(),
            opened: Instant::now(),
            id,
        });
        Ok((connection, id))
    }

    /// Drops connection `id` after a failure, so that the next call opens a new one.
    async fn forget(&self, id: u64) {
        let mut open = self.open.lock().await;
        if open.as_ref().is_some_and(|current| current.id == id) {
            *open = None;
        }
    }

    /// Runs `call` on the kept connection, all within `timeout`. A transport failure (a connection
    /// the server or the network closed, as after the function was frozen a while) forgets that
    /// connection and tries once more on a new one; a server's error answer (NOPERM, WRONGTYPE, a
    /// script's error) came over a working connection, which is kept and not tried again.
    async fn run<T, F, Fut>(&self, timeout: Duration, call: F) -> Result<T, Failure>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        // The connection in use when the time ran out (0: none yet), forgotten: it may be stuck.
        let in_use = AtomicU64::new(0);
        let attempts = async {
            let mut retried = false;
            loop {
                let (connection, id) = self.connection(timeout).await?;
                in_use.store(id, Ordering::Relaxed);
                match call(connection).await {
                    Ok(value) => return Ok(value),
                    Err(error) if answered(&error) => return Err(Failure::from(error)),
                    Err(error) => {
                        self.forget(id).await;
                        if retried {
                            return Err(Failure::from(error));
                        }
                        retried = true;
                        tracing::debug!(error = %error, "Valkey connection failed: once more on a new one");
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, attempts).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let id = in_use.load(Ordering::Relaxed);
                if id != 0 {
                    self.forget(id).await;
                }
                Err(Failure::Timeout(timeout))
            }
        }
    }

    async fn get_entry(&self, key: &CacheKey) -> Option<Cached> {
        let id = key.id();
        let result = self
            .run(self.read_timeout, |mut connection| {
                let id = id.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(&id)
                        .arg(CACHED_VALUE)
                        .arg(COVERS_LIMIT)
                        .query_async::<(Option<String>, Option<String>)>(&mut connection)
                        .await
                }
            })
            .await;
        match result {
            Ok((value, covers)) => value.map(|value| Cached {
                value,
                covers: covers.and_then(|n| n.parse().ok()),
            }),
            Err(error) => {
                tracing::warn!(key = %id, error = %error, "cache get failed: a miss");
                None
            }
        }
    }

    async fn take_lease(&self, key: &CacheKey) -> Option<Lease> {
        let id = key.id();
        let lease = Lease::new();
        let (key_id, token) = (&id, &lease.token);
        let result = self
            .run(self.read_timeout, |mut connection| async move {
                self.lease_script
                    .key(key_id)
                    .arg(token)
                    .arg(milliseconds(self.lease_ttl))
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await;
        match result {
            Ok(1) => Some(lease),
            Ok(_) => {
                tracing::debug!(key = %id, "cache lease held elsewhere (or a live entry): no fill");
                None
            }
            Err(error) => {
                tracing::warn!(key = %id, error = %error, "cache lease failed: no fill");
                None
            }
        }
    }

    async fn fill(&self, key: &CacheKey, lease: &Lease, value: &Cached, ttl: Duration) -> Filled {
        let id = key.id();
        let covers = value.covers.map(|n| n.to_string()).unwrap_or_default();
        let (key_id, covers) = (&id, &covers);
        let result = self
            .run(self.read_timeout, |mut connection| async move {
                self.fill_script
                    .key(key_id)
                    .arg(&lease.token)
                    .arg(&value.value)
                    .arg(milliseconds(ttl))
                    .arg(covers)
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await;
        match result {
            Ok(1) => Filled::Stored,
            Ok(_) => {
                tracing::debug!(key = %id, "cache fill dropped: its lease was invalidated");
                Filled::LeaseLost
            }
            Err(error) => {
                tracing::warn!(key = %id, error = %error, "cache fill failed: dropped");
                Filled::Failed
            }
        }
    }

    async fn delete_all(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut ids: Vec<String> = keys.iter().map(CacheKey::id).collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let count = ids.len();
        let ids = &ids;
        self.run(self.invalidate_timeout, |mut connection| async move {
            let mut pipeline = redis::pipe();
            for id in ids {
                pipeline.del(id).ignore();
            }
            pipeline.query_async::<()>(&mut connection).await
        })
        .await
        .map_err(|failure| CacheError::Valkey {
            host: self.endpoint.host.clone(),
            keys: count,
            detail: failure.to_string(),
        })
    }
}

impl Cache for ValkeyCache {
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

/// True when the server answered with an error: the connection works. (An error code the client does
/// not know, such as WRONGTYPE or NOPERM, is an `Extension`.)
fn answered(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// A duration in whole milliseconds, as PEXPIRE takes it (saturating).
fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LEASE;

    #[test]
    fn connections_send_each_write_at_once_with_tls_and_no_select_on_database_0() {
        let info = Endpoint::new("cache.example", 6379)
            .client("user", "token")
            .expect("a client")
            .get_connection_info()
            .clone();
        assert!(info.tcp_settings().nodelay(), "TCP_NODELAY");
        assert!(
            matches!(info.addr(), redis::ConnectionAddr::TcpTls { host, port: 6379, .. } if host == "cache.example"),
            "{:?}",
            info.addr()
        );
        assert_eq!(info.redis_settings().db(), 0);
    }

    #[test]
    fn the_scripts_spell_the_entrys_fields_as_the_contract_names_them() {
        assert!(
            LEASE_SCRIPT.contains(&format!("'{LEASE}'")),
            "{LEASE_SCRIPT}"
        );
        for field in [LEASE, CACHED_VALUE, COVERS_LIMIT] {
            assert!(
                FILL_SCRIPT.contains(&format!("'{field}'")),
                "{field}: {FILL_SCRIPT}"
            );
        }
    }

    #[test]
    fn durations_are_sent_in_milliseconds() {
        assert_eq!(milliseconds(Duration::from_secs(600)), 600_000);
        assert_eq!(milliseconds(Duration::ZERO), 0);
        assert_eq!(milliseconds(Duration::MAX), u64::MAX);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let cache = ValkeyCache::new(
            Endpoint::new("127.0.0.1", 6379).with_root_certificate(b"pem".to_vec()),
            "cache",
            Arc::new(Password::new("s3cret-pw")),
        );
        let shown = format!("{cache:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("127.0.0.1") && shown.contains("cache"),
            "{shown}"
        );
    }
}
