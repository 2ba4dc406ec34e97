//! The read-path cache on DynamoDB Local: the seed's own tests as behaviours (set then get, an expired
//! TTL is a miss, set again serves the new value, the TTL arithmetic, expiry past and future), the
//! table's TTL specification, errors and throttling as misses, the lease protocol against the
//! stale-fill race in every interleaving, and the consumer keeping both cached lists exact.

use testkit::bin;
use testkit::items::{event, group_row, message_item_with_uuid, message_record};
use testkit::{items, local, valkey};

use ddb::commands::schema;
use ddb::reads::{load_conversations, read_through, Entry, Reader, Served};
use messaging_stream::cache::dynamo::{DynamoCache, EXPIRES_AT, ID};
use messaging_stream::cache::valkey::{Endpoint, Password, ValkeyCache};
use messaging_stream::cache::CACHED_VALUE;
use messaging_stream::cache::{
    Cache, CacheError, CacheFuture, CacheKey, Cached, Clock as _, Filled, Lease, ManualClock,
    DEFAULT_TTL,
};
use messaging_stream::event::parse_event;
use messaging_stream::plan::Item;
use messaging_stream::App;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::local::TestTable;
use testkit::request_log::RequestLog;
use tokio::sync::{mpsc, Mutex};

const T0: &str = "2024-05-06T09:00:00+00:00";
const T1: &str = "2025-01-15T10:00:00+00:00";
const T2: &str = "2025-01-15T11:00:00+00:00";
const T3: &str = "2025-01-15T12:00:00+00:00";

/// Which backend of the cache a test runs on: the bodies marked "both" run on each (`<body>::dynamodb`,
/// `<body>::valkey`, from the [`on_both`] macro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    DynamoDb,
    /// Debian's redis-server over TLS ([`testkit::valkey`]), one logical database per fixture.
    Valkey,
}

/// Runs the `async fn $body(Backend)` of the same name as a test on each backend.
macro_rules! on_both {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn dynamodb() {
                super::$body(super::Backend::DynamoDb).await
            }
            #[tokio::test]
            async fn valkey() {
                super::$body(super::Backend::Valkey).await
            }
        }
    )*};
}

/// A test table, a cache beside it (a cache table, or a Valkey database), and the handler's app
/// invalidating that cache.
struct Fixture {
    backend: Backend,
    now: i64,
    table: TestTable,
    cache_table: String,
    clock: Arc<ManualClock>,
    cache: Arc<dyn Cache>,
    /// The Valkey database of the cache (Valkey only).
    valkey: Option<valkey::Database>,
    app: App,
}

impl Fixture {
    async fn new() -> Self {
        Self::on(Backend::DynamoDb).await
    }

    async fn on(backend: Backend) -> Self {
        let table = TestTable::new().await;
        let cache_table = format!("cache-{}", uuid::Uuid::new_v4().simple());
        // The test's clock starts at the real time: DynamoDB Local's TTL really deletes items whose
        // `expires_at` is in the past, which would turn a test's entry into a miss behind its back.
        let now = chrono::Utc::now().timestamp();
        let clock = Arc::new(ManualClock::at(now));
        let (cache, valkey): (Arc<dyn Cache>, _) = match backend {
            Backend::DynamoDb => {
                schema::create_cache_table(&table.client, &cache_table)
                    .await
                    .expect("create the cache table");
                let cache = cache_on(table.client.clone(), &cache_table, clock.clone());
                (Arc::new(cache), None)
            }
            Backend::Valkey => {
                let database = valkey::database();
                (Arc::new(valkey_cache(database.cache())), Some(database))
            }
        };
        table.requests.reset();
        let app = table.app.clone().with_cache(cache.clone());
        Self {
            backend,
            now,
            table,
            cache_table,
            clock,
            cache,
            valkey,
            app,
        }
    }

    fn reader(&self) -> Reader {
        Reader::new(self.table.client.clone(), self.table.table())
            .with_cache(self.cache.clone(), DEFAULT_TTL)
    }

    /// Lets `duration` pass for the cache: the injected clock (DynamoDB), or real time (Valkey's own TTL).
    async fn elapse(&self, duration: Duration) {
        match self.backend {
            Backend::DynamoDb => self.clock.advance(duration),
            Backend::Valkey => tokio::time::sleep(duration).await,
        }
    }

    /// The key's fields as stored (item attributes, or the hash's fields), expired or not (DynamoDB).
    async fn stored(&self, key: &CacheKey) -> Option<BTreeMap<String, String>> {
        match self.backend {
            Backend::DynamoDb => self.raw(key).await.map(|item| {
                item.iter()
                    .map(|(name, value)| {
                        let text = value
                            .as_s()
                            .or_else(|_| value.as_n())
                            .cloned()
                            .unwrap_or_default();
                        (name.clone(), text)
                    })
                    .collect()
            }),
            Backend::Valkey => {
                let mut admin = self.admin().await;
                let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(key.id())
                    .query_async(&mut admin)
                    .await
                    .expect("HGETALL");
                (!fields.is_empty()).then_some(fields)
            }
        }
    }

    /// How long the key has left to live: `expires_at` minus the clock, or the server's PTTL.
    async fn time_to_live(&self, key: &CacheKey) -> Option<Duration> {
        match self.backend {
            Backend::DynamoDb => {
                let stored = self.stored(key).await?;
                let expires: i64 = stored.get(EXPIRES_AT)?.parse().ok()?;
                u64::try_from(expires - self.clock.now())
                    .ok()
                    .map(Duration::from_secs)
            }
            Backend::Valkey => {
                let mut admin = self.admin().await;
                let ms: i64 = redis::cmd("PTTL")
                    .arg(key.id())
                    .query_async(&mut admin)
                    .await
                    .expect("PTTL");
                u64::try_from(ms).ok().map(Duration::from_millis)
            }
        }
    }

