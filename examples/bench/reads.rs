//! The read table: a conversation-list read through the cache (hit, miss) against the table directly,
//! and the hit ratio over a soak of messages and reads with the consumer invalidating.
//!
//! Its own tables (`bench-reads`, `bench-reads-cache`) on the bench's DynamoDB Local. Per read:
//! requests (the SDK interceptor's count of HTTP attempts), read and write capacity (computed from
//! the items' sizes by DynamoDB's published rules: DynamoDB Local reports none), and wall time
//! through the delay proxy at each RTT. "direct" is the read the app makes today (an eventually
//! consistent Query, `ddb::reads::List::Conversations.rows`); the cached reader's miss path reads the table
//! strongly consistently, as the lease protocol needs (docs/CACHE.md).
//!
//! The Valkey backend is read through the same [`Reader`], on testkit's TLS `redis-server`, behind a
//! plain TCP relay that adds the same RTT ([`crate::tcp_delay`]; the fault proxy speaks only HTTP);
//! its round trips are the client's writes the relay forwarded. It costs no capacity units: only the
//! miss's Query reads the table.

use crate::latency;
use crate::prices;
use crate::report::{self, Calibration, Stats};
use crate::tcp_delay::TcpDelay;
use anyhow::ensure;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ddb::commands::schema;
use ddb::reads::{Consistency, Entry, List, Reader, Served};
use messaging_stream::cache::dynamo::DynamoCache;
use messaging_stream::cache::{Cache, CacheKey, Filled, DEFAULT_TTL};
use messaging_stream::plan::Item;
use messaging_stream::store::Store;
use messaging_stream::App;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::fault_proxy::{FaultPlan, Proxy};
use testkit::request_log::RequestLog;
use testkit::{items, local, valkey};

const TABLE: &str = "bench-reads";
const CACHE_TABLE: &str = "bench-reads-cache";
/// A typical chat line: the last message a conversation row carries.
const MESSAGE: &str =
    "Sounds good, see you at the station at nine. Bring the blue folder, I left mine on the desk.";

/// How one list was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Today's read: an eventually consistent Query.
    Direct,
    /// A hit: one consistent GetItem.
    Hit,
    /// A miss: GetItem, lease (UpdateItem), consistent Query, fill (PutItem).
    Miss,
    /// A Valkey hit: one HMGET.
    ValkeyHit,
    /// A Valkey miss: HMGET, the lease script, consistent Query, the fill script.
    ValkeyMiss,
}

impl Mode {
    fn title(self) -> &'static str {
        match self {
            Mode::Direct => "direct (no cache)",
            Mode::Hit => "DynamoDB cache: hit",
            Mode::Miss => "DynamoDB cache: miss + fill",
            Mode::ValkeyHit => "Valkey: hit",
            Mode::ValkeyMiss => "Valkey: miss + fill",
        }
    }

    fn valkey(self) -> bool {
        matches!(self, Mode::ValkeyHit | Mode::ValkeyMiss)
    }

    fn hit(self) -> bool {
        matches!(self, Mode::Hit | Mode::ValkeyHit)
    }
}