    async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.valkey
            .as_ref()
            .expect("a Valkey fixture")
            .admin()
            .await
    }

    /// A cache of the same backend that nothing answers: a closed port.
    async fn cache_on_a_closed_port(&self, log: &RequestLog) -> Arc<dyn Cache> {
        match self.backend {
            Backend::DynamoDb => Arc::new(DynamoCache::new(
                self.client_via(&closed_port(), 5, log).await,
                &self.cache_table,
            )),
            Backend::Valkey => Arc::new(ValkeyCache::new(
                Endpoint::new("127.0.0.1", closed_tcp_port()),
                valkey::CACHE_USER,
                Arc::new(Password::new("unused")),
            )),
        }
    }

    async fn invoke(
        &self,
        app: &App,
        payload: serde_json::Value,
    ) -> aws_lambda_events::streams::DynamoDbEventResponse {
        let records = parse_event(&payload).expect("a stream event");
        let (response, _) = messaging_stream::handle(app, records, None)
            .await
            .expect("the handler answers");
        response
    }

    /// The cache item as stored, expired or not.
    async fn raw(&self, key: &CacheKey) -> Option<Item> {
        self.table
            .client
            .get_item()
            .table_name(&self.cache_table)
            .key(ID, aws_sdk_dynamodb::types::AttributeValue::S(key.id()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the cache table")
            .item()
            .cloned()
    }

    /// A client of the cache table through `endpoint` (a proxy, a closed port), counting in `log`.
    async fn client_via(
        &self,
        endpoint: &str,
        max_attempts: u32,
        log: &RequestLog,
    ) -> aws_sdk_dynamodb::Client {
        let mut config = local::config_for(endpoint, &self.cache_table);
        config.max_attempts = max_attempts;
        local::client_for(&config, log).await
    }
}

fn cache_on(client: aws_sdk_dynamodb::Client, table: &str, clock: Arc<ManualClock>) -> DynamoCache {
    // Generous: the shared test machine is slow at times, and a timeout here would be a (correct) miss.
    DynamoCache::new(client, table)
        .with_clock(clock)
        .with_read_attempt_timeout(Duration::from_secs(10))
}

/// The Valkey cache as the tests use it: generous timeouts (the shared test machine is slow at times,
/// and a timeout would be a correct miss where the test wants a hit).
fn valkey_cache(cache: ValkeyCache) -> ValkeyCache {
    cache.with_timeouts(Duration::from_secs(10), Duration::from_secs(10))
}

fn closed_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn closed_port() -> String {
    format!("http://127.0.0.1:{}", closed_tcp_port())
}

fn value(text: &str) -> Cached {
    Cached {
        value: text.to_owned(),
        covers: None,
    }
}

fn key() -> CacheKey {
    CacheKey::Conversations(uuid::Uuid::new_v4().to_string())
}

fn groups(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.uuid.clone()).collect()
}

// ---- the seed's tests, as behaviours ----

on_both!(
    set_then_get_serves_the_value_expiring_ttl_seconds_from_now,
    a_value_set_with_an_expired_ttl_is_a_miss_and_setting_again_serves_the_new_value,
    an_entry_is_a_hit_before_its_expiry_and_a_miss_from_it_though_still_in_the_table,
    a_lease_holds_other_readers_off_until_it_expires_and_a_lost_lease_never_fills,
    a_cache_on_a_closed_port_is_a_miss_and_the_table_answers,
);

async fn set_then_get_serves_the_value_expiring_ttl_seconds_from_now(backend: Backend) {
    let f = Fixture::on(backend).await;
    let key = key();
    let lease = f.cache.lease(&key).await.expect("a lease on an empty key");
    assert_eq!(
        f.cache.set(&key, &lease, &value("[1]"), DEFAULT_TTL).await,
        Filled::Stored
    );

    assert_eq!(f.cache.get(&key).await, Some(value("[1]")));
    let stored = f.stored(&key).await.expect("the entry");
    assert_eq!(stored[CACHED_VALUE], "[1]");
    assert!(!stored.contains_key("lease"), "the fill replaces the lease");
    let left = f.time_to_live(&key).await.expect("a time to live");
    assert!(
        left <= DEFAULT_TTL && left > DEFAULT_TTL - Duration::from_secs(10),
        "{left:?} left of the 600 s default"
    );
    if backend == Backend::DynamoDb {
        assert_eq!(
            stored[EXPIRES_AT],
            (f.now + 600).to_string(),
            "expires_at is now + the 600 s default, in epoch seconds"
        );
    }
}

async fn a_value_set_with_an_expired_ttl_is_a_miss_and_setting_again_serves_the_new_value(
    backend: Backend,
) {
    let f = Fixture::on(backend).await;
    let key = key();
    let lease = f.cache.lease(&key).await.unwrap();
    f.cache
        .set(&key, &lease, &value("old"), Duration::ZERO)
        .await;
    assert_eq!(f.cache.get(&key).await, None, "expired at once: a miss");

    let lease = f
        .cache
        .lease(&key)
        .await
        .expect("an expired entry can be leased again");
    assert_eq!(
        f.cache.set(&key, &lease, &value("new"), DEFAULT_TTL).await,
        Filled::Stored
    );
    assert_eq!(f.cache.get(&key).await, Some(value("new")));
}

/// At the boundary on the injected clock (DynamoDB); on Valkey the server's own expiry, in real time.
async fn an_entry_is_a_hit_before_its_expiry_and_a_miss_from_it_though_still_in_the_table(
    backend: Backend,
) {
    let f = Fixture::on(backend).await;
    let (ttl, before, after) = match backend {
        Backend::DynamoDb => (
            DEFAULT_TTL,
            Duration::from_secs(599),
            Duration::from_secs(1),
        ),
        Backend::Valkey => (
            Duration::from_secs(3),
            Duration::from_secs(1),
            Duration::from_millis(2100),
        ),
    };
    let key = key();
    let lease = f.cache.lease(&key).await.unwrap();
    f.cache.set(&key, &lease, &value("v"), ttl).await;

    f.elapse(before).await;
    assert_eq!(
        f.cache.get(&key).await,
        Some(value("v")),
        "before its expiry"
    );
    assert!(
        f.cache.lease(&key).await.is_none(),
        "a live entry is not leased"
    );
    f.elapse(after).await;
    assert_eq!(f.cache.get(&key).await, None, "expired now");
    match backend {
        Backend::DynamoDb => assert!(
            f.stored(&key).await.is_some(),
            "DynamoDB's TTL deletes lazily"
        ),
        Backend::Valkey => assert_eq!(f.stored(&key).await, None, "the server's TTL removed it"),
    }
}

async fn a_lease_holds_other_readers_off_until_it_expires_and_a_lost_lease_never_fills(
    backend: Backend,
) {
    let f = Fixture::on(backend).await;
    // Valkey's lease expires on the server's clock: a short one, waited out.
    let (cache, lease_time): (Arc<dyn Cache>, _) = match &f.valkey {
        None => (f.cache.clone(), Duration::from_secs(10)),
        Some(database) => (
            Arc::new(valkey_cache(database.cache()).with_lease_ttl(Duration::from_secs(2))),
            Duration::from_millis(2200),
        ),
    };
    let key = key();
    let first = cache.lease(&key).await.unwrap();
    assert!(cache.lease(&key).await.is_none(), "one filler at a time");
    f.elapse(lease_time).await;
    let second = cache
        .lease(&key)
        .await
        .expect("a dead reader's lease expires");
    assert_eq!(
        cache.set(&key, &first, &value("late"), DEFAULT_TTL).await,
        Filled::LeaseLost
    );
    assert_eq!(
        cache.set(&key, &second, &value("v"), DEFAULT_TTL).await,
        Filled::Stored
    );
    assert_eq!(cache.get(&key).await, Some(value("v")));
}

#[tokio::test]
async fn the_local_cache_table_has_its_time_to_live_on_expires_at() {
    let f = Fixture::new().await;
    assert_eq!(
        schema::time_to_live(&f.table.client, &f.cache_table)
            .await
            .unwrap(),
        Some(("ENABLED".to_owned(), "expires_at".to_owned()))
    );
    assert_eq!(
        schema::create_cache_table(&f.table.client, &f.cache_table)
            .await
            .unwrap(),
        schema::Created::AlreadyThere,
        "schema-load --cache twice is fine"
    );
}

/// The table's TTL at work: DynamoDB Local deletes an item whose `expires_at` is past (here within 2-20 s
/// of the write; DynamoDB within about two days). So the tests' clock starts at the real time.
#[tokio::test]
async fn the_cache_tables_ttl_deletes_expired_items() {
    let f = Fixture::new().await;
    let key = key();
    let lease = f.cache.lease(&key).await.unwrap();
    f.clock.set(f.now - 700);
    assert_eq!(
        f.cache.set(&key, &lease, &value("old"), DEFAULT_TTL).await,
        Filled::Stored
    );
    let started = std::time::Instant::now();
    while f.raw(&key).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "an item expired 100 s ago is still in the table after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- a cache never fails a reader ----

async fn a_cache_on_a_closed_port_is_a_miss_and_the_table_answers(backend: Backend) {
    let f = Fixture::on(backend).await;
    f.table
        .put([group_row("u", "g1", T0, "x"), group_row("u", "g2", T1, "y")])
        .await;
    let log = RequestLog::new();
    let down = f.cache_on_a_closed_port(&log).await;
    let reader =
        Reader::new(f.table.client.clone(), f.table.table()).with_cache(down.clone(), DEFAULT_TTL);

    let started = std::time::Instant::now();
    let read = reader
        .conversations("u", None)
        .await
        .expect("the table answers");

    assert_eq!(groups(&read.entries), ["g2", "g1"]);
    assert_eq!(read.served, Served::Miss { fill: None });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    if backend == Backend::DynamoDb {
        // get, lease: two attempts each (one short retry), never the client's five.
        assert_eq!(log.counts().get("GetItem"), Some(&2), "{:?}", log.counts());
        assert_eq!(
            log.counts().get("UpdateItem"),
            Some(&2),
            "{:?}",
            log.counts()
        );
    }
    assert!(
        down.invalidate(&[key()]).await.is_err(),
        "an invalidation that cannot be made is an error"
    );
}

#[tokio::test]
async fn throttling_on_get_is_a_miss_after_one_short_retry() {
    let f = Fixture::new().await;
    let key = key();
    let lease = f.cache.lease(&key).await.unwrap();
    f.cache.set(&key, &lease, &value("[]"), DEFAULT_TTL).await;
    for fault in [Fault::Throttling, Fault::ProvisionedThroughputExceeded] {
        let proxy = Proxy::start(
            local::address(),
            FaultPlan::none().probability(fault, 1.0).only(&["GetItem"]),
        )
        .await
        .unwrap();
        let log = RequestLog::new();
        let throttled = cache_on(
            f.client_via(&proxy.endpoint_url(), 5, &log).await,
            &f.cache_table,
            f.clock.clone(),
        );

        assert_eq!(throttled.get(&key).await, None, "{fault:?}");
        assert_eq!(
            proxy.counts().operations.get("GetItem"),
            Some(&2),
            "{fault:?}"
        );
        assert_eq!(proxy.counts().faults_of(fault), 2);
    }
    assert_eq!(
        f.cache.get(&key).await,
        Some(value("[]")),
        "the entry is intact"
    );
}

/// A Valkey that accepts connections and never answers (not even the TLS handshake): each call ends
/// within its timeout, as a miss, no lease, a dropped fill; the invalidation as an error.
#[tokio::test]
async fn a_valkey_that_does_not_answer_is_a_miss_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let read = Duration::from_millis(300);
    let cache = ValkeyCache::new(
        Endpoint::new("127.0.0.1", port),
        valkey::CACHE_USER,
        Arc::new(Password::new("unused")),
    )
    .with_timeouts(read, Duration::from_millis(600));
    let key = key();

    let started = std::time::Instant::now();
    assert_eq!(cache.get(&key).await, None);
    assert_eq!(cache.lease(&key).await, None);
    assert_eq!(
        cache
            .set(&key, &Lease::new(), &value("v"), DEFAULT_TTL)
            .await,
        Filled::Failed
    );
    let took = started.elapsed();
    assert!(
        took >= read * 3 && took < Duration::from_secs(3),
        "three calls of at most {read:?} each took {took:?}"
    );
    let started = std::time::Instant::now();
    let error = cache
        .invalidate(std::slice::from_ref(&key))
        .await
        .expect_err("an invalidation that gets no answer fails");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(cache.connections_opened(), 0, "none was ever opened");
    silent.abort();
}

/// The connection is kept across calls, and a new one is opened (authenticated afresh) after the server
/// closed it, within the call that found it closed: no call is lost to it.
#[tokio::test]
async fn the_valkey_connection_is_kept_and_reopened_after_the_server_closes_it() {
    let database = valkey::database();
    let user = format!("reopen-{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().simple().to_string();
    let secret = format!(">{password}");
    valkey::set_user(
        &user,
        &["on", &secret, "~conversations#*", "~messages#*", "+@all"],
    )
    .await;
    let cache = valkey_cache(database.cache_as(&user, &password));
    let key = key();
    let lease = cache.lease(&key).await.expect("a lease");
    assert_eq!(
        cache.set(&key, &lease, &value("v"), DEFAULT_TTL).await,
        Filled::Stored
    );
    for _ in 0..3 {
        assert_eq!(cache.get(&key).await, Some(value("v")));
    }
    assert_eq!(
        cache.connections_opened(),
        1,
        "one connection for all calls"
    );

    let mut admin = database.admin().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    assert_eq!(
        cache.get(&key).await,
        Some(value("v")),
        "the closed connection is tried once more on a new one"
    );
    assert_eq!(cache.connections_opened(), 2);
}

/// A key some other writer left with another type: the server's error is a miss, no lease and no fill,
/// over the same connection; the invalidation removes the key and the next reader fills it.
#[tokio::test]
async fn a_valkey_key_of_another_type_is_a_miss_until_invalidated() {
    let database = valkey::database();
    let cache = valkey_cache(database.cache());
    let key = key();
    let mut admin = database.admin().await;
    redis::cmd("SET")
        .arg(key.id())
        .arg("not a hash")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    assert_eq!(cache.get(&key).await, None);
    assert_eq!(cache.lease(&key).await, None, "the key is taken");
    assert_eq!(
        cache
            .set(&key, &Lease::new(), &value("v"), DEFAULT_TTL)
            .await,
        Filled::Failed
    );
    assert_eq!(cache.connections_opened(), 1, "the server answered: kept");
    cache.invalidate(std::slice::from_ref(&key)).await.unwrap();
    let lease = cache
        .lease(&key)
        .await
        .expect("a lease after the invalidation");
    assert_eq!(
        cache.set(&key, &lease, &value("v"), DEFAULT_TTL).await,
        Filled::Stored
    );
    assert_eq!(cache.get(&key).await, Some(value("v")));
    assert_eq!(cache.connections_opened(), 1);
}

/// A connection is replaced by a newly authenticated one once it reaches its age (ElastiCache ends
/// IAM-authenticated connections at 12 hours; the function re-authenticates before, at 11).
#[tokio::test]
async fn a_valkey_connection_is_replaced_when_it_reaches_its_age() {
    let database = valkey::database();
    let cache = valkey_cache(database.cache()).with_max_connection_age(Duration::from_millis(500));
    let key = key();
    let lease = cache.lease(&key).await.expect("a lease");
    assert_eq!(
        cache.set(&key, &lease, &value("v"), DEFAULT_TTL).await,
        Filled::Stored
    );
    assert_eq!(cache.connections_opened(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.get(&key).await, Some(value("v")));
    assert_eq!(
        cache.connections_opened(),
        2,
        "a new connection, authenticated afresh"
    );
}

/// A token the server refuses (`AUTH` fails): reads are misses, the invalidation fails and says why.
#[tokio::test]
async fn a_refused_valkey_token_is_a_miss_and_a_failed_invalidation() {
    let database = valkey::database();
    let cache = valkey_cache(database.cache_as(valkey::CACHE_USER, "not-the-password"));
    let key = key();
    assert_eq!(cache.get(&key).await, None);
    assert_eq!(cache.lease(&key).await, None);
    let error = cache
        .invalidate(std::slice::from_ref(&key))
        .await
        .expect_err("refused");
    let said = error.to_string();
    assert!(
        said.contains("WRONGPASS") || said.contains("uthentication"),
        "{said}"
    );
    assert!(!said.contains("not-the-password"), "{said}");
}

// ---- no stale fill: every interleaving of a reader and the consumer ----

on_both!(a_fill_never_lands_after_an_invalidation_in_any_interleaving);

/// Holds each call at a gate until the test lets it through.
#[derive(Debug)]
struct Gate {
    arrived: mpsc::UnboundedSender<&'static str>,
    permits: Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Gate {
    fn new() -> (
        Arc<Self>,
        mpsc::UnboundedReceiver<&'static str>,
        mpsc::UnboundedSender<()>,
    ) {
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let (permit, permits) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                arrived,
                permits: Mutex::new(permits),
            }),
            arrivals,
            permit,
        )
    }

    async fn pass(&self, step: &'static str) {
        self.arrived.send(step).expect("the test is listening");
        self.permits.lock().await.recv().await.expect("a permit");
    }
}