/// Which cache a soak used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Dynamo,
    Valkey,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadCell {
    pub conversations: usize,
    pub limit: Option<u32>,
    pub latency_ms: u64,
    pub mode: Mode,
    pub requests: BTreeMap<String, u64>,
    pub read_units: f64,
    pub write_units: f64,
    /// Valkey round trips of one read (client writes through the relay); `None` for DynamoDB.
    pub valkey_round_trips: Option<u64>,
    /// Bytes of one read through the relay, both ways (TLS records); `None` for DynamoDB.
    pub valkey_bytes: Option<u64>,
    pub runs_s: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    pub backend: Backend,
    pub users: usize,
    pub reads_per_message: usize,
    pub operations: usize,
    pub reads: usize,
    pub messages: usize,
    pub hits: usize,
    /// Reads whose answer differed from the table read right after: must be 0.
    pub stale: usize,
    /// Requests of the whole soak on each table.
    pub requests: BTreeMap<String, u64>,
    /// DynamoDB requests of the consumer per message (handler calls only).
    pub message_requests: f64,
    /// Valkey round trips of the consumer per message (handler calls only; `None` for DynamoDB).
    pub message_valkey_round_trips: Option<f64>,
    /// Bytes the consumer's invalidations carried per message, both ways (`None` for DynamoDB).
    pub message_valkey_bytes: Option<f64>,
    /// Keys a message invalidates: each member's conversation list and the group's messages.
    pub keys_per_message: usize,
    /// Valkey round trips of the whole soak (`None` for DynamoDB).
    pub valkey_round_trips: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reads {
    pub calibration: Vec<Calibration>,
    /// The Valkey relay's, as `calibration` is the proxy's.
    pub valkey_calibration: Vec<Calibration>,
    /// At each RTT: a new Valkey cache's first read (TCP, TLS, AUTH, SELECT, then HMGET) and the median of
    /// its next 10, in ms.
    pub valkey_first_read_ms: Vec<(u64, f64, f64)>,
    pub cells: Vec<ReadCell>,
    pub soaks: Vec<Soak>,
    pub value_bytes: BTreeMap<usize, usize>,
}

/// DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers ~1 byte per 2 digits + 1).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    AttributeValue::Bool(_) => 1,
                    _ => 8,
                }
        })
        .sum()
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn timestamp(i: usize) -> String {
    (chrono::DateTime::from_timestamp(1_735_725_600 + i as i64 * 60, 0).expect("in range"))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn row(owner: &str, group: &str, sk: &str) -> Item {
    let mut item = items::group_row(owner, group, sk, MESSAGE);
    item.insert("user_display_name".into(), items::attr("Londo Mollari"));
    item.insert("user_handle".into(), items::attr("londo"));
    item
}

async fn put_all(client: &Client, table: &str, items: Vec<Item>) -> anyhow::Result<()> {
    for chunk in items.chunks(25) {
        let mut pending: Vec<_> = chunk
            .iter()
            .map(|item| {
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(
                        aws_sdk_dynamodb::types::PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .expect("item"),
                    )
                    .build()
            })
            .collect();
        while !pending.is_empty() {
            pending = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await?
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(())
}

async fn fresh_tables(direct: &Client) -> anyhow::Result<()> {
    for table in [TABLE, CACHE_TABLE] {
        let _ = direct.delete_table().table_name(table).send().await;
    }
    schema::create_table(
        direct,
        TABLE,
        messaging_stream::model::DEFAULT_GROUP_INDEX_NAME,
    )
    .await?;
    schema::create_cache_table(direct, CACHE_TABLE).await?;
    Ok(())
}

/// The whole read part: cells at each RTT, then the soaks (no added RTT).
pub async fn measure(
    upstream: SocketAddr,
    endpoint: &str,
    latencies_ms: &[u64],
    repeats: usize,
    soak_operations: usize,
) -> anyhow::Result<Reads> {
    let direct = local::client_for(&local::config_for(endpoint, TABLE), &RequestLog::new()).await;
    fresh_tables(&direct).await?;
    let sizes = [20usize, 200];
    let mut rows = Vec::new();
    for &n in &sizes {
        for i in 0..n {
            rows.push(row(
                &format!("u{n}"),
                &format!("g{n}-{i:03}"),
                &timestamp(i),
            ));
        }
    }
    let bytes_of = |n: usize| -> usize {
        rows.iter()
            .filter(|r| items::s(r, "pk") == format!("GRP#u{n}"))
            .map(item_size)
            .sum()
    };
    let mut value_bytes = BTreeMap::new();
    put_all(&direct, TABLE, rows.clone()).await?;

    let valkey_db = valkey::database();
    let valkey_server: SocketAddr = (
        valkey_db.endpoint().host.parse::<std::net::IpAddr>()?,
        valkey_db.endpoint().port,
    )
        .into();
    let mut calibration = Vec::new();
    let mut valkey_calibration = Vec::new();
    let mut valkey_first_read_ms = Vec::new();
    let mut cells = Vec::new();
    for &latency_ms in latencies_ms {
        let proxy = Proxy::start(
            upstream,
            FaultPlan::with_latency(Duration::from_millis(latency_ms)),
        )
        .await?;
        let tuned = latency::tune(&direct, &proxy, latency_ms).await?;
        println!(
            "\n== reads, RTT {latency_ms} ms (the proxy adds {:.2} ms, measured)",
            tuned.added_ms
        );
        calibration.push(tuned);
        let log = RequestLog::new();
        let client =
            local::client_for(&local::config_for(&proxy.endpoint_url(), TABLE), &log).await;
        let cache = Arc::new(DynamoCache::new(client.clone(), CACHE_TABLE));
        let reader = Reader::new(client.clone(), TABLE).with_cache(cache.clone(), DEFAULT_TTL);
        let relay = TcpDelay::start(valkey_server, Duration::from_millis(latency_ms)).await?;
        let mut relayed = valkey_db.endpoint();
        relayed.port = relay.port();
        let vcache = Arc::new(valkey_db.cache().with_endpoint(relayed));
        let vreader = Reader::new(client.clone(), TABLE).with_cache(vcache.clone(), DEFAULT_TTL);
        let vcal = latency::tune_relay(&valkey_db.cache(), &vcache, &relay, latency_ms).await;
        println!(
            "   Valkey through the TCP relay (it adds {:.2} ms, measured)",
            vcal.added_ms
        );
        valkey_calibration.push(vcal);
        let fresh = valkey_db.cache().with_endpoint(vcache.endpoint().clone());
        let probe = CacheKey::Conversations("first-connection".into());
        let mut times = Vec::new();
        for _ in 0..11 {
            let started = Instant::now();
            fresh.get(&probe).await;
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let first = times.remove(0);
        let next = report::stats(&times).expect("ten reads").median;
        println!(
            "   Valkey: a new connection's first read {first:.2} ms, the next 10 {next:.2} ms (median)"
        );
        valkey_first_read_ms.push((latency_ms, first, next));
        for &(n, limit) in &[(20usize, None), (200, None), (200, Some(20u32))] {
            let user = format!("u{n}");
            let key = CacheKey::Conversations(user.clone());
            let listed = limit.map_or(n, |l| l as usize);
            let query_bytes: usize = if listed == n {
                bytes_of(n)
            } else {
                bytes_of(n) * listed / n
            };
            for mode in [
                Mode::Direct,
                Mode::Miss,
                Mode::Hit,
                Mode::ValkeyMiss,
                Mode::ValkeyHit,
            ] {
                let (cache, reader): (&dyn Cache, &Reader) = if mode.valkey() {
                    (vcache.as_ref(), &vreader)
                } else {
                    (cache.as_ref(), &reader)
                };
                let mut runs = Vec::new();
                let mut requests = BTreeMap::new();
                let (mut round_trips, mut bytes) = (0, 0);
                let mut value_len = 0;
                for run in 0..=repeats {
                    if mode != Mode::Direct && (!mode.hit() || run == 0) {
                        cache.invalidate(std::slice::from_ref(&key)).await?;
                    }
                    if mode.hit() && run == 0 {
                        reader.conversations(&user, limit).await?; // fills
                    }
                    log.reset();
                    relay.reset();
                    let started = Instant::now();
                    let count = match mode {
                        Mode::Direct => List::Conversations
                            .rows(
                                &client,
                                TABLE,
                                &user,
                                limit.map(|l| l as usize),
                                Consistency::Eventual,
                            )
                            .await?
                            .len(),
                        _ => {
                            let read = reader.conversations(&user, limit).await?;
                            let expected = if mode.hit() {
                                Served::Hit
                            } else {
                                Served::Miss {
                                    fill: Some(Filled::Stored),
                                }
                            };
                            ensure!(
                                read.served == expected,
                                "{mode:?} read served {}",
                                read.served
                            );
                            value_len = serde_json::to_string(&read.entries)?.len();
                            read.entries.len()
                        }
                    };
                    let elapsed = started.elapsed().as_secs_f64();
                    ensure!(
                        count == listed,
                        "{mode:?}: {count} entries, expected {listed}"
                    );
                    if run > 0 {
                        runs.push(elapsed);
                        requests = log.counts();
                        round_trips = relay.writes();
                        bytes = relay.bytes();
                    }
                }
                // The cache item: id + value + expires_at (+ covers_limit).
                let cache_item =
                    value_len + 2 + key.id().len() + 12 + 10 + if limit.is_some() { 16 } else { 0 };
                if mode != Mode::Direct {
                    value_bytes.insert(listed, value_len);
                }
                let (read_units, write_units) = match mode {
                    Mode::Direct => (read_units(query_bytes, false), 0.0),
                    Mode::Hit => (read_units(cache_item, true), 0.0),
                    // GetItem of an absent item (0.5 counted as 1 consistent unit), the lease's
                    // UpdateItem (1 WCU), the consistent Query, the fill's PutItem.
                    Mode::Miss => (
                        1.0 + read_units(query_bytes, true),
                        1.0 + write_units(cache_item),
                    ),
                    // Valkey costs no units: the miss's Query is the only table read.
                    Mode::ValkeyHit => (0.0, 0.0),
                    Mode::ValkeyMiss => (read_units(query_bytes, true), 0.0),
                };
                let valkey_round_trips = mode.valkey().then_some(round_trips);
                let valkey_bytes = mode.valkey().then_some(bytes);
                let stats = report::stats(&runs).expect("runs");
                println!(
                    "  {n:>3} conversations{:<10} {:<27} {:>8}  {:>5.1} RCU {:>4.0} WCU  {}",
                    limit.map_or(String::new(), |l| format!(", limit {l}")),
                    mode.title(),
                    report::time(stats.median),
                    read_units,
                    write_units,
                    requests_text(&requests, valkey_round_trips)
                );
                cells.push(ReadCell {
                    conversations: n,
                    limit,
                    latency_ms,
                    mode,
                    requests,
                    read_units,
                    write_units,
                    valkey_round_trips,
                    valkey_bytes,
                    runs_s: runs,
                });
            }
        }
    }

    let mut soaks = Vec::new();
    for reads_per_message in [10usize, 3] {
        for backend in [Backend::Dynamo, Backend::Valkey] {
            soaks.push(soak(endpoint, reads_per_message, soak_operations, backend).await?);
        }
    }
    Ok(Reads {
        calibration,
        valkey_calibration,
        valkey_first_read_ms,
        cells,
        soaks,
        value_bytes,
    })
}

/// A list as the tables name it: `200`, or `200 (limit 20)` for its first page.
fn list(conversations: usize, limit: Option<u32>) -> String {
    match limit {
        None => conversations.to_string(),
        Some(l) => format!("{conversations} (limit {l})"),
    }
}

/// The DynamoDB requests, and the Valkey round trips when there are any.
fn requests_text(requests: &BTreeMap<String, u64>, valkey_round_trips: Option<u64>) -> String {
    let dynamo = report::requests(requests);
    match valkey_round_trips {
        None => dynamo,
        Some(trips) if requests.is_empty() => format!("{trips} Valkey"),
        Some(trips) => format!("{trips} Valkey + {dynamo}"),
    }
}

/// 40 users with 20 conversations each (every list cached once first); each operation is a message
/// to a random conversation, through the handler with the cache (1 in `reads_per_message + 1`), or
/// a random user's list through the cached reader, checked against the table read strongly
/// consistently right after. Uniform choice: no hot users, so this is a low hit ratio.
async fn soak(
    endpoint: &str,
    reads_per_message: usize,
    operations: usize,
    backend: Backend,
) -> anyhow::Result<Soak> {
    const USERS: usize = 40;
    const PER_USER: usize = 20;
    /// Every conversation of the soak is between two users.
    const MEMBERS: usize = 2;
    let setup = local::client_for(&local::config_for(endpoint, TABLE), &RequestLog::new()).await;
    fresh_tables(&setup).await?;
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    // User i talks with users i+1 ... i+PER_USER (mod USERS), PER_USER/2 each way: 20 conversations each.
    for i in 0..USERS {
        for k in 1..=PER_USER / 2 {
            let j = (i + k) % USERS;
            let group = format!("s-{i}-{j}");
            let sk = timestamp(groups.len());
            rows.push(row(&format!("s{i}"), &group, &sk));
            rows.push(row(&format!("s{j}"), &group, &sk));
            groups.push(group);
        }
    }
    put_all(&setup, TABLE, rows).await?;
    let log = RequestLog::new();
    let mut config = local::config_for(endpoint, TABLE);
    config.cache_table_name = Some(CACHE_TABLE.to_owned());
    let client = local::client_for(&config, &log).await;
    // Valkey: a fresh database, through the relay with no delay (to count round trips).
    let db = valkey::database();
    let relay = match backend {
        Backend::Dynamo => None,
        Backend::Valkey => {
            let address: SocketAddr = (
                db.endpoint().host.parse::<std::net::IpAddr>()?,
                db.endpoint().port,
            )
                .into();
            Some(TcpDelay::start(address, Duration::ZERO).await?)
        }
    };
    let cache: Arc<dyn Cache> = match &relay {
        None => Arc::new(DynamoCache::new(client.clone(), CACHE_TABLE)),
        Some(relay) => {
            let mut relayed = db.endpoint();
            relayed.port = relay.port();
            Arc::new(db.cache().with_endpoint(relayed))
        }
    };
    let app =
        App::new(Store::new(client.clone(), &config), config.clone()).with_cache(cache.clone());
    let reader = Reader::new(client.clone(), TABLE).with_cache(cache, DEFAULT_TTL);
    let truth = Reader::new(setup.clone(), TABLE);
    // Every list cached once first: the soak measures the steady state, not the cold start.
    for i in 0..USERS {
        reader.conversations(&format!("s{i}"), None).await?;
    }
    log.reset();
    let round_trips = || relay.as_ref().map_or(0, |r| r.writes());
    let relayed_bytes = || relay.as_ref().map_or(0, |r| r.bytes());
    let start_trips = round_trips();
    let (mut message_requests, mut message_trips, mut message_bytes) = (0u64, 0u64, 0u64);
    let mut rng = fastrand::Rng::with_seed(12);
    let (mut reads, mut messages, mut hits, mut stale) = (0, 0, 0, 0);
    let mut clock = groups.len() + 10;
    for op in 0..operations {
        if rng.usize(0..=reads_per_message) == 0 {
            let group = &groups[rng.usize(0..groups.len())];
            clock += 1;
            let record = items::message_record(group, &timestamp(clock), "soak", &op.to_string());
            let (requests_before, trips_before, bytes_before) = (
                log.counts().values().sum::<u64>(),
                round_trips(),
                relayed_bytes(),
            );
            let (response, _) =
                crate::cells::handle_batch(&app, &items::event(vec![record])).await?;
            message_requests += log.counts().values().sum::<u64>() - requests_before;
            message_trips += round_trips() - trips_before;
            message_bytes += relayed_bytes() - bytes_before;
            ensure!(
                response.batch_item_failures.is_empty(),
                "a failed group in the soak"
            );
            messages += 1;
        } else {
            let user = format!("s{}", rng.usize(0..USERS));
            let read = reader.conversations(&user, None).await?;
            reads += 1;
            hits += usize::from(read.served == Served::Hit);
            let table: Vec<Entry> = truth.conversations(&user, None).await?.entries;
            // The table read strongly consistently right after: what a reader must be served.
            stale += usize::from(read.entries != table);
        }
    }
    println!(
        "  soak ({backend:?}), {reads_per_message} reads per message: {reads} reads, {messages} messages, hit ratio {:.1} %, stale reads {stale}",
        100.0 * hits as f64 / reads.max(1) as f64
    );
    let per_message = |n: u64| n as f64 / messages.max(1) as f64;
    Ok(Soak {
        backend,
        message_requests: per_message(message_requests),
        message_valkey_round_trips: relay.as_ref().map(|_| per_message(message_trips)),
        message_valkey_bytes: relay.as_ref().map(|_| per_message(message_bytes)),
        keys_per_message: MEMBERS + 1,
        valkey_round_trips: relay.as_ref().map(|_| round_trips() - start_trips),
        users: USERS,
        reads_per_message,
        operations,
        reads,
        messages,
        hits,
        stale,
        requests: log.counts(),
    })
}

impl Reads {
    pub fn markdown(&self, command: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "### Reads: a conversation list through the cache, and directly\n"
        );
        let _ = writeln!(md, "Command: `{command}`. Capacity units are computed from item sizes by DynamoDB's rules (DynamoDB Local reports none); requests are HTTP attempts counted by the SDK interceptor, and Valkey's round trips the client writes the TCP relay forwarded (a pipeline is one); Valkey costs no capacity units; time is the median of the measured runs.\n");
        let _ = writeln!(md, "| conversations | RTT | read | requests | RCU | WCU | median | min-max |\n|---|---|---|---|---|---|---|---|");
        for c in &self.cells {
            let stats: Stats = report::stats(&c.runs_s).expect("runs");
            let _ = writeln!(
                md,
                "| {} | {} ms | {} | {} | {:.1} | {:.0} | {} | {} |",
                list(c.conversations, c.limit),
                c.latency_ms,
                c.mode.title(),
                requests_text(&c.requests, c.valkey_round_trips),
                c.read_units,
                c.write_units,
                report::time(stats.median),
                report::spread(&stats),
            );
        }
        let _ = writeln!(
            md,
            "\nCached value sizes (JSON): {}.\n",
            self.value_bytes
                .iter()
                .map(|(n, b)| format!("{n} entries {b} bytes"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            md,
            "RTT added, measured (median of 60 paired reads, proxied minus direct): {}.",
            self.calibration
                .iter()
                .zip(&self.valkey_calibration)
                .map(|(d, v)| format!(
                    "{} ms: DynamoDB {:.2} ms, Valkey {:.2} ms",
                    d.latency_ms, d.added_ms, v.added_ms
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(
            md,
            "A new Valkey connection's first read (TCP, TLS handshake, AUTH, SELECT, HMGET) and the median of the next 10 reads on it: {}.",
            self.valkey_first_read_ms
                .iter()
                .map(|(rtt, first, next)| format!("{rtt} ms RTT: {first:.2} ms, then {next:.2} ms"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(md, "\n| soak | cache | reads | messages | hit ratio | stale reads | requests | per message: DynamoDB requests, Valkey round trips |\n|---|---|---|---|---|---|---|---|");
        for s in &self.soaks {
            let _ = writeln!(
                md,
                "| {} users x 20 conversations, {} reads per message | {:?} | {} | {} | {:.1} % | {} | {} | {:.2}, {} |",
                s.users,
                s.reads_per_message,
                s.backend,
                s.reads,
                s.messages,
                100.0 * s.hits as f64 / s.reads.max(1) as f64,
                s.stale,
                requests_text(&s.requests, s.valkey_round_trips),
                s.message_requests,
                s.message_valkey_round_trips
                    .map_or("-".to_owned(), |t| format!("{t:.2}")),
            );
        }
        md.push_str(&self.prices());
        md
    }

    /// What a read costs in dollars, from this run's counts: each read of the table at the lowest
    /// RTT (counts do not depend on it), then mixes of hits and misses at the soaks' hit ratios.
    fn prices(&self) -> String {
        let mut md = String::new();
        let Some(rtt) = self.cells.iter().map(|c| c.latency_ms).min() else {
            return md;
        };
        let cells: Vec<&ReadCell> = self.cells.iter().filter(|c| c.latency_ms == rtt).collect();
        // A read sends one command a round trip (HMGET; the lease and fill scripts on a miss).
        let ecpus = |c: &ReadCell| {
            c.valkey_round_trips.map_or(0.0, |trips| {
                prices::ecpus(trips as f64, c.valkey_bytes.unwrap_or(0) as f64)
            })
        };
        let price = |c: &ReadCell| prices::per_million(c.read_units, c.write_units, ecpus(c));
        let _ = writeln!(
            md,
            "\n#### Price per million reads ({})\n\nDynamoDB on-demand ${:.3} per million read units and ${:.3} per million write units; ElastiCache Serverless for Valkey ${:.4} per million ECPUs, counted here as one per KB the relay carried both ways (TLS records, so a little more than the data) and at least one per command (its scripts may cost more: ECPUs also meter CPU time), plus ${:.3} per GB-hour for at least {:.1} GB stored: a floor of ${:.2} a month whatever the traffic, not in the figures per read.\n",
            prices::AS_OF,
            prices::READ_UNIT * 1e6,
            prices::WRITE_UNIT * 1e6,
            prices::ECPU * 1e6,
            prices::VALKEY_GB_HOUR,
            prices::VALKEY_MINIMUM_GB,
            prices::valkey_floor_per_month(),
        );
        let _ = writeln!(
            md,
            "| conversations | read | RCU | WCU | Valkey round trips, bytes | ECPUs | $ per million reads |\n|---|---|---|---|---|---|---|"
        );
        for c in &cells {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.0} | {} | {:.1} | {:.4} |",
                list(c.conversations, c.limit),
                c.mode.title(),
                c.read_units,
                c.write_units,
                c.valkey_round_trips.map_or("-".to_owned(), |trips| format!(
                    "{trips}, {}",
                    c.valkey_bytes.unwrap_or(0)
                )),
                ecpus(c),
                price(c),
            );
        }
        let _ = writeln!(
            md,
            "\nMixed at the soaks' hit ratios (measured on lists of 20; for 200 the same ratio is assumed). A cache pays in reads when its mix costs less than the direct read; the break-even is the hit ratio where they cost the same. The consumer's invalidations are per message, not per read: below the table.\n"
        );
        let _ = writeln!(
            md,
            "| conversations | soak: hit ratio DynamoDB / Valkey | direct | DynamoDB cache | Valkey | Valkey's break-even hit ratio | reads a month that pay Valkey's floor |\n|---|---|---|---|---|---|---|"
        );
        let find = |n: usize, limit: Option<u32>, mode: Mode| {
            cells
                .iter()
                .find(|c| c.conversations == n && c.limit == limit && c.mode == mode)
                .map(|c| price(c))
        };
        // Each cache mixed at its own soak's hit ratio (the same sequence for both), per soak.
        let ratio = |backend: Backend, reads_per_message: usize| {
            self.soaks
                .iter()
                .find(|s| s.backend == backend && s.reads_per_message == reads_per_message)
                .map(|s| s.hits as f64 / s.reads.max(1) as f64)
        };
        let mut per_message: Vec<usize> = self.soaks.iter().map(|s| s.reads_per_message).collect();
        per_message.dedup();
        for &(n, limit) in &[(20usize, None), (200, None), (200, Some(20u32))] {
            let (Some(direct), Some(hit), Some(miss), Some(vhit), Some(vmiss)) = (
                find(n, limit, Mode::Direct),
                find(n, limit, Mode::Hit),
                find(n, limit, Mode::Miss),
                find(n, limit, Mode::ValkeyHit),
                find(n, limit, Mode::ValkeyMiss),
            ) else {
                continue;
            };
            for &reads in &per_message {
                let (Some(hd), Some(hv)) =
                    (ratio(Backend::Dynamo, reads), ratio(Backend::Valkey, reads))
                else {
                    continue;
                };
                let dynamo = hd * hit + (1.0 - hd) * miss;
                let valkey = hv * vhit + (1.0 - hv) * vmiss;
                let break_even = if vmiss <= direct {
                    "any".to_owned()
                } else if vhit >= direct {
                    "never".to_owned()
                } else {
                    format!("{:.1} %", 100.0 * (vmiss - direct) / (vmiss - vhit))
                };
                let floor_paid = if valkey < direct {
                    format!(
                        "{:.0} million",
                        prices::valkey_floor_per_month() / (direct - valkey)
                    )
                } else {
                    "never".to_owned()
                };
                let _ = writeln!(
                    md,
                    "| {} | {reads} reads per message: {:.1} % / {:.1} % | ${direct:.4} | ${dynamo:.4} | ${valkey:.4} | {break_even} | {floor_paid} |",
                    list(n, limit),
                    100.0 * hd,
                    100.0 * hv,
                );
            }
        }
        md.push('\n');
        for s in &self.soaks {
            let keys = s.keys_per_message as f64;
            let (what, price) = match (s.message_valkey_round_trips, s.message_valkey_bytes) {
                // One DEL a key (ECPUs are billed per command, a pipeline is several).
                (Some(trips), Some(bytes)) => (
                    format!("Valkey: {trips:.2} round trip(s), {keys:.0} DELs, {bytes:.0} bytes, {:.1} ECPUs", prices::ecpus(keys, bytes)),
                    prices::per_million(0.0, 0.0, prices::ecpus(keys, bytes)),
                ),
                // A delete costs at least 1 write unit, absent items too; a cached item its size.
                _ => (
                    format!("DynamoDB cache: a BatchWriteItem of {keys:.0} deletes, at least {keys:.0} write units (a cached item's delete costs its size in KB)"),
                    prices::per_million(0.0, keys, 0.0),
                ),
            };
            let _ = writeln!(
                md,
                "- The consumer's invalidation per message ({} reads per message soak), {what}: {}${price:.4} per million messages.",
                s.reads_per_message,
                if s.backend == Backend::Dynamo { "at least " } else { "" },
            );
        }
        md
    }
}