/// A cache whose every call waits at the gate first.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Cache>,
    gate: Arc<Gate>,
}

impl Cache for Gated {
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Cached>> {
        Box::pin(async move {
            self.gate.pass("get").await;
            self.inner.get(key).await
        })
    }
    fn lease<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Lease>> {
        Box::pin(async move {
            self.gate.pass("lease").await;
            self.inner.lease(key).await
        })
    }
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        lease: &'a Lease,
        value: &'a Cached,
        ttl: Duration,
    ) -> CacheFuture<'a, Filled> {
        Box::pin(async move {
            self.gate.pass("set").await;
            self.inner.set(key, lease, value, ttl).await
        })
    }
    fn invalidate<'a>(&'a self, keys: &'a [CacheKey]) -> CacheFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            self.gate.pass("invalidate").await;
            self.inner.invalidate(keys).await
        })
    }
}

/// Every order of the reader's 4 steps (get, lease, load, set: whatever order the reader takes
/// them in, `reader` stands for its next one) and the consumer's 2 (move, invalidate): 15.
fn interleavings() -> Vec<Vec<&'static str>> {
    let mut orders = Vec::new();
    for first in 0..6 {
        for second in first + 1..6 {
            orders.push(
                (0..6)
                    .map(|position| match position {
                        p if p == first => "move",
                        p if p == second => "invalidate",
                        _ => "reader",
                    })
                    .collect(),
            );
        }
    }
    orders
}

async fn a_fill_never_lands_after_an_invalidation_in_any_interleaving(backend: Backend) {
    let f = Fixture::on(backend).await;
    let orders = interleavings();
    assert_eq!(orders.len(), 15);
    let mut outcomes = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        // User u<n> has two conversations; the message to the older one puts it on top.
        let (user, older, newer) = (
            format!("u{n}"),
            format!("g{n}-older"),
            format!("g{n}-newer"),
        );
        f.table
            .put([
                group_row(&user, &older, T0, "x"),
                group_row(&format!("v{n}"), &older, T0, "x"),
                group_row(&user, &newer, T1, "y"),
            ])
            .await;
        let key = CacheKey::Conversations(user.clone());

        let (reader_gate, mut reader_arrivals, reader_permit) = Gate::new();
        let reader_cache = Gated {
            inner: f.cache.clone(),
            gate: reader_gate.clone(),
        };
        let (consumer_gate, mut consumer_arrivals, consumer_permit) = Gate::new();
        let consumer_app = f.table.app.clone().with_cache(Arc::new(Gated {
            inner: f.cache.clone(),
            gate: consumer_gate,
        }));
        let (client, table) = (f.table.client.clone(), f.table.table().to_owned());
        let reader_user = user.clone();
        let read_key = key.clone();
        let mut reader = Some(tokio::spawn(async move {
            read_through(&reader_cache, &read_key, None, DEFAULT_TTL, || async {
                reader_gate.pass("load").await;
                load_conversations(&client, &table, &reader_user, None).await
            })
            .await
        }));
        let mut consumer = None;
        let mut read = None;
        let mut waiting_at = reader_arrivals.recv().await;
        let mut happened = Vec::new();
        for &step in order {
            match step {
                "move" => {
                    let app = consumer_app.clone();
                    let batch = event(vec![message_record(&older, T2, "new", "1")]);
                    consumer = Some(tokio::spawn(async move {
                        let records = parse_event(&batch).expect("a stream event");
                        messaging_stream::handle(&app, records, None)
                            .await
                            .map(|(response, _)| response)
                    }));
                    // The handler reaches the invalidation only once the rows have moved.
                    assert_eq!(consumer_arrivals.recv().await, Some("invalidate"));
                }
                "invalidate" => {
                    consumer_permit.send(()).unwrap();
                    let response = consumer.take().unwrap().await.unwrap().unwrap();
                    assert!(response.batch_item_failures.is_empty());
                }
                _ => {
                    let reader_step = waiting_at.expect("the reader is at a step");
                    happened.push(reader_step);
                    reader_permit.send(()).unwrap();
                    // The next arrival (or the end of the reader) means this step is done.
                    waiting_at = tokio::select! {
                        next = reader_arrivals.recv() => next,
                        done = reader.as_mut().unwrap() => {
                            read = Some(done.unwrap().unwrap());
                            reader = None;
                            None
                        }
                    };
                    continue;
                }
            }
            happened.push(step);
        }
        if let Some(reader) = reader {
            read = Some(reader.await.unwrap().unwrap());
        }
        let order = &happened;
        assert_eq!(order.len(), 6, "{order:?}");
        let read = read.expect("the reader finished");

        // Whatever the cache holds now is the list as it is after the message.
        let fresh = load_conversations(&f.table.client, f.table.table(), &user, None)
            .await
            .unwrap();
        assert_eq!(groups(&fresh), [older.clone(), newer.clone()]);
        if let Some(cached) = f.cache.get(&key).await {
            let cached: Vec<Entry> = serde_json::from_str(&cached.value).unwrap();
            assert_eq!(cached, fresh, "stale fill in order {order:?}");
        }
        let after = f.reader().conversations(&user, None).await.unwrap();
        assert_eq!(after.entries, fresh, "order {order:?}");
        // The fill is dropped exactly when the invalidation came between the lease and the set.
        let position = |step| order.iter().position(|s| *s == step).unwrap();
        let invalidated_under_lease =
            position("lease") < position("invalidate") && position("invalidate") < position("set");
        let expected = if invalidated_under_lease {
            Filled::LeaseLost
        } else {
            Filled::Stored
        };
        assert_eq!(
            read.served,
            Served::Miss {
                fill: Some(expected)
            },
            "order {order:?}"
        );
        outcomes.push(format!("{}: {}", order.join(" "), read.served));
    }
    eprintln!("{}", outcomes.join("\n"));
}

// ---- the consumer keeps both lists exact ----

on_both!(
    a_message_through_the_handler_invalidates_both_participants_conversation_lists,
    a_new_conversations_first_message_invalidates_both_users_lists,
    a_message_through_the_handler_invalidates_the_groups_message_list,
    an_edit_and_a_delete_through_the_handler_invalidate_both_lists,
    an_invalidation_that_fails_fails_the_group_and_the_retry_completes_it,
);

async fn a_message_through_the_handler_invalidates_both_participants_conversation_lists(
    backend: Backend,
) {
    let f = Fixture::on(backend).await;
    f.table
        .put([
            group_row("a", "g1", T0, "old"),
            group_row("b", "g1", T0, "old"),
            group_row("a", "g2", T1, "newer"),
        ])
        .await;
    let reader = f.reader();
    let first = reader.conversations("a", None).await.unwrap();
    assert_eq!(
        (groups(&first.entries), first.served),
        (
            vec!["g2".into(), "g1".into()],
            Served::Miss {
                fill: Some(Filled::Stored)
            }
        )
    );
    reader.conversations("b", None).await.unwrap();
    assert_eq!(
        reader.conversations("a", None).await.unwrap().served,
        Served::Hit
    );
    assert_eq!(
        reader.conversations("b", None).await.unwrap().served,
        Served::Hit
    );

    let response = f
        .invoke(
            &f.app,
            event(vec![message_record("g1", T2, "hello", "100")]),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());

    let after = reader.conversations("a", None).await.unwrap();
    assert_eq!(
        after.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(groups(&after.entries), ["g1", "g2"]);
    assert_eq!(after.entries[0].message, "hello");
    assert_eq!(after.entries[0].created_at, T2);
    let b = reader.conversations("b", None).await.unwrap();
    assert_eq!(
        (b.served, b.entries[0].created_at.as_str()),
        (
            Served::Miss {
                fill: Some(Filled::Stored)
            },
            T2
        )
    );
    assert_eq!(
        reader.conversations("a", None).await.unwrap().served,
        Served::Hit
    );
}

/// A new conversation's rows are written by the app, never by the function; its first message still
/// reaches the function, which finds both rows at that message and invalidates both lists.
async fn a_new_conversations_first_message_invalidates_both_users_lists(backend: Backend) {
    use ddb::commands::{seed, write};
    let f = Fixture::on(backend).await;
    f.table
        .put([group_row(seed::ANDREW.uuid, "g-old", T0, "x")])
        .await;
    let reader = f.reader();
    for user in [seed::ANDREW.uuid, seed::VLAD.uuid] {
        reader.conversations(user, None).await.unwrap();
        assert_eq!(
            reader.conversations(user, None).await.unwrap().served,
            Served::Hit
        );
    }

    let written = write::new_conversation(
        &f.table.client,
        f.table.table(),
        &seed::ANDREW,
        &seed::VLAD,
        "first",
    )
    .await
    .unwrap();
    let response = f
        .invoke(
            &f.app,
            event(vec![message_record(
                &written.message_group_uuid,
                &written.created_at,
                "first",
                "9",
            )]),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());

    for user in [seed::ANDREW.uuid, seed::VLAD.uuid] {
        let read = reader.conversations(user, None).await.unwrap();
        assert_eq!(
            read.served,
            Served::Miss {
                fill: Some(Filled::Stored)
            },
            "{user}"
        );
        assert_eq!(read.entries[0].uuid, written.message_group_uuid);
    }
}

async fn a_message_through_the_handler_invalidates_the_groups_message_list(backend: Backend) {
    let f = Fixture::on(backend).await;
    f.table
        .put([
            group_row("a", "g", T0, "m0"),
            message_item_with_uuid("g", T0, "m0", "text m0"),
            message_item_with_uuid("g", T1, "m1", "text m1"),
        ])
        .await;
    let reader = f.reader();
    let first = reader.messages("g", Some(20)).await.unwrap();
    assert_eq!(groups(&first.entries), ["m1", "m0"]);
    assert_eq!(
        reader.messages("g", Some(2)).await.unwrap().served,
        Served::Hit
    );

    // The app writes the message; the stream brings it to the function.
    f.table
        .put([message_item_with_uuid("g", T2, "m2", "text m2")])
        .await;
    assert_eq!(
        reader.messages("g", Some(20)).await.unwrap().served,
        Served::Hit,
        "until the stream delivers it, the cached list is what readers get"
    );
    let response = f
        .invoke(&f.app, event(vec![message_record("g", T2, "text m2", "7")]))
        .await;
    assert!(response.batch_item_failures.is_empty());

    let after = reader.messages("g", Some(20)).await.unwrap();
    assert_eq!(
        after.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(groups(&after.entries), ["m2", "m1", "m0"]);
}

/// An edit rewrites the row's text in place, a delete makes it fall back: both lists follow.
async fn an_edit_and_a_delete_through_the_handler_invalidate_both_lists(backend: Backend) {
    let f = Fixture::on(backend).await;
    let first = message_item_with_uuid("g", T0, "m0", "first");
    let mut last = message_item_with_uuid("g", T1, "m1", "hi");
    f.table
        .put([group_row("a", "g", T1, "hi"), first, last.clone()])
        .await;
    let reader = f.reader();
    let fill = |reader: Reader| async move {
        reader.conversations("a", None).await.unwrap();
        reader.messages("g", None).await.unwrap();
        assert_eq!(
            reader.conversations("a", None).await.unwrap().served,
            Served::Hit
        );
        assert_eq!(
            reader.messages("g", None).await.unwrap().served,
            Served::Hit
        );
    };
    fill(reader.clone()).await;

    // The app edits the last message; the stream brings the MODIFY.
    last.insert("message".into(), items::attr("hi, edited"));
    f.table.put([last]).await;
    let response = f
        .invoke(
            &f.app,
            event(vec![items::edit_record("g", T1, "hi, edited", "20")]),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());
    let list = reader.conversations("a", None).await.unwrap();
    assert_eq!(
        list.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(list.entries[0].message, "hi, edited");
    let messages = reader.messages("g", None).await.unwrap();
    assert_eq!(
        messages.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(messages.entries[0].message, "hi, edited");

    // The app deletes it; the row falls back to the message before.
    f.table
        .client
        .delete_item()
        .table_name(f.table.table())
        .key("pk", items::attr("MSG#g"))
        .key("sk", items::attr(T1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reader.conversations("a", None).await.unwrap().served,
        Served::Hit
    );
    let response = f
        .invoke(&f.app, event(vec![items::remove_record("g", T1, "21")]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let list = reader.conversations("a", None).await.unwrap();
    assert_eq!(
        list.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(
        (
            list.entries[0].created_at.as_str(),
            list.entries[0].message.as_str()
        ),
        (T0, "first")
    );
    let messages = reader.messages("g", None).await.unwrap();
    assert_eq!(groups(&messages.entries), ["m0"]);
}

async fn an_invalidation_that_fails_fails_the_group_and_the_retry_completes_it(backend: Backend) {
    let f = Fixture::on(backend).await;
    f.table
        .put([
            group_row("a", "g1", T0, "old"),
            group_row("b", "g1", T0, "old"),
            group_row("a", "g2", T1, "newer"),
        ])
        .await;
    let reader = f.reader();
    reader.conversations("a", None).await.unwrap();
    let failing = FailingInvalidations::start(&f).await;
    let app = f.table.app.clone().with_cache(failing.cache.clone());
    let batch = event(vec![message_record("g1", T2, "hello", "100")]);

    let response = f.invoke(&app, batch.clone()).await;

    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["100"],
        "the group failed: Lambda retries from its record"
    );
    failing.heal().await;
    assert_eq!(
        f.table.row_summaries("g1").await[0].1,
        T2,
        "the rows moved all the same"
    );
    assert_eq!(
        reader.conversations("a", None).await.unwrap().served,
        Served::Hit,
        "stale until the retry"
    );

    // Lambda's retry: the rows are already at the message; the invalidation is made again.
    let retried = f.invoke(&app, batch).await;
    assert!(retried.batch_item_failures.is_empty());
    let after = reader.conversations("a", None).await.unwrap();
    assert_eq!(
        after.served,
        Served::Miss {
            fill: Some(Filled::Stored)
        }
    );
    assert_eq!(groups(&after.entries), ["g1", "g2"]);
}

/// The function's cache, failing its first invalidation: on DynamoDB through a proxy that fails both
/// attempts of the first BatchWriteItem; on Valkey as a user refused `DEL`, until [`Self::heal`] grants it.
struct FailingInvalidations {
    cache: Arc<dyn Cache>,
    proxy: Option<Proxy>,
    user: Option<String>,
}

impl FailingInvalidations {
    async fn start(f: &Fixture) -> Self {
        match &f.valkey {
            None => {
                let proxy = Proxy::start(
                    local::address(),
                    FaultPlan::none()
                        .first(2, Fault::InternalError)
                        .only(&["BatchWriteItem"]),
                )
                .await
                .unwrap();
                let log = RequestLog::new();
                let cache = cache_on(
                    f.client_via(&proxy.endpoint_url(), 2, &log).await,
                    &f.cache_table,
                    f.clock.clone(),
                );
                Self {
                    cache: Arc::new(cache),
                    proxy: Some(proxy),
                    user: None,
                }
            }
            Some(database) => {
                let user = format!("nodel-{}", uuid::Uuid::new_v4().simple());
                let password = uuid::Uuid::new_v4().simple().to_string();
                let secret = format!(">{password}");
                valkey::set_user(
                    &user,
                    &[
                        "on",
                        &secret,
                        "~conversations#*",
                        "~messages#*",
                        "+@all",
                        "-@dangerous",
                        "-del",
                    ],
                )
                .await;
                let cache = valkey_cache(database.cache_as(&user, &password));
                Self {
                    cache: Arc::new(cache),
                    proxy: None,
                    user: Some(user),
                }
            }
        }
    }

    /// After the failed invalidation: the faults were the ones planned, and the next one succeeds.
    async fn heal(&self) {
        if let Some(proxy) = &self.proxy {
            assert_eq!(proxy.counts().faults_of(Fault::InternalError), 2);
        }
        if let Some(user) = &self.user {
            valkey::set_user(user, &["+del"]).await;
        }
    }
}

// ---- requests ----

#[tokio::test]
async fn with_the_cache_off_the_handler_makes_the_same_requests_as_before_and_one_more_with_it() {
    let f = Fixture::new().await;
    f.table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    assert!(f.table.app.cache.is_none(), "TestTable's app has no cache");
    let config = local::config_for(local::endpoint(), f.table.table());
    assert!(
        App::from_config(config.clone()).await.cache.is_none(),
        "CACHE_TABLE_NAME unset: off"
    );
    let with_table = messaging_stream::Config {
        cache_table_name: Some(f.cache_table.clone()),
        ..config
    };
    assert!(App::from_config(with_table).await.cache.is_some());
    f.table.requests.reset();

    f.invoke(&f.table.app, event(vec![message_record("g", T1, "m", "1")]))
        .await;
    let off = f.table.requests.counts();
    f.table.requests.reset();
    f.invoke(&f.app, event(vec![message_record("g", T2, "m", "2")]))
        .await;
    let on = f.table.requests.counts();

    let expected_off = BTreeMap::from([
        ("Query".to_owned(), 1),
        ("TransactWriteItems".to_owned(), 1),
    ]);
    assert_eq!(off, expected_off);
    let mut expected_on = expected_off;
    expected_on.insert("BatchWriteItem".to_owned(), 1);
    assert_eq!(
        on, expected_on,
        "messages#g, conversations#a and #b in one request"
    );
}

#[tokio::test]
async fn a_group_chat_of_60_invalidates_61_keys_in_3_requests() {
    let f = Fixture::new().await;
    let owners: Vec<String> = (0..60).map(|i| format!("o{i:02}")).collect();
    f.table
        .put(owners.iter().map(|o| group_row(o, "big", T0, "x")))
        .await;
    let reader = f.reader();
    let filled = Served::Miss {
        fill: Some(Filled::Stored),
    };
    let mut keys: Vec<CacheKey> = owners
        .iter()
        .map(|o| CacheKey::Conversations(o.clone()))
        .collect();
    keys.push(CacheKey::Messages("big".into()));
    for owner in &owners {
        let read = reader.conversations(owner, None).await.unwrap();
        assert_eq!(read.served, filled, "{owner}'s list");
    }
    assert_eq!(reader.messages("big", None).await.unwrap().served, filled);
    for key in &keys {
        assert!(f.cache.get(key).await.is_some(), "{} is cached", key.id());
    }
    f.table.requests.reset();

    let response = f
        .invoke(&f.app, event(vec![message_record("big", T3, "all", "5")]))
        .await;

    assert!(response.batch_item_failures.is_empty());
    // 61 keys (60 lists and the group's messages), 25 a request: 3 requests, each key once.
    assert_eq!(f.table.requests.counts().get("BatchWriteItem"), Some(&3));
    let cache_resource = format!("table/{}", f.cache_table);
    let deleted: std::collections::BTreeSet<String> = f
        .table
        .requests
        .iam_uses()
        .into_iter()
        .filter(|u| u.action == "dynamodb:BatchWriteItem" && u.resource == cache_resource)
        .filter_map(|u| u.leading_key)
        .collect();
    let expected: std::collections::BTreeSet<String> = keys.iter().map(CacheKey::id).collect();
    assert_eq!(deleted.len(), 61);
    assert_eq!(deleted, expected);
    for key in &keys {
        assert!(
            f.cache.get(key).await.is_none(),
            "{} is still cached",
            key.id()
        );
    }
}

/// `VALKEY_ENDPOINT`, `VALKEY_USER` and `VALKEY_CACHE_NAME` give the function the Valkey cache, as that
/// user, authenticating with IAM tokens for that cache (no password anywhere).
#[tokio::test]
async fn valkey_settings_give_the_function_a_valkey_cache_with_iam_tokens() {
    let settings = messaging_stream::config::ValkeySettings {
        host: "cruddur-cache-prod-abc123.serverless.use1.cache.amazonaws.com".into(),
        port: 6379,
        user: "cruddur-messaging-stream".into(),
        cache_name: "cruddur-cache-prod".into(),
    };
    let config = messaging_stream::Config {
        valkey: Some(settings),
        ..local::config_for(&closed_port(), "messages")
    };
    let app = App::from_config(config).await;
    let shown = format!("{:?}", app.cache.expect("a cache"));
    for part in [
        "ValkeyCache",
        "abc123.serverless.use1.cache.amazonaws.com",
        "port: 6379",
        "user: \"cruddur-messaging-stream\"",
        "IamToken",
        "cache_name: \"cruddur-cache-prod\"",
        "serverless: true",
        "own_root: false",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
}

/// On Valkey the same group chat's 61 keys are all invalidated (sent as one pipeline of single-key
/// deletes; the round trips are not counted here).
#[tokio::test]
async fn a_group_chat_of_60_invalidates_its_61_keys_on_valkey() {
    let f = Fixture::on(Backend::Valkey).await;
    let owners: Vec<String> = (0..60).map(|i| format!("o{i:02}")).collect();
    f.table
        .put(owners.iter().map(|o| group_row(o, "big", T0, "x")))
        .await;
    let reader = f.reader();
    let mut keys: Vec<CacheKey> = owners
        .iter()
        .map(|o| CacheKey::Conversations(o.clone()))
        .collect();
    keys.push(CacheKey::Messages("big".into()));
    for owner in &owners {
        reader.conversations(owner, None).await.unwrap();
    }
    reader.messages("big", None).await.unwrap();
    for key in &keys {
        assert!(f.stored(key).await.is_some(), "{} is cached", key.id());
    }

    let response = f
        .invoke(&f.app, event(vec![message_record("big", T3, "all", "5")]))
        .await;

    assert!(response.batch_item_failures.is_empty());
    for key in &keys {
        assert_eq!(f.stored(key).await, None, "{} is still cached", key.id());
    }
}

/// ElastiCache Serverless runs in cluster mode only (all hash slots shown on one virtual node; no
/// `SELECT`, database 0 only). On a cluster-mode server the backend's whole protocol works: one
/// connection, every command and script on one key, a group's keys in many slots deleted in one
/// round trip. The same server refuses a connection that selects another database, which is what
/// the plain client would do there if it ever asked for one.
#[tokio::test]
async fn the_valkey_protocol_works_on_a_cluster_mode_server_as_elasticache_serverless_runs() {
    let database = valkey::cluster_database();
    let mut admin = database.admin().await;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    let cache = valkey_cache(database.cache());
    let key = key();
    let lease = cache.lease(&key).await.expect("the lease script runs");
    assert!(cache.lease(&key).await.is_none());
    assert_eq!(
        cache.set(&key, &lease, &value("v"), DEFAULT_TTL).await,
        Filled::Stored
    );
    assert_eq!(cache.get(&key).await, Some(value("v")));

    // 61 keys of one group chat, spread over many hash slots.
    let group = uuid::Uuid::new_v4().to_string();
    let mut keys: Vec<CacheKey> = (0..60)
        .map(|i| CacheKey::Conversations(format!("{group}-o{i:02}")))
        .collect();
    keys.push(CacheKey::Messages(group));
    let mut slots = std::collections::BTreeSet::new();
    for k in &keys {
        let lease = cache.lease(k).await.unwrap();
        cache.set(k, &lease, &value("x"), DEFAULT_TTL).await;
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k.id())
            .query_async(&mut admin)
            .await
            .unwrap();
        slots.insert(slot);
    }
    assert!(slots.len() > 50, "the keys are in {} slots", slots.len());
    cache
        .invalidate(&keys)
        .await
        .expect("one pipeline of single-key DELs");
    for k in &keys {
        assert_eq!(cache.get(k).await, None, "{} is still cached", k.id());
    }

    let selecting = valkey_cache(
        database
            .cache()
            .with_endpoint(database.endpoint().with_database(1)),
    );
    assert!(
        selecting
            .invalidate(std::slice::from_ref(&key))
            .await
            .is_err(),
        "a cluster-mode server refuses SELECT"
    );
    assert_eq!(
        cache.get(&key).await,
        Some(value("v")),
        "the refused client deleted nothing"
    );
}

/// policies/execution-cache-dynamodb.json allows exactly the calls the function makes on the cache table.
#[tokio::test]
async fn the_execution_policy_allows_exactly_what_the_handler_does_on_the_cache_table() {
    use std::collections::BTreeSet;
    let f = Fixture::new().await;
    f.table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    f.table.requests.reset();
    f.invoke(&f.app, event(vec![message_record("g", T1, "m", "1")]))
        .await;
    let cache_resource = format!("table/{}", f.cache_table);
    let used: Vec<_> = f
        .table
        .requests
        .iam_uses()
        .into_iter()
        .filter(|u| u.resource == cache_resource)
        .collect();
    assert!(!used.is_empty());

    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/execution-cache-dynamodb.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let arn = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppName}-cache-${Env}";
    let mut permitted = BTreeSet::new();
    let mut patterns = Vec::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(statement["Resource"], arn, "the cache table alone");
        for action in statement["Action"].as_array().unwrap() {
            permitted.insert(action.as_str().unwrap().to_owned());
        }
        let keys = statement
            .pointer("/Condition/ForAllValues:StringLike/dynamodb:LeadingKeys")
            .expect("a LeadingKeys condition");
        patterns.extend(
            keys.as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
    }
    let performed: BTreeSet<String> = used.iter().map(|u| u.action.clone()).collect();
    assert_eq!(performed, permitted);
    for use_ in &used {
        let key = use_.leading_key.as_deref().expect("a key");
        assert!(
            patterns
                .iter()
                .any(|p| key.starts_with(p.trim_end_matches('*'))),
            "{use_:?} is outside {patterns:?}"
        );
    }
}

// ---- the developer CLI ----

fn ddb(table: &str, args: &[&str]) -> std::process::Output {
    ddb_command(table).args(args).output().expect("run ddb")
}

fn ddb_command(table: &str) -> std::process::Command {
    bin::ddb_on(local::endpoint(), table)
}

#[test]
fn ddb_reads_through_the_cache_when_a_cache_table_is_set_and_says_hit_or_miss() {
    let table = local::unique_table();
    let cache_table = format!("cache-{}", uuid::Uuid::new_v4().simple());
    let loaded = ddb(
        &table,
        &["--cache-table", &cache_table, "schema-load", "--cache"],
    );
    assert!(loaded.status.success(), "{loaded:?}");
    let out = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        out.contains(&format!("cache table {cache_table}: New")),
        "{out}"
    );
    assert!(ddb(&table, &["seed"]).status.success());
    let read = |args: &[&str]| {
        let output = ddb(&table, args);
        assert!(output.status.success(), "{output:?}");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let cached = ["--cache-table", cache_table.as_str(), "--json"];

    let (first, miss) = read(&[&cached[..], &["conversations", "andrewbrown"]].concat());
    let (second, hit) = read(&[&cached[..], &["conversations", "andrewbrown"]].concat());
    let (direct, bypass) =
        read(&[&cached[..], &["conversations", "andrewbrown", "--no-cache"]].concat());

    assert!(
        miss.contains("cache miss (filled) (conversations#"),
        "{miss}"
    );
    assert!(hit.contains("cache hit (conversations#"), "{hit}");
    assert!(
        hit.contains(&format!(" in cache table {cache_table})")),
        "which cache: {hit}"
    );
    assert!(!bypass.contains("cache"), "{bypass}");
    assert_eq!(first, second);
    let entries: Vec<serde_json::Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!entries.is_empty());
    for key in ["uuid", "display_name", "handle", "message", "created_at"] {
        assert!(entries[0].get(key).is_some(), "{key} in {}", entries[0]);
    }
    // The cached list and the table's, line for line: the same conversations in the same order with
    // the same names and text. (`--no-cache` prints the rows as stored, a cache hit the app's entries;
    // compared on what both carry: the entry's fields and the rows' attributes they come from.)
    let shared = |line: &serde_json::Value| {
        let field = |entry: &str, row: &str| {
            line.get(entry)
                .or_else(|| line.get(row))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_else(|| panic!("{entry} (or {row}) in {line}"))
                .to_owned()
        };
        [
            field("uuid", "message_group_uuid"),
            field("display_name", "user_display_name"),
            field("handle", "user_handle"),
            field("message", "message"),
            field("created_at", "sk"),
        ]
    };
    let direct: Vec<_> = direct
        .lines()
        .map(|l| shared(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(entries.iter().map(shared).collect::<Vec<_>>(), direct);

    let group = entries[0]["uuid"].as_str().unwrap().to_owned();
    let (_, miss) = read(&[&cached[..], &["messages", &group, "--limit", "5"]].concat());
    let (messages, hit) = read(&[&cached[..], &["messages", &group, "--limit", "5"]].concat());
    assert!(miss.contains("cache miss (filled)"), "{miss}");
    assert!(hit.contains("cache hit (messages#"), "{hit}");
    assert_eq!(messages.lines().count(), 5);
}

/// With `VALKEY_ENDPOINT` (and, locally, the ACL user's password and the server's CA), `ddb` reads through
/// the Valkey cache: a miss that fills, then a hit, the same lines; the entry is in Valkey, under the key
/// the function invalidates.
#[test]
fn ddb_reads_through_the_valkey_cache_when_valkey_is_set() {
    use ddb::commands::seed;
    let table = local::unique_table();
    assert!(ddb(&table, &["schema-load"]).status.success());
    assert!(ddb(&table, &["seed"]).status.success());
    let read = |args: &[&str]| {
        let output = ddb_command(&table)
            .envs(valkey::ddb_environment())
            .args(args)
            .output()
            .expect("run ddb");
        assert!(output.status.success(), "{output:?}");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (first, miss) = read(&["--json", "conversations", "andrewbrown"]);
    let (second, hit) = read(&["--json", "conversations", "andrewbrown"]);
    let (direct, bypass) = read(&["--json", "conversations", "andrewbrown", "--no-cache"]);
    assert!(
        miss.contains("cache miss (filled) (conversations#"),
        "{miss}"
    );
    assert!(hit.contains("cache hit (conversations#"), "{hit}");
    assert!(
        hit.contains(" in Valkey at 127.0.0.1:"),
        "which cache: {hit}"
    );
    assert!(!bypass.contains("cache"), "{bypass}");
    assert_eq!(first, second);
    assert_eq!(first, direct);
    assert!(first.lines().count() > 1, "{first}");

    let stored: Option<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut admin = valkey::ddb_database().admin().await;
        redis::cmd("HGET")
            .arg(CacheKey::Conversations(seed::ANDREW.uuid.to_owned()).id())
            .arg(CACHED_VALUE)
            .query_async(&mut admin)
            .await
            .unwrap()
    });
    let stored: Vec<Entry> = serde_json::from_str(&stored.expect("the entry in Valkey")).unwrap();
    let printed: Vec<Entry> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored, printed);
}

/// Issue 16, item 7: `--json` prints the app's five fields whether a cache is set or not, so a script does not
/// break when someone sets CACHE_TABLE_NAME: the same bytes from the table, from a miss and from a hit.
/// `--items` prints the rows themselves.
#[test]
fn ddb_json_is_one_shape_with_or_without_a_cache() {
    let table = local::unique_table();
    let cache_table = format!("cache-{}", uuid::Uuid::new_v4().simple());
    assert!(ddb(
        &table,
        &["--cache-table", &cache_table, "schema-load", "--cache"]
    )
    .status
    .success());
    assert!(ddb(&table, &["seed"]).status.success());
    let read = |args: &[&str]| -> (String, String) {
        let output = ddb(&table, args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let values = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };
    let fields = ["created_at", "display_name", "handle", "message", "uuid"];
    for list in [
        vec!["conversations", "andrewbrown"],
        vec![
            "messages",
            "8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05",
            "--limit",
            "7",
        ],
    ] {
        let (plain, said) = read(&[&["--json"], &list[..]].concat());
        assert!(!said.contains("cache"), "no cache, no word of it: {said}");
        let with = [
            &["--json", "--cache-table", cache_table.as_str()],
            &list[..],
        ]
        .concat();
        let (miss, said_miss) = read(&with);
        let (hit, said_hit) = read(&with);
        assert!(said_miss.contains("cache miss (filled)"), "{said_miss}");
        assert!(said_hit.contains("cache hit"), "{said_hit}");
        let (bypassed, _) = read(&[&with[..], &["--no-cache"]].concat());
        let expected = values(&plain);
        assert!(expected.len() > 1, "{list:?}: {plain}");
        for entry in &expected {
            let keys: Vec<&str> = entry
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, fields, "{entry}");
        }
        for (how, text) in [("miss", &miss), ("hit", &hit), ("--no-cache", &bypassed)] {
            assert_eq!(values(text), expected, "{list:?} {how}");
            assert_eq!(text, &plain, "{list:?} {how}: byte for byte");
        }
        // The rows themselves, when asked for: the table's attributes, not the app's entry.
        let (items, _) = read(&[&["--json"], &list[..], &["--items"]].concat());
        let items = values(&items);
        assert_eq!(items.len(), expected.len());
        assert!(
            items[0].get("pk").is_some() && items[0].get("uuid").is_none(),
            "{}",
            items[0]
        );
    }
    // The readers' TTL is checked only where a reader fills.
    let bad_ttl = |args: &[&str]| {
        ddb_command(&table)
            .args(args)
            .env("CACHE_TTL_SECONDS", "0")
            .output()
            .unwrap()
    };
    let refused = bad_ttl(&[
        "--cache-table",
        &cache_table,
        "conversations",
        "andrewbrown",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CACHE_TTL_SECONDS=\"0\" is not valid"),
        "{refused:?}"
    );
    assert!(bad_ttl(&["conversations", "andrewbrown"]).status.success());
}
